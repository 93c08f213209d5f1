/* options.h - one option table per command: every command documents, validates and
 * accepts its options the same way (DESIGN.md section 3).
 *
 * A table row names an option, the field of the command's options struct that holds
 * it, its default (as text), its allowed values and one line of documentation:
 *
 *     #define OPT_STRUCT SvdArgs
 *     static const Option svd_opts[] = {
 *         OPT_STR("model", model, NULL, "HF model directory"),             // NULL default: required
 *         OPT_INT("block", block, "64", "[1, 4096]", "ScaLAPACK block size"),
 *         OPT_DBL("lr", optim.lr, "1e-4", "(0, inf)", "peak learning rate"),
 *         OPT_CHOICE("device", device, "cpu", "cpu|cuda", "where to run"),
 *         OPT_BOOL("quiet", quiet, "false", "no progress output"),
 *     };
 *
 * Ranges are intervals "[lo, hi]" with "(" / ")" for open ends and "inf" for no
 * bound (integer types stop at their largest value); NULL accepts any value.
 *
 * Where values come from, later ones winning (options_parse_args):
 *     defaults < CONFIG file (the first argument, when it has no "=" and no leading "-")
 *              < command-line arguments in order: --key VALUE, --key=VALUE, key=VALUE
 * Keys may be spelled with "-" or "_" (--ratio-q, ratio_q). A bool given as a bare
 * flag (--quiet) is true. Command-line values are taken verbatim (the shell quotes).
 *
 * CONFIG files are INI (inih): key = value (or key: value) lines; [sections] group
 * keys and are otherwise ignored; ";" or "#" at the start of a line or after
 * whitespace starts a comment (also after a value: "rank = 8   # r"); a value in
 * double quotes has them removed ("a b" keeps its spaces; a comment character
 * inside the quotes still starts a comment, and the unbalanced quote left is an
 * error). Lines are at most 199 characters (libinih's limit, an error beyond);
 * leading whitespace is ignored (no continuation lines); a key given twice in one
 * file is an error. Every error is one message naming the key, the value and what
 * is allowed (file:line first for files), recorded with AIL_ERROR.
 */
#ifndef AILORA_OPTIONS_H
#define AILORA_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    OPT_TSTR,     /* char[size] */
    OPT_TINT,     /* int, range checked */
    OPT_TLLONG,   /* long long, range checked */
    OPT_TDOUBLE,  /* double, finite, range checked */
    OPT_TBOOL,    /* int 0/1: true|false|yes|no|1|0 */
    OPT_TCHOICE,  /* char[size] holding one of the "a|b|c" words of range */
    OPT_TENUM     /* an enum parsed and named by the row's functions */
} OptionType;

typedef struct {
    const char *name;      /* key: lower case, words joined by "_" */
    OptionType type;
    size_t offset, size;   /* the field in the options struct (size: string buffers) */
    const char *fallback;  /* default as text; NULL: required (must be given) */
    const char *range;     /* numbers: interval; OPT_TCHOICE: "a|b|c"; NULL: anything */
    const char *doc;
    int (*parse)(const char *text, void *field);  /* OPT_TENUM: AIL_OK or AIL_ERROR(...) */
    const char *(*print)(const void *field);      /* OPT_TENUM */
} Option;

typedef struct {
    const char *command;  /* "ailora svd": errors and help name it */
    const Option *opts;
    int n;
    int flag_style;       /* help lists --flags (1) or config keys (0) */
} OptionTable;

/* Row constructors; OPT_STRUCT names the options struct. The _Generic selections
 * make a row whose field has the wrong type a compile error. */
#define OPT_FIELD_(field) offsetof(OPT_STRUCT, field), sizeof(((OPT_STRUCT *)0)->field)
#define OPT_STR(name, field, def, doc) \
    {name, _Generic(((OPT_STRUCT *)0)->field, char *: OPT_TSTR), OPT_FIELD_(field), def, NULL, doc, 0, 0}
#define OPT_INT(name, field, def, range, doc) \
    {name, _Generic(((OPT_STRUCT *)0)->field, int: OPT_TINT), OPT_FIELD_(field), def, range, doc, 0, 0}
#define OPT_LLONG(name, field, def, range, doc) \
    {name, _Generic(((OPT_STRUCT *)0)->field, long long: OPT_TLLONG), OPT_FIELD_(field), def, range, doc, 0, 0}
#define OPT_DBL(name, field, def, range, doc) \
    {name, _Generic(((OPT_STRUCT *)0)->field, double: OPT_TDOUBLE), OPT_FIELD_(field), def, range, doc, 0, 0}
#define OPT_BOOL(name, field, def, doc) \
    {name, _Generic(((OPT_STRUCT *)0)->field, int: OPT_TBOOL), OPT_FIELD_(field), def, NULL, doc, 0, 0}
#define OPT_CHOICE(name, field, def, choices, doc) \
    {name, _Generic(((OPT_STRUCT *)0)->field, char *: OPT_TCHOICE), OPT_FIELD_(field), def, choices, doc, 0, 0}
#define OPT_ENUM(name, field, def, parse, print, doc) \
    {name, OPT_TENUM, OPT_FIELD_(field), def, NULL, doc, parse, print}

/* Every option's default (a table whose defaults do not pass is an error). */
int options_defaults(const OptionTable *t, void *obj);
/* Sets one option from text. spelled: how the user wrote the key, for messages
 * (NULL: the key itself). Unknown keys are errors. */
int options_set(const OptionTable *t, void *obj, const char *key, const char *value, const char *spelled);
/* Checks the values obj holds against the table (for structs filled by hand). */
int options_check(const OptionTable *t, const void *obj);
/* Applies INI text [len] (need not be NUL-terminated; NUL bytes are an error) on top
 * of what obj holds; source names it in errors ("run.ini"). For fuzzing as well:
 * any input gives AIL_OK or an error, never a crash (clear with ail_error_clear). */
int options_load_buffer(const OptionTable *t, void *obj, const char *text, size_t len, const char *source);
int options_load_file(const OptionTable *t, void *obj, const char *path);

enum { OPTIONS_RUN = 0, OPTIONS_HELP, OPTIONS_PRINT };
/* The whole command line (argv[0] is the command's name; obj zeroed by the caller,
 * required options stay zero until given): defaults, CONFIG,
 * then the arguments in order; --help / -h anywhere gives OPTIONS_HELP (nothing
 * else parsed), --print-config OPTIONS_PRINT (everything parsed, required options
 * not checked); else required options are checked and OPTIONS_RUN is the action. */
int options_parse_args(const OptionTable *t, void *obj, int argc, char **argv, int *action);

/* The resolved values as "key = value" lines (malloc'ed; NULL when out of memory). */
char *options_dump(const OptionTable *t, const void *obj);
/* One line per option: key (or --flag), default, allowed values, meaning. */
void options_help(const OptionTable *t, FILE *out);

#endif
