/* test_options.c - the option tables (options.h) and the `ailora train` keys:
 * INI syntax (comments, quotes, sections, indentation, duplicates, long lines, NUL
 * bytes, CRLF, BOM), range checks of every kind, integer overflow and garbage,
 * command-line parsing, the dump round trip, and random mutations of a valid
 * config (every input must give AIL_OK or one error, never a crash). */
#include <limits.h>
#include <stdarg.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/options.h"
#include "ailora/rng.h"
#include "ailora/trainconfig.h"
#include "testutil.h"

/* Loads text (NUL-terminated here) over the defaults; returns the rc, message kept. */
static int load(const char *text, TrainConfig *c) {
    ail_error_clear();
    return config_load_buffer(text, strlen(text), c);
}

/* The load must fail with a message containing every given fragment. */
#define REFUSED(text, ...)                                                                        \
    do {                                                                                          \
        TrainConfig c_;                                                                           \
        int rc_ = load(text, &c_);                                                                \
        const char *want_[] = {__VA_ARGS__};                                                      \
        TU_CHECK(rc_ != AIL_OK, "accepted: %s", text);                                            \
        for (size_t i_ = 0; rc_ != AIL_OK && i_ < sizeof want_ / sizeof *want_; i_++)             \
            TU_CHECK(strstr(ail_error_message(), want_[i_]), "%s: message \"%s\" lacks \"%s\"", text, \
                     ail_error_message(), want_[i_]);                                             \
    } while (0)

static void test_syntax(void) {
    TrainConfig c;
    // the README's line: "#" after a value is a comment, like ";"
    TU_CHECK(load("max_new_tokens = 8        # greedy decoding\nrank = 4 ; r\n", &c) == AIL_OK, "%s",
             ail_error_message());
    TU_CHECK(c.max_new_tokens == 8 && c.rank == 4, "got %d %d", c.max_new_tokens, c.rank);
    // comment lines, sections, blank lines, indentation (no continuation lines)
    TU_CHECK(load("# a comment\n; another\n\n[optim]\n    lr = 0.5   \n\tsteps = 7\n[data]  # c\n", &c) == AIL_OK,
             "%s", ail_error_message());
    TU_CHECK(c.optim.lr == 0.5 && c.steps == 7, "lr %g steps %d", c.optim.lr, c.steps);
    // "#" or ";" not after whitespace belongs to the value
    TU_CHECK(load("task = a#b;c\n", &c) == AIL_OK && !strcmp(c.task, "a#b;c"), "task \"%s\"", c.task);
    // quotes are removed; inside them spaces stay
    TU_CHECK(load("task = \"two words\"\nout = \"\"\n", &c) == AIL_OK && !strcmp(c.task, "two words") && !c.out[0],
             "task \"%s\"", c.task);
    REFUSED("task = \"half\n", "config:1:", "unbalanced double quote");
    REFUSED("task = \"x ;y\"\n", "unbalanced double quote");
    REFUSED("task = \"x #y\"\n", "unbalanced double quote");
    // key: value (inih's other separator), CRLF line ends, a UTF-8 BOM, "-" in keys
    TU_CHECK(load("\xEF\xBB\xBFrank: 3\r\nbatch-size = 4\r\n", &c) == AIL_OK && c.rank == 3 && c.batch_size == 4,
             "%s rank %d batch %d", ail_error_message(), c.rank, c.batch_size);
    // an empty value after "=" (comment right after it) is the empty string
    TU_CHECK(load("svd_cache =   ; computed\n", &c) == AIL_OK && !c.svd_cache[0], "svd_cache \"%s\"", c.svd_cache);
    // errors name the line
    REFUSED("rank = 4\nno equals sign here\n", "config:2:", "not a key = value line");
    REFUSED("[data\nrank = 4\n", "config:1:");
    REFUSED("rank = 4\n\nbogus = 1\n", "config:3:", "unknown config key \"bogus\"");
    REFUSED("rank = 4\nsteps = 2\nrank = 8\n", "config:3:", "rank given twice (first on line 1)");
    // the first problem is reported, whatever kind it is
    REFUSED("steps = 2\nnot a line\nbogus = 1\n", "config:2:", "not a key = value line");
    REFUSED("bogus = 1\nnot a line\n", "config:1:", "unknown config key");
    // libinih's 199-character lines: at the limit fine, beyond an error (not a silent split)
    char line[400];
    memset(line, 'a', sizeof line);
    memcpy(line, "out  = ", 7);
    snprintf(line + 199, sizeof line - 199, "\n");
    TU_CHECK(load(line, &c) == AIL_OK && strlen(c.out) == 192, "%s", ail_error_message());
    line[199] = 'a';
    snprintf(line + 200, sizeof line - 200, "\n");
    REFUSED(line, "config:1:", "longer than 199 characters");
    // a long comment does not count
    snprintf(line, sizeof line, "rank = 5   # %0300d\n", 0);
    TU_CHECK(load(line, &c) == AIL_OK && c.rank == 5, "%s", ail_error_message());
    // NUL bytes, and a buffer that is not NUL-terminated
    TrainConfig d;
    ail_error_clear();
    TU_CHECK(config_load_buffer("rank = 4\nsteps\0= 3\n", 19, &d) != AIL_OK &&
             strstr(ail_error_message(), "config:2: NUL byte"), "%s", ail_error_message());
    ail_error_clear();
    TU_CHECK(config_load_buffer("rank = 42xyz", 9, &d) == AIL_OK && d.rank == 42, "len respected: %s",
             ail_error_message());
    ail_error_clear();
    TU_CHECK(config_load_buffer("", 0, &d) == AIL_OK && d.rank == 8, "empty text gives the defaults");
}

