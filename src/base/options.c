/* options.c - option tables: parsing (INI files through inih, command lines),
 * range checks, help and the dump of resolved values (include/ailora/options.h). */
#include "ailora/options.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"

/* ---- keys ------------------------------------------------------------------- */

/* Keys compare with "-" and "_" equal, so --ratio-q names ratio_q. */
static int key_equal(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;
        if (x != y) return 0;
    }
    return *a == *b;
}

static int option_index(const OptionTable *t, const char *key) {
    for (int i = 0; i < t->n; i++)
        if (key_equal(t->opts[i].name, key)) return i;
    return -1;
}

/* ---- ranges ----------------------------------------------------------------- */

typedef struct {
    double lo, hi;
    int lo_open, hi_open;
} Interval;

/* "[lo, hi]" with ( ) for open ends; a malformed range is a bug in the table. */
static int interval_parse(const char *text, Interval *iv) {
    char open, close, lo[32], hi[32];
    if (sscanf(text, " %c %31[^, ] , %31[^])] %c", &open, lo, hi, &close) != 4 ||
        (open != '[' && open != '(') || (close != ']' && close != ')'))
        return 0;
    char *end;
    iv->lo = strtod(lo, &end);
    if (*end) return 0;
    iv->hi = strtod(hi, &end);
    if (*end) return 0;
    iv->lo_open = open == '(';
    iv->hi_open = close == ')';
    return 1;
}

static int interval_holds(const Interval *iv, double v) {
    return (iv->lo_open ? v > iv->lo : v >= iv->lo) && (iv->hi_open ? v < iv->hi : v <= iv->hi);
}

/* Integer bounds of an interval clipped to [tmin, tmax]. */
static void interval_int(const Interval *iv, long long tmin, long long tmax, long long *lo, long long *hi) {
    *lo = tmin, *hi = tmax;
    if (iv->lo > (double)tmin) *lo = (long long)ceil(iv->lo) + (iv->lo_open && iv->lo == ceil(iv->lo));
    if (iv->hi < (double)tmax) *hi = (long long)floor(iv->hi) - (iv->hi_open && iv->hi == floor(iv->hi));
}

/* The allowed values in words: ">= 1", "> 0", "in [0, 1)", "lora, pissa or ratio". */
static void allowed_text(const Option *o, char *buf, size_t len) {
    buf[0] = '\0';
    if (!o->range) return;
    if (o->type == OPT_TCHOICE) {
        size_t used = 0;
        const char *p = o->range;
        while (*p && used < len) {
            const char *bar = strchr(p, '|');
            size_t n = bar ? (size_t)(bar - p) : strlen(p);
            const char *sep = used == 0 ? "" : bar ? ", " : " or ";
            used += (size_t)snprintf(buf + used, len - used, "%s%.*s", sep, (int)n, p);
            p += n + (bar != NULL);
        }
        return;
    }
    Interval iv;
    if (!interval_parse(o->range, &iv)) {
        snprintf(buf, len, "%s", o->range);
        return;
    }
    if (isinf(iv.hi) && !isinf(iv.lo)) snprintf(buf, len, "%s %.15g", iv.lo_open ? ">" : ">=", iv.lo);
    else if (isinf(iv.lo) && !isinf(iv.hi)) snprintf(buf, len, "%s %.15g", iv.hi_open ? "<" : "<=", iv.hi);
    else snprintf(buf, len, "in %c%.15g, %.15g%c", iv.lo_open ? '(' : '[', iv.lo, iv.hi, iv.hi_open ? ')' : ']');
}

static int range_error(const Option *o, const char *spelled, const char *value) {
    char allowed[256];
    allowed_text(o, allowed, sizeof allowed);
    if (allowed[0] == 'i' && allowed[1] == 'n')  // "in [0, 1]" reads "must lie in [0, 1]"
        return AIL_ERROR(AIL_ERR_ARG, "%s must lie %s, got %s", spelled, allowed, value);
    return AIL_ERROR(AIL_ERR_ARG, "%s must be %s, got %s", spelled, allowed, value);
}

/* ---- setting one option ----------------------------------------------------- */

static int parse_bool(const char *v, int *out) {
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) *out = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) *out = 0;
    else return 0;
    return 1;
}

