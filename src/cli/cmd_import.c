/* cmd_import.c - `ailora import`: a GGUF LLaMA model as an HF model directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ailora/error.h"
#include "ailora/gguf.h"
#include "cli.h"

static const char *const import_usage =
    "usage: ailora import [--gguf] FILE.gguf --out DIR [options]\n"
    "\n"
    "Converts a GGUF LLaMA-family model (llama.cpp's format; tensors F32, F16, BF16,\n"
    "Q8_0, Q4_0 or Q4_1) into an HF LlamaForCausalLM directory: config.json,\n"
    "model.safetensors (dequantized, Q/K rows back in HF's RoPE layout),\n"
    "tokenizer.json (byte-level or SentencePiece BPE), tokenizer_config.json (with the\n"
    "chat template) and generation_config.json. DIR must not exist; it is built as\n"
    "DIR.partial and renamed when complete. FILE.gguf may be given as the first\n"
    "argument.\n"
    "\n";

typedef struct {
    char gguf[1024], out[1024];
    DType dtype;
    int quiet;
} ImportArgs;

static int dtype_parse(const char *text, void *field) {
    DType dt = dtype_from_name(text);
    if (dt != DTYPE_BF16 && dt != DTYPE_F16 && dt != DTYPE_F32)
        return AIL_ERROR(AIL_ERR_ARG, "--dtype must be BF16, F16 or F32, got \"%s\"", text);
    *(DType *)field = dt;
    return AIL_OK;
}
static const char *dtype_print(const void *field) { return dtype_name(*(const DType *)field); }

#define OPT_STRUCT ImportArgs
static const Option import_opts[] = {
    OPT_STR("gguf", gguf, NULL, "GGUF file to convert (or the first argument)"),
    OPT_STR("out", out, NULL, "HF model directory to create (must not exist)"),
    OPT_ENUM("dtype", dtype, "BF16", dtype_parse, dtype_print, "BF16 | F16 | F32: dtype of model.safetensors"),
    OPT_BOOL("quiet", quiet, "false", "no progress output"),
};
#undef OPT_STRUCT
static const OptionTable import_table = {"ailora import", import_opts,
                                         (int)(sizeof import_opts / sizeof *import_opts), 1};

static int has_gguf_magic(const char *path) {
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && !memcmp(magic, "GGUF", 4);
}

int cmd_import(int argc, char **argv) {
    ImportArgs a = {0};
    int status;
    // a first argument naming a GGUF file (by suffix or magic) is the input, not a CONFIG file
    char **args = ail_malloc(sizeof *args * (size_t)(argc + 2));
    if (!args) {
        AIL_ERROR(AIL_ERR_MEM, "out of memory");
        return cli_fail("ailora import");
    }
    int n = 0;
    args[n++] = argv[0];
    size_t len = argc > 1 ? strlen(argv[1]) : 0;
    int first = 1;
    if (argc > 1 && argv[1][0] != '-' && !strchr(argv[1], '=') &&
        ((len > 5 && !strcmp(argv[1] + len - 5, ".gguf")) || has_gguf_magic(argv[1]))) {
        args[n++] = "--gguf";
        args[n++] = argv[1];
        first = 2;
    }
    for (int i = first; i < argc; i++) args[n++] = argv[i];
    int go = cli_options(&import_table, import_usage, &a, n, args, &status);
    free(args);
    if (!go) return status;
    int rc = AIL_OK;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    // one writer: conversion is I/O and dequantization, no MPI work to share
    if (cli_rank() == 0) {
        GGUFImportOptions opt = {.dtype = a.dtype, .quiet = a.quiet};
        rc = gguf_import(a.gguf, a.out, &opt);
    }
    rc = ail_error_agree(MPI_COMM_WORLD, rc);
    if (rc != AIL_OK) return cli_fail("ailora import");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (cli_rank() == 0 && !a.quiet)
        printf("wrote %s (%.2f s)\n", a.out, (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return 0;
}
