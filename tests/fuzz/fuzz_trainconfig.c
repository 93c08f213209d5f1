/* fuzz_trainconfig.c - libFuzzer harness of the INI training config (src/train/trainconfig.c).
 *
 * The input is a config file, optionally followed by the marker line "#OVERRIDES#"
 * and key=value command-line overrides, one per line. The first byte also picks
 * the world size config_validate checks against. Accepted configs are validated
 * and dumped (the text stored in run files), as `ailora train` does.
 *
 * config_load reads a path; load_config() is the one place that would call a
 * buffer entry point instead, once trainconfig.c has one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/trainconfig.h"
#include "fuzz_common.h"

static int load_config(const uint8_t *text, size_t len, int noverrides, char **overrides,
                       TrainConfig *cfg) {
    char path[600];
    fuzz_path(path, sizeof path, "train.ini");
    fuzz_write(path, text, len);
    return config_load(path, noverrides, overrides, cfg);
}

/* 1 when every value of a dump is one INI can carry unchanged: inih strips
 * surrounding blanks and drops " ;" comments, so a value with those cannot round-trip
 * (a limitation of the file format, not a bug; the comparison skips such dumps). */
static int dump_is_plain(const char *dump) {
    for (const char *line = dump; *line;) {
        const char *v = strstr(line, " = "), *end = strchr(line, '\n');
        if (!v || !end) return 0;
        v += 3;
        if (v < end && (v[0] == ' ' || v[0] == '\t' || end[-1] == ' ' || end[-1] == '\t')) return 0;
        for (const char *c = v; c < end; c++)
            if (*c == ';' || *c == '#' || (unsigned char)*c < 0x20 || *c == 0x7f) return 0;
        line = end + 1;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int world = size ? 1 + data[0] % 8 : 1;
    const char *marker = "\n#OVERRIDES#\n";
    const uint8_t *split = memmem(data, size, marker, strlen(marker));
    size_t ntext = split ? (size_t)(split - data) : size;
    // overrides: NUL-terminated copies of the lines after the marker
    char *ov = NULL, *argv[64];
    int nov = 0;
    if (split) {
        size_t skip = ntext + strlen(marker), n = size - skip;
        ov = malloc(n + 1);
        FUZZ_ASSERT(ov != NULL);
        memcpy(ov, data + skip, n);
        ov[n] = '\0';
        for (char *line = ov; line && nov < 64;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = '\0';
            argv[nov++] = line;
            line = nl ? nl + 1 : NULL;
        }
    }
    ail_error_clear();
    TrainConfig cfg;
    int rc = load_config(data, ntext, nov, argv, &cfg);
    fuzz_check_error(rc);
    if (rc == AIL_OK) {
        FUZZ_ASSERT(memchr(cfg.model, '\0', sizeof cfg.model) && memchr(cfg.out, '\0', sizeof cfg.out));
        FUZZ_ASSERT(memchr(cfg.targets, '\0', sizeof cfg.targets) && memchr(cfg.device, '\0', sizeof cfg.device));
        ail_error_clear();
        rc = config_validate(&cfg, world);
        fuzz_check_error(rc);
        char *dump = config_dump(&cfg);
        FUZZ_ASSERT(dump != NULL);
        // the dump must load back to the same dump (run files store it; resume compares it)
        TrainConfig again;
        ail_error_clear();
        int rc2 = load_config((const uint8_t *)dump, strlen(dump), 0, NULL, &again);
        if (rc2 == AIL_OK && dump_is_plain(dump)) {
            char *dump2 = config_dump(&again);
            FUZZ_ASSERT(dump2 != NULL && strcmp(dump, dump2) == 0);
            free(dump2);
        }
        free(dump);
    }
    free(ov);
    return 0;
}