static void test_ranges(void) {
    // the user's report: each of these was a SIGFPE or silently accepted
    REFUSED("log_every = 0\n", "log_every must be >= 1, got 0");
    REFUSED("tp = 0\n", "tp must be >= 1, got 0");
    REFUSED("alpha = -5\n", "alpha must be >= 0, got -5");
    const char *counts[] = {"eval_every", "checkpoint_every", "warmup_steps", "eval_batches", "max_new_tokens",
                            "dp", "preempt_at_step", "seed"};
    for (int i = 0; i < 8; i++) {
        char text[64], want[64];
        snprintf(text, sizeof text, "%s = -1\n", counts[i]);
        snprintf(want, sizeof want, "%s must be >= 0, got -1", counts[i]);
        REFUSED(text, want);
        snprintf(text, sizeof text, "%s = 0\n", counts[i]);
        TrainConfig c;
        TU_CHECK(load(text, &c) == AIL_OK, "%s: %s", text, ail_error_message());
    }
    const char *positive[] = {"rank", "steps", "batch_size", "grad_accum", "log_every", "tp"};
    for (int i = 0; i < 6; i++) {
        char text[64];
        snprintf(text, sizeof text, "%s = 0\n", positive[i]);
        REFUSED(text, positive[i], ">= 1");
    }
    REFUSED("lr = 0\n", "lr must be > 0, got 0");
    REFUSED("eps = 0\n", "eps must be > 0");
    REFUSED("beta1 = 1\n", "beta1 must lie in [0, 1), got 1");
    REFUSED("beta2 = -0.1\n", "beta2 must lie in [0, 1)");
    REFUSED("grad_clip = -1\n", "grad_clip must be >= 0");
    REFUSED("weight_decay = -0.01\n", "weight_decay must be >= 0");
    REFUSED("ratio_q = 1.0000001\n", "ratio_q must lie in [0, 1], got 1.0000001");
    REFUSED("ratio_other = -0\n" "ratio_v = -1e-300\n", "config:2:", "ratio_v must lie in [0, 1]");
    REFUSED("device = gpu\n", "device must be cpu or cuda, got \"gpu\"");
    REFUSED("lora_init = normal\n", "lora_init must be kaiming or gaussian");
    REFUSED("method = dora\n", "unknown init method \"dora\"");
    REFUSED("schedule = step\n", "config:1:", "schedule");
    REFUSED("resume = maybe\n", "resume expects true or false");
    // the edges that are allowed
    TrainConfig c;
    TU_CHECK(load("lr = 1e-300\nbeta1 = 0\nbeta2 = 0.9999999\nratio_q = 0\nratio_v = 1\ngrad_clip = 0\nalpha = 0\n",
                  &c) == AIL_OK, "%s", ail_error_message());
    // integer garbage and overflow
    REFUSED("rank = 8x\n", "rank expects an integer, got \"8x\"");
    REFUSED("steps = 1e99\n", "steps expects an integer, got \"1e99\"");
    REFUSED("steps = 2147483648\n", "steps must lie in [1, 2147483647], got 2147483648");
    REFUSED("steps = 99999999999999999999\n", "steps expects an integer");
    REFUSED("seed = 9223372036854775808\n", "seed expects an integer");
    REFUSED("rank = 0x10\n", "rank expects an integer");
    REFUSED("rank =\n", "rank expects an integer, got \"\"");
    REFUSED("rank = 4.0\n", "rank expects an integer");
    TU_CHECK(load("seed = 9223372036854775807\nsteps = 2147483647\n", &c) == AIL_OK && c.seed == LLONG_MAX &&
             c.steps == INT_MAX, "%s", ail_error_message());
    // number garbage
    REFUSED("task = \"a\"b\"\n", "a double quote inside the quoted value");  // would not survive dump + load
    REFUSED("task = \"\"\"x\"\n", "a double quote inside the quoted value");
    REFUSED("lr = nan\n", "lr expects a number, got \"nan\"");
    REFUSED("lr = inf\n", "lr expects a number");
    REFUSED("lr = 1e999\n", "lr expects a number");
    REFUSED("lr = 1e-4x\n", "lr expects a number");
    REFUSED("model = " "x\n" "out_model = \"\n", "config:2:");
    // strings longer than their field
    char big[1200 + 16];
    snprintf(big, sizeof big, "task = %0150d\n", 0);
    REFUSED(big, "task: value too long (150 characters, at most 63)");
}

