/* ailora.c - the `ailora` program: dispatch to subcommands under MPI. */
#include <blis.h>
#include <stdio.h>
#include <string.h>

#include "ailora/cpu.h"
#include "ailora/error.h"
#include "ailora/h5io.h"
#include "cli.h"
#include "config.h"

static void usage(FILE *out) {
    fprintf(out,
            "ailora %s - SVD-initialized LoRA adapters for transformer LMs\n"
            "\n"
            "usage: [mpirun -np N] ailora COMMAND [CONFIG] [--key VALUE | --key=VALUE | key=VALUE ...]\n"
            "\n"
            "commands:\n"
            "  svd     full-spectrum SVDs of the target weights -> SVD cache (HDF5)\n"
            "  init    LoRA / PiSSA / MiLoRA / AILoRA / ratio adapters -> INIT.h5\n"
            "  train   fine-tune adapters (data-parallel) -> HDF5 run file + checkpoint\n"
            "  synth   write a LLaMA-shaped HF model with prescribed singular spectra\n"
            "  export  a run's trained adapters for transformers + PEFT (residual, LoRA, merged)\n"
            "  import  a GGUF LLaMA model (llama.cpp) as an HF model directory\n"
            "\n"
            "`ailora COMMAND --help` lists each command's options (CONFIG: key = value lines,\n"
            "overridden by the options after it). Build: %s\n",
            PACKAGE_VERSION,
#ifdef AILORA_HAVE_CUDA
            "CPU + CUDA"
#else
            "CPU"
#endif
    );
}

int main(int argc, char **argv) {
    cpu_tune_malloc();  // before the first large allocation
    cpu_tune_blis();    // before any BLIS call
    // BLIS / OpenMP threads compute; only the main thread calls MPI
    int provided;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    if (provided < MPI_THREAD_FUNNELED) {
        if (cli_rank() == 0)
            fprintf(stderr, "ailora: error: the MPI library provides thread level %d, ailora needs "
                    "MPI_THREAD_FUNNELED (%d)\n", provided, MPI_THREAD_FUNNELED);
        MPI_Finalize();
        return 1;
    }
    h5io_quiet();
    int status;
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "svd") == 0) status = cmd_svd(argc - 1, argv + 1);
    else if (strcmp(cmd, "init") == 0) status = cmd_init(argc - 1, argv + 1);
    else if (strcmp(cmd, "synth") == 0) status = cmd_synth(argc - 1, argv + 1);
    else if (strcmp(cmd, "train") == 0) status = cmd_train(argc - 1, argv + 1);
    else if (strcmp(cmd, "export") == 0) status = cmd_export(argc - 1, argv + 1);
    else if (strcmp(cmd, "import") == 0) status = cmd_import(argc - 1, argv + 1);
    else if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (cli_rank() == 0) usage(stdout);
        status = 0;
    } else if (strcmp(cmd, "--version") == 0) {
        if (cli_rank() == 0) printf("ailora %s (BLIS kernels: %s)\n", PACKAGE_VERSION, cpu_tune_blis());
        status = 0;
    } else {
        if (cli_rank() == 0) {
            if (*cmd) fprintf(stderr, "ailora: error: unknown command \"%s\"\n", cmd);
            usage(stderr);
        }
        status = 2;
    }
    ail_fault_report();  // AILORA_FAULT=count: fault points passed (tests/fault_inject.sh)
    MPI_Finalize();
    return status;
}