static int choice_holds(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

/* Parses value into o's field of obj; with obj NULL only checks it. */
static int option_set(const Option *o, void *obj, const char *spelled, const char *value) {
    union { long long ll; double d; char c[64]; } scratch;  // what a check parses into (aligned)
    char *field = obj ? (char *)obj + o->offset : NULL, *end;
    Interval iv;
    int ranged = o->range && o->type != OPT_TCHOICE;
    // a stored value never begins with a double quote, so that a dumped config loads back unchanged
    if (value[0] == '"')
        return AIL_ERROR(AIL_ERR_ARG, "%s: a value may not begin with a double quote (%s)", spelled, value);
    if (ranged && !interval_parse(o->range, &iv))
        return AIL_ERROR(AIL_ERR_ARG, "option %s: malformed range \"%s\" in the option table", o->name, o->range);
    switch (o->type) {
    case OPT_TSTR: case OPT_TCHOICE: {
        size_t n = strlen(value);
        if (n >= o->size)
            return AIL_ERROR(AIL_ERR_ARG, "%s: value too long (%zu characters, at most %zu)", spelled, n,
                             o->size - 1);
        if (o->type == OPT_TCHOICE && o->range && !choice_holds(o->range, value)) {
            char allowed[256];
            allowed_text(o, allowed, sizeof allowed);
            return AIL_ERROR(AIL_ERR_ARG, "%s must be %s, got \"%s\"", spelled, allowed, value);
        }
        if (field) memcpy(field, value, n + 1);
        return AIL_OK;
    }
    case OPT_TINT: case OPT_TLLONG: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end || isspace((unsigned char)value[0]))
            return AIL_ERROR(AIL_ERR_ARG, "%s expects an integer, got \"%s\"", spelled, value);
        long long tmin = o->type == OPT_TINT ? INT_MIN : LLONG_MIN, tmax = o->type == OPT_TINT ? INT_MAX : LLONG_MAX;
        long long lo = tmin, hi = tmax;
        if (ranged) interval_int(&iv, tmin, tmax, &lo, &hi);
        if (v < lo || v > hi) {
            if (v >= tmin && v <= tmax) return range_error(o, spelled, value);
            return AIL_ERROR(AIL_ERR_ARG, "%s must lie in [%lld, %lld], got %s", spelled, lo, hi, value);
        }
        if (field && o->type == OPT_TINT) *(int *)field = (int)v;
        else if (field) *(long long *)field = v;
        return AIL_OK;
    }
    case OPT_TDOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v) || isspace((unsigned char)value[0]))
            return AIL_ERROR(AIL_ERR_ARG, "%s expects a number, got \"%s\"", spelled, value);
        if (ranged && !interval_holds(&iv, v)) return range_error(o, spelled, value);
        if (field) *(double *)field = v;
        return AIL_OK;
    }
    case OPT_TBOOL:
        if (!parse_bool(value, field ? (int *)field : (int *)&scratch))
            return AIL_ERROR(AIL_ERR_ARG, "%s expects true or false, got \"%s\"", spelled, value);
        return AIL_OK;
    case OPT_TENUM:
        return o->parse(value, field ? (void *)field : (void *)&scratch);
    }
    return AIL_ERROR(AIL_ERR_ARG, "option %s: unknown type", o->name);
}

static int unknown_key(const OptionTable *t, const char *spelled) {
    return AIL_ERROR(AIL_ERR_ARG, "unknown config key \"%s\" (see %s --help)", spelled, t->command);
}

int options_set(const OptionTable *t, void *obj, const char *key, const char *value, const char *spelled) {
    int i = option_index(t, key);
    if (i < 0) return unknown_key(t, spelled ? spelled : key);
    return option_set(&t->opts[i], obj, spelled ? spelled : key, value);
}

int options_defaults(const OptionTable *t, void *obj) {
    for (int i = 0; i < t->n; i++) {
        const Option *o = &t->opts[i];
        if (!o->fallback) continue;  // required: left zero until given
        AIL_CHECK(option_set(o, obj, o->name, o->fallback));
    }
    return AIL_OK;
}

static void value_text(const Option *o, const void *obj, char *buf, size_t len);

int options_check(const OptionTable *t, const void *obj) {
    char value[1100];
    for (int i = 0; i < t->n; i++) {
        const Option *o = &t->opts[i];
        value_text(o, obj, value, sizeof value);
        if (!o->fallback && (o->type == OPT_TSTR || o->type == OPT_TCHOICE) && !value[0])
            return AIL_ERROR(AIL_ERR_ARG, "config key %s is required", o->name);
        AIL_CHECK(option_set(o, NULL, o->name, value));
    }
    return AIL_OK;
}