/* A TrainConfig filled by hand is checked against the same table. */
static void test_validate(void) {
    TrainConfig c;
    config_defaults(&c);
    snprintf(c.model, sizeof c.model, "m");
    snprintf(c.train_data, sizeof c.train_data, "d");
    snprintf(c.out, sizeof c.out, "o");
    ail_error_clear();
    TU_CHECK(config_validate(&c, 1) == AIL_OK, "%s", ail_error_message());
    c.log_every = 0;
    ail_error_clear();
    TU_CHECK(config_validate(&c, 1) != AIL_OK && strstr(ail_error_message(), "log_every must be >= 1"), "%s",
             ail_error_message());
    c.log_every = 1, c.tp = 0;
    ail_error_clear();
    TU_CHECK(config_validate(&c, 2) != AIL_OK && strstr(ail_error_message(), "tp must be >= 1"), "%s",
             ail_error_message());
    c.tp = 1, c.out[0] = '\0';
    ail_error_clear();
    TU_CHECK(config_validate(&c, 1) != AIL_OK && strstr(ail_error_message(), "config key out is required"), "%s",
             ail_error_message());
    snprintf(c.out, sizeof c.out, "o");
    c.tp = 2, c.dp = 3;
    ail_error_clear();
    TU_CHECK(config_validate(&c, 4) != AIL_OK && strstr(ail_error_message(), "tp (2) x dp (3) must equal"), "%s",
             ail_error_message());
    ail_error_clear();
}

/* dump -> load gives the same values (doubles included, printed shortest-exact). */
static void test_dump_roundtrip(void) {
    TrainConfig a, b;
    TU_CHECK(load("model = m\ntrain_data = d\nout = o\nlr = 0.1\nratio_q = 0.3\nseed = 12345678901\n"
                  "method = ratio\nschedule = cosine\nshuffle = false\neps = 1e-8\nalpha = 0.1234567890123456789\n",
                  &a) == AIL_OK, "%s", ail_error_message());
    char *text = config_dump(&a);
    TU_CHECK(text && strstr(text, "ratio_q = 0.3\n") && strstr(text, "lr = 0.1\n") && strstr(text, "method = ratio\n"),
             "dump:\n%s", text ? text : "(null)");
    TU_CHECK(load(text, &b) == AIL_OK, "dump does not load back: %s", ail_error_message());
    char *again = config_dump(&b);
    TU_CHECK(again && !strcmp(text, again), "dump of the reloaded config differs");
    TU_CHECK(a.alpha == b.alpha && a.optim.lr == b.optim.lr && a.seed == b.seed, "values differ after round trip");
    free(text);
    free(again);
}

static int parse(const OptionTable *t, void *obj, int *action, int argc, ...) {
    char *argv[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) argv[i] = va_arg(ap, char *);
    va_end(ap);
    ail_error_clear();
    return options_parse_args(t, obj, argc, argv, action);
}

