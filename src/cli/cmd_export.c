/* cmd_export.c - `ailora export`: a run's adapters for transformers + PEFT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/export.h"
#include "cli.h"

static const char *const export_usage =
    "usage: [mpirun -np N] ailora export RUN.h5 --out DIR [options]\n"
    "\n"
    "Writes the trained adapters of a run file (ailora train) for transformers + PEFT:\n"
    "  DIR/residual/           HF model with W_res = W - s B0 A0 (the run's init A0, B0) in\n"
    "                          place of each target, as the run held it\n"
    "  DIR/adapter/            the trained adapter (PEFT LoRA) for DIR/residual\n"
    "  DIR/lora_for_original/  a plain LoRA for the ORIGINAL model: PEFT's PiSSA-to-LoRA\n"
    "                          conversion [A; A0], [B, -B0], rank and alpha doubled (the\n"
    "                          trained adapter itself when B0 = 0, as for method lora)\n"
    "  DIR/merged/             HF model with W_res + s B A (= W + s (B A - B0 A0))\n"
    "Tokenizer and generation files are copied from the model directory. The model\n"
    "directory must be the one the run was trained on (model fingerprint checked).\n"
    "RUN.h5 may also be given as --run; a CONFIG file (key = value lines) may come first.\n"
    "\n";

typedef struct {
    char run[1024], out[1024], model[1024], dtype[8];
    int overwrite, quiet;
} ExportArgs;

#define OPT_STRUCT ExportArgs
static const Option export_opts[] = {
    OPT_STR("run", run, NULL, "run file of ailora train (or its checkpoint)"),
    OPT_STR("out", out, NULL, "output directory (written as DIR.partial, then renamed)"),
    OPT_CHOICE("dtype", dtype, "model", "model|bf16|fp16|fp32",
               "dtype of the two models (model: the model's; adapters are always fp32)"),
    OPT_STR("model", model, "", "the model directory, if it moved (empty: as the run file records)"),
    OPT_BOOL("overwrite", overwrite, "false", "replace DIR if it is an earlier export"),
    OPT_BOOL("quiet", quiet, "false", "no progress output"),
};
#undef OPT_STRUCT
static const OptionTable export_table = {"ailora export", export_opts,
                                         (int)(sizeof export_opts / sizeof *export_opts), 1};

/* 1 if path starts with HDF5's signature (a run file rather than a CONFIG file). */
static int is_hdf5(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 1;  // missing: taken as the run file, whose absence is then the error
    unsigned char sig[8] = {0};
    size_t n = fread(sig, 1, sizeof sig, f);
    fclose(f);
    return n == 8 && memcmp(sig, "\211HDF\r\n\032\n", 8) == 0;
}

int cmd_export(int argc, char **argv) {
    // `ailora export RUN.h5 ...`: the positional run file becomes --run RUN.h5
    char **args = ail_calloc((size_t)argc + 2, sizeof *args);
    if (ail_error_agree(MPI_COMM_WORLD, args ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory")) != AIL_OK) {
        free(args);
        return cli_fail("ailora export");
    }
    int nargs = 0;
    args[nargs++] = argv[0];
    int first = 1;
    if (argc > 1 && argv[1][0] != '-' && !strchr(argv[1], '=') && is_hdf5(argv[1])) {
        args[nargs++] = "--run";
        args[nargs++] = argv[1];
        first = 2;
    }
    for (int i = first; i < argc; i++) args[nargs++] = argv[i];
    ExportArgs a = {0};
    int status;
    int go = cli_options(&export_table, export_usage, &a, nargs, args, &status);
    free(args);
    if (!go) return status;
    // "DIR/" names DIR: DIR.partial must be its sibling, not "DIR/.partial"
    for (size_t n = strlen(a.out); n > 1 && a.out[n - 1] == '/'; n--) a.out[n - 1] = '\0';
    DType dt = DTYPE_INVALID;
    if (!strcmp(a.dtype, "bf16")) dt = DTYPE_BF16;
    else if (!strcmp(a.dtype, "fp16")) dt = DTYPE_F16;
    else if (!strcmp(a.dtype, "fp32")) dt = DTYPE_F32;
    ExportOptions opt = {.run_path = a.run, .out_dir = a.out, .model_dir = a.model[0] ? a.model : NULL,
                         .dtype = dt, .overwrite = a.overwrite, .verbose = !a.quiet && cli_rank() == 0};
    if (export_run(MPI_COMM_WORLD, &opt) != AIL_OK) return cli_fail("ailora export");
    if (opt.verbose) printf("wrote %s\n", a.out);
    return 0;
}