/* ---- INI text --------------------------------------------------------------- */

typedef struct {
    const OptionTable *t;
    void *obj;
    const char *text, *source;
    size_t len, pos;
    int line;            /* lines handed to inih so far = the current line number */
    int bad_line;        /* the reader's own refusal (too long, NUL byte), 0 if none */
    int rc_line;         /* line of the handler's first refusal */
    int *given_at;       /* [t->n] line of each key given in this text, 0 if not */
    int *given;          /* [t->n] or NULL: marks keys given, for the required check */
    int rc;
    char message[1024];
} IniText;

/* inih's reader: one line at a time, with leading whitespace and comments removed,
 * so inih never sees a continuation line and "#" comments work like ";" ones. */
static char *ini_read_line(char *str, int num, void *stream) {
    IniText *s = stream;
    if (s->pos >= s->len || s->bad_line || s->rc != AIL_OK) return NULL;  // stop at the first error
    const char *p = s->text + s->pos, *stop = s->text + s->len;
    const char *eol = memchr(p, '\n', (size_t)(stop - p));
    if (!eol) eol = stop;
    s->pos = (size_t)(eol - s->text) + 1;
    s->line++;
    if (memchr(p, '\0', (size_t)(eol - p))) {
        s->bad_line = s->line;
        snprintf(s->message, sizeof s->message, "NUL byte in the line");
        return NULL;
    }
    if (s->line == 1 && eol - p >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) p += 3;  // UTF-8 BOM
    while (p < eol && isspace((unsigned char)*p)) p++;
    // a comment starts at ";" or "#" at the line's start or after whitespace
    const char *end = p;
    while (end < eol && !((*end == ';' || *end == '#') && (end == p || isspace((unsigned char)end[-1]))))
        end++;
    while (end > p && isspace((unsigned char)end[-1])) end--;
    if (end - p > num - 1) {
        s->bad_line = s->line;
        snprintf(s->message, sizeof s->message, "line longer than %d characters (without comments)", num - 1);
        return NULL;
    }
    memcpy(str, p, (size_t)(end - p));
    str[end - p] = '\0';
    return str;
}

static int ini_entry(void *user, const char *section, const char *name, const char *value) {
    IniText *s = user;
    (void)section;
    if (s->rc != AIL_OK) return 1;  // report only the first bad key
    int i = option_index(s->t, name), rc;
    size_t n = strlen(value);
    char unquoted[4096];
    if (i < 0) rc = unknown_key(s->t, name);
    else if (s->given_at[i])
        rc = AIL_ERROR(AIL_ERR_ARG, "%s given twice (first on line %d)", name, s->given_at[i]);
    else if (value[0] == '"' && (n < 2 || value[n - 1] != '"'))
        rc = AIL_ERROR(AIL_ERR_ARG, "%s: unbalanced double quote in %s (a \";\" or \" #\" inside quotes "
                       "starts a comment)", name, value);
    else if (value[0] == '"' && memchr(value + 1, '"', n - 2))  // no escapes: a stored value never starts with "
        rc = AIL_ERROR(AIL_ERR_ARG, "%s: a double quote inside the quoted value %s", name, value);
    else if (value[0] == '"') {
        snprintf(unquoted, sizeof unquoted, "%.*s", (int)(n - 2), value + 1);
        rc = option_set(&s->t->opts[i], s->obj, name, unquoted);
    } else rc = option_set(&s->t->opts[i], s->obj, name, value);
    if (rc != AIL_OK) {
        snprintf(s->message, sizeof s->message, "%s", ail_error_message());
        ail_error_clear();
        s->rc = rc;
        s->rc_line = s->line;
        return 0;
    }
    s->given_at[i] = s->line;
    if (s->given) s->given[i] = 1;
    return 1;
}