static void test_args(void) {
    const OptionTable *t = config_options();
    TrainConfig c;
    int action;
    FILE *f = fopen("test_options.ini", "w");
    TU_CHECK(f != NULL, "cannot write test_options.ini");
    if (!f) return;
    fputs("model = m   # comment\ntrain_data = d\nout = o\nrank = 4\nsteps = 9\n", f);
    fclose(f);
    // CONFIG first, then --key value, --key=value, key=value, bare bool flag; later wins
    config_defaults(&c);
    TU_CHECK(parse(t, &c, &action, 8, "train", "test_options.ini", "--rank", "6", "--lr=0.25", "steps=11",
                   "--shuffle", "--batch-size=2") == AIL_OK && action == OPTIONS_RUN, "%s", ail_error_message());
    TU_CHECK(c.rank == 6 && c.optim.lr == 0.25 && c.steps == 11 && c.shuffle == 1 && c.batch_size == 2 &&
             !strcmp(c.model, "m"), "rank %d lr %g steps %d", c.rank, c.optim.lr, c.steps);
    config_defaults(&c);
    TU_CHECK(parse(t, &c, &action, 3, "train", "test_options.ini", "--shuffle=false") == AIL_OK && c.shuffle == 0,
             "--shuffle=false: %s", ail_error_message());
    // messages name the key as the user spelled it
    config_defaults(&c);
    TU_CHECK(parse(t, &c, &action, 4, "train", "test_options.ini", "--log-every", "0") != AIL_OK &&
             strstr(ail_error_message(), "--log-every must be >= 1, got 0"), "%s", ail_error_message());
    config_defaults(&c);
    TU_CHECK(parse(t, &c, &action, 3, "train", "test_options.ini", "task=\"x\"") != AIL_OK &&
             strstr(ail_error_message(), "may not begin with a double quote"), "%s", ail_error_message());
    config_defaults(&c);
    TU_CHECK(parse(t, &c, &action, 3, "train", "test_options.ini", "--rank") != AIL_OK &&
             strstr(ail_error_message(), "option --rank needs a value"), "%s", ail_error_message());
    config_defaults(&c);
    TU_CHECK(parse(t, &c, &action, 3, "train", "test_options.ini", "--bogus") != AIL_OK &&
             strstr(ail_error_message(), "bad option \"--bogus\" (see ailora train --help)"), "%s",
             ail_error_message());
    config_defaults(&c);
    TU_CHECK(parse(t, &c, &action, 3, "train", "test_options.ini", "stray") != AIL_OK &&
             strstr(ail_error_message(), "unexpected argument \"stray\""), "%s", ail_error_message());
    config_defaults(&c);
    TU_CHECK(parse(t, &c, &action, 2, "train", "rank=4") != AIL_OK &&
             strstr(ail_error_message(), "config key model is required"), "%s", ail_error_message());
    config_defaults(&c);
    TU_CHECK(parse(t, &c, &action, 3, "train", "rank=4", "--print-config") == AIL_OK && action == OPTIONS_PRINT,
             "--print-config does not need the required keys: %s", ail_error_message());
    config_defaults(&c);
    TU_CHECK(parse(t, &c, &action, 3, "train", "lr=-1", "--help") == AIL_OK && action == OPTIONS_HELP,
             "--help wins over everything: %s", ail_error_message());
    config_defaults(&c);
    TU_CHECK(parse(t, &c, &action, 2, "train", "missing.ini") != AIL_OK &&
             strstr(ail_error_message(), "cannot open config missing.ini"), "%s", ail_error_message());
    remove("test_options.ini");
    ail_error_clear();
}

/* Random mutations of a valid config: each load returns AIL_OK or one error with a
 * message, and never crashes or reads past len (run under ASan/valgrind to see more). */
static void test_mutations(void) {
    const char *seed_text =
        "[run]\nmodel = /tmp/m  # the model\ntrain_data = \"d.h5\"\nout = o.h5 ; run\nrank = 16\n"
        "lr = 2e-4\nschedule = cosine\nmethod = ratio\nratio_q = 0.75\nshuffle = true\nseed = 3\n";
    size_t n = strlen(seed_text);
    Rng rng;
    rng_init(&rng, 12345, 0);
    int ok = 0, refused = 0, silent = 0;
    for (int it = 0; it < 20000; it++) {
        char *buf = malloc(n);  // exactly n bytes, not NUL-terminated: overreads show under ASan
        memcpy(buf, seed_text, n);
        int edits = 1 + (int)(rng_uniform(&rng) * 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)(rng_uniform(&rng) * n) % n;
            const char pool[] = "=;#\"[]\n\r\t -09xe.\0\xff";
            buf[at] = rng_uniform(&rng) < 0.5 ? pool[(int)(rng_uniform(&rng) * (sizeof pool - 1))]
                                              : (char)(unsigned char)(rng_uniform(&rng) * 256);  // via unsigned: no float-cast overflow
        }
        TrainConfig c;
        ail_error_clear();
        int rc = config_load_buffer(buf, n, &c);
        if (rc == AIL_OK) ok++;
        else if (ail_error_message()[0]) refused++;
        else silent++;
        free(buf);
    }
    TU_CHECK(silent == 0, "%d refusals without a message", silent);
    TU_CHECK(ok > 0 && refused > 0, "mutations: %d accepted, %d refused", ok, refused);
    printf("mutations: %d accepted, %d refused\n", ok, refused);
    ail_error_clear();
}

int main(void) {
    test_syntax();
    test_ranges();
    test_validate();
    test_dump_roundtrip();
    test_args();
    test_mutations();
    return tu_finish("test_options");
}
