# ci_skips.sh - which tests may skip under CI=true, and when (sourced by tests/lib.sh
# and tests/summary.sh). Every other test must run on CI -- Slurm, the Python
# analysis and the notebooks included -- and fails there if it skips, with the reason.
#   svd_cusolver.sh  only on a machine without a GPU (nvidia-smi lists none)
#   gpu_emu.sh       only in a build without CUDA (config.h lacks AILORA_HAVE_CUDA)
#   svd_cusolver_emu.sh  the same
ci_may_skip() {  # ci_may_skip NAME (a test's file name, gpu_emu.sh, or automake's gpu_emu)
    case ${1%.sh} in
    svd_cusolver) ! nvidia-smi -L 2> /dev/null | grep -q "^GPU" ;;
    gpu_emu | svd_cusolver_emu) ! grep -q "define AILORA_HAVE_CUDA 1" "${top_builddir:-.}/config.h" 2> /dev/null ;;
    *) false ;;
    esac
}