static int load_text(const OptionTable *t, void *obj, const char *text, size_t len, const char *source,
                     int *given) {
    IniText s = {.t = t, .obj = obj, .text = text, .len = len, .source = source, .given = given};
    s.given_at = ail_calloc((size_t)t->n + 1, sizeof *s.given_at);
    if (!s.given_at) return AIL_ERROR(AIL_ERR_MEM, "out of memory reading %s", source);
    int line = ini_parse_stream(ini_read_line, &s, ini_entry, &s);
    free(s.given_at);
    if (line < 0) return AIL_ERROR(AIL_ERR_MEM, "%s: inih failed (%d)", source, line);
    // the first of: inih's own refusal (no "=", unclosed [section]), ours, the handler's
    if (line > 0 && (!s.bad_line || line < s.bad_line) && (s.rc == AIL_OK || line < s.rc_line))
        return AIL_ERROR(AIL_ERR_FORMAT, "%s:%d: not a key = value line or a [section]", source, line);
    if (s.bad_line) return AIL_ERROR(AIL_ERR_FORMAT, "%s:%d: %s", source, s.bad_line, s.message);
    if (s.rc != AIL_OK) return AIL_ERROR(s.rc, "%s:%d: %s", source, s.rc_line, s.message);
    return AIL_OK;
}

int options_load_buffer(const OptionTable *t, void *obj, const char *text, size_t len, const char *source) {
    return load_text(t, obj, text, len, source ? source : "config", NULL);
}

static int load_file(const OptionTable *t, void *obj, const char *path, int *given) {
    FILE *f = fopen(path, "rb");
    if (!f) return AIL_ERROR(AIL_ERR_IO, "cannot open config %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *text = ail_malloc(cap);
    while (text) {
        len += fread(text + len, 1, cap - len, f);
        if (len < cap) break;
        char *more = cap < ((size_t)1 << 30) ? ail_realloc(text, cap *= 2) : NULL;
        if (!more) free(text);
        text = more;
    }
    int bad = ferror(f);
    fclose(f);
    if (!text) return AIL_ERROR(AIL_ERR_MEM, "config %s: out of memory (or over 1 GiB)", path);
    int rc = bad ? AIL_ERROR(AIL_ERR_IO, "cannot read config %s", path) : load_text(t, obj, text, len, path, given);
    free(text);
    return rc;
}

int options_load_file(const OptionTable *t, void *obj, const char *path) {
    return load_file(t, obj, path, NULL);
}

/* ---- command lines ---------------------------------------------------------- */

static int parse_args(const OptionTable *t, void *obj, int argc, char **argv, int *action, int *given) {
    *action = OPTIONS_RUN;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            *action = OPTIONS_HELP;
            return AIL_OK;
        }
    AIL_CHECK(options_defaults(t, obj));
    int first = 1;
    if (argc > 1 && argv[1][0] != '-' && !strchr(argv[1], '=')) {
        AIL_CHECK(load_file(t, obj, argv[1], given));
        first = 2;
    }
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i], *eq = strchr(arg, '=');
        char key[128], spelled[136];
        const char *value;
        if (!strcmp(arg, "--print-config")) {
            *action = OPTIONS_PRINT;
            continue;
        }
        if (arg[0] == '-') {  // --key VALUE, --key=VALUE, --flag
            size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
            int k = -1;
            if (arg[1] == '-' && n > 2 && n - 2 < sizeof key) {
                snprintf(key, sizeof key, "%.*s", (int)(n - 2), arg + 2);
                k = option_index(t, key);
            }
            if (k < 0) return AIL_ERROR(AIL_ERR_ARG, "bad option \"%.*s\" (see %s --help)", (int)n, arg, t->command);
            snprintf(spelled, sizeof spelled, "--%s", key);
            if (eq) value = eq + 1;
            else if (t->opts[k].type == OPT_TBOOL) value = "true";
            else if (i + 1 < argc) value = argv[++i];
            else return AIL_ERROR(AIL_ERR_ARG, "option %s needs a value (see %s --help)", spelled, t->command);
            AIL_CHECK(option_set(&t->opts[k], obj, spelled, value));
            if (given) given[k] = 1;
        } else if (eq && eq != arg) {  // key=VALUE
            size_t n = (size_t)(eq - arg);
            if (n >= sizeof key) return unknown_key(t, arg);
            snprintf(key, sizeof key, "%.*s", (int)n, arg);
            int k = option_index(t, key);
            if (k < 0) return unknown_key(t, key);
            AIL_CHECK(option_set(&t->opts[k], obj, key, eq + 1));
            if (given) given[k] = 1;
        } else if (eq) {
            return AIL_ERROR(AIL_ERR_ARG, "\"%s\" is not key=value", arg);
        } else {
            return AIL_ERROR(AIL_ERR_ARG, "unexpected argument \"%s\" (a CONFIG file comes first; see %s --help)",
                             arg, t->command);
        }
    }
    if (*action == OPTIONS_PRINT) return AIL_OK;
    for (int i = 0; i < t->n; i++)
        if (!t->opts[i].fallback && !given[i]) {
            if (t->flag_style) {
                char flag[128];
                snprintf(flag, sizeof flag, "--%s", t->opts[i].name);
                for (char *c = flag; *c; c++)
                    if (*c == '_') *c = '-';
                return AIL_ERROR(AIL_ERR_ARG, "missing required option %s", flag);
            }
            return AIL_ERROR(AIL_ERR_ARG, "config key %s is required", t->opts[i].name);
        }
    return AIL_OK;
}

int options_parse_args(const OptionTable *t, void *obj, int argc, char **argv, int *action) {
    int *given = ail_calloc((size_t)t->n + 1, sizeof *given);
    if (!given) return AIL_ERROR(AIL_ERR_MEM, "out of memory parsing the command line");
    int rc = parse_args(t, obj, argc, argv, action, given);
    free(given);
    return rc;
}

/* ---- printing --------------------------------------------------------------- */

static void value_text(const Option *o, const void *obj, char *buf, size_t len) {
    const char *field = (const char *)obj + o->offset;
    switch (o->type) {
    case OPT_TSTR: case OPT_TCHOICE: snprintf(buf, len, "%s", field); break;
    case OPT_TINT: snprintf(buf, len, "%d", *(const int *)field); break;
    case OPT_TLLONG: snprintf(buf, len, "%lld", *(const long long *)field); break;
    case OPT_TDOUBLE: {  // the shortest of %.15g and %.17g that reads back exactly: 0.3, not 0.29999999999999999
        double v = *(const double *)field;
        snprintf(buf, len, "%.15g", v);
        if (strtod(buf, NULL) != v) snprintf(buf, len, "%.17g", v);
        break;
    }
    case OPT_TBOOL: snprintf(buf, len, "%s", *(const int *)field ? "true" : "false"); break;
    case OPT_TENUM: snprintf(buf, len, "%s", o->print(field)); break;
    }
}

char *options_dump(const OptionTable *t, const void *obj) {
    size_t cap = 1024, used = 0;
    char *text = ail_malloc(cap), value[1100];
    if (!text) return NULL;
    text[0] = '\0';
    for (int i = 0; i < t->n; i++) {
        value_text(&t->opts[i], obj, value, sizeof value);
        size_t need = strlen(t->opts[i].name) + strlen(value) + 5;
        if (used + need >= cap) {
            char *more = ail_realloc(text, cap = 2 * cap + need);
            if (!more) {
                free(text);
                return NULL;
            }
            text = more;
        }
        used += (size_t)snprintf(text + used, cap - used, "%s = %s\n", t->opts[i].name, value);
    }
    return text;
}

void options_help(const OptionTable *t, FILE *out) {
    if (t->flag_style)
        fprintf(out, "options (--key VALUE, --key=VALUE or key=VALUE; or key = VALUE lines in a CONFIG\n"
                     "file given first; \"-\" and \"_\" are the same in keys):\n"
                     "  %-17s %-14s %-15s %s\n", "option", "default", "allowed", "meaning");
    else
        fprintf(out, "config keys (key = value lines in CONFIG; on the command line key=value,\n"
                     "--key value or --key=value; --print-config prints the resolved keys and stops):\n"
                     "  %-17s %-14s %-15s %s\n", "key", "default", "allowed", "meaning");
    for (int i = 0; i < t->n; i++) {
        const Option *o = &t->opts[i];
        char name[128], allowed[256];
        snprintf(name, sizeof name, "%s%s", t->flag_style ? "--" : "", o->name);
        if (t->flag_style)
            for (char *c = name; *c; c++)
                if (*c == '_') *c = '-';
        allowed_text(o, allowed, sizeof allowed);
        const char *def = !o->fallback ? "(required)" : o->fallback[0] ? o->fallback : "\"\"";
        fprintf(out, "  %-17s %-14s %-15s %s\n", name, def, allowed, o->doc);
    }
    if (t->flag_style) fprintf(out, "  %-17s %-14s %-15s %s\n", "--print-config", "", "", "print the resolved values as key = value lines and stop");
}
