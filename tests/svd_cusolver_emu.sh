# `ailora svd --backend cusolver` without a GPU: src/cuda/gpu_svd.cu compiled as C++
# against tests/gpu/cuda_emu.cpp with -DAILORA_EMU_CUSOLVER (the CUDA runtime,
# cuBLAS geam and cuSOLVER gesvd on the CPU, gesvd by LAPACK dgesvd), in the emulated
# CUDA plugin the real ailora loads (tests/gpu/emu_plugin.sh, AILORA_CUDA_PLUGIN). Checks the host side of the cuSOLVER route:
# the streamed pipe (two slots, each its own stream and handles), the on-device
# gather of the kept vectors (copies / transposes per contiguous index range), the
# leading dimensions and transposes of square, wide and tall matrices, canonical
# signs, and the error paths:
#  - against --backend lapack (dgesdd) with h5compare --svd --tol 1e-12 (the bound
#    of tests/svd_cusolver.sh) at 1 and 2 ranks, --keep all and several K (K >= k/2
#    included, where [0, K) and [k-K, k) merge into one range), on an F32 model
#    (every module type: square q/o, GQA-wide k/v, wide gate/up, tall down) and a
#    BF16 one; 8 to 14 matrices per rank, so the pipe has two streams busy at once
#  - the device-to-host traffic is exactly the kept vectors: sum over matrices of
#    k + nk (m + n) doubles and the info int (the emulation counts the bytes)
#  - an emulated allocation failure and a non-convergence (devInfo > 0) mid-pipe:
#    one error line naming the call and the shape, non-zero exit, no output or
#    partial file; the emulation aborts on any misuse (double destroy, dead pointer),
#    which a small program checks first
# Skipped in builds without CUDA (the headers are needed) or without g++.
. "${top_srcdir:-.}/tests/lib.sh"
grep -q "define AILORA_HAVE_CUDA 1" "$top_builddir/config.h" 2>/dev/null || skip "built without CUDA"
command -v g++ > /dev/null || skip "no g++"
CUDA_INC=${CUDA_CFLAGS#-I}

# the real ailora with an emulated CUDA plugin (tests/gpu/emu_plugin.sh)
E="$WORK/emu_plugin"
EMU_CFLAGS=${EMU_CFLAGS:-}
check sh "$top_srcdir/tests/gpu/emu_plugin.sh" "$E"
[ -f "$E/libailora-cuda-emu.so" ] || { finish; exit 1; }
AILORA_CUDA_PLUGIN="$E/libailora-cuda-emu.so"
export AILORA_CUDA_PLUGIN
EMU="$AILORA"

# the emulation's own misuse checks: each case must abort with "cuda_emu: misuse"
cat > "$E/misuse.cpp" << 'EOF'
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int c = argc > 1 ? atoi(argv[1]) : 0;
    cudaStream_t s;
    cublasHandle_t h;
    double *d, one = 1, zero = 0;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    cublasCreate(&h);
    cublasSetStream(h, s);
    cudaMalloc((void **)&d, 4 * sizeof(double));
    if (c == 1) cudaStreamDestroy(s), cudaStreamDestroy(s);  // destroyed twice
    if (c == 2) cudaFree(d), cudaFree(d);                    // freed twice
    if (c == 3) cudaFree(d), cublasDgeam(h, CUBLAS_OP_T, CUBLAS_OP_N, 2, 2, &one, d, 2, &zero, d, 2, d, 2);
    if (c == 4) cublasDgeam(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 4, &one, d, 2, &zero, d, 2, d, 2);  // overruns d
    if (c == 5) cublasDestroy(h), cublasDestroy(h);
    return 0;
}
EOF
# shellcheck disable=SC2086
check g++ -O2 $EMU_CFLAGS -I"$CUDA_INC" "$E/misuse.cpp" "$E/cuda_emu.o" -o "$E/misuse" $EMU_LIBS
for c in 1 2 3 4 5; do
    CHECKS=$((CHECKS + 1))
    rc=0
    "$E/misuse" "$c" > "$WORK/misuse.txt" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ] || ! grep -q "cuda_emu: misuse" "$WORK/misuse.txt"; then
        fail "emulation misuse case $c not caught"
    fi
done
CHECKS=$((CHECKS + 1))
"$E/misuse" 0 || fail "emulation: correct use reported as misuse"

# expected_d2h FILE: bytes a one-rank run copies back for FILE's modules: per module
# 8 (k + m nk + nk n) + 4 (gesvd's info), read off the datasets' shapes
expected_d2h() {
    h5ls -r "$1" | awk '
        /\/S +Dataset/  { gsub(/[{}]/, "", $3); s += $3; mods++ }
        /\/(U|Vt) +Dataset/ { d = $3 $4; gsub(/[{} ]/, "", d); split(d, a, ","); s += a[1] * a[2] }
        END { printf "%.0f\n", 8 * s + 4 * mods }'
}

# run_case MODEL TARGETS NAME KEEP...: per K, the lapack reference, then cusolver at
# 1 and 2 ranks against it; at 1 rank the D2H bytes and the two busy streams too
run_case() {
    local model=$1 targets=$2 name=$3
    shift 3
    for keep in "$@"; do
        local ref="$WORK/${name}_ref_$keep.h5"
        check "$AILORA" svd --model "$model" --targets "$targets" --backend lapack --keep "$keep" --out "$ref" --quiet
        for np in 1 2; do
            local out="$WORK/${name}_cu_${keep}_np$np.h5" log="$WORK/${name}_${keep}_np$np.log"
            rm -f "$log"
            check run_np "$np" env AILORA_EMU_LOG="$log" "$EMU" svd --model "$model" --targets "$targets" \
                --backend cusolver --keep "$keep" --out "$out" --quiet
            check "$H5COMPARE" "$ref" "$out" --svd --tol 1e-12
            CHECKS=$((CHECKS + 1))
            h5dump -a /backend "$out" 2> /dev/null | grep -q '"cusolver"' || fail "$out: backend attribute is not cusolver"
            CHECKS=$((CHECKS + 1))
            local busy
            busy=$(sed -n 's/.*max_busy_streams=\([0-9]*\).*/\1/p' "$log" 2> /dev/null | sort -n | head -1)
            [ "${busy:-0}" -ge 2 ] || fail "$name keep $keep np $np: at most ${busy:-?} stream(s) busy at once, want 2"
            if [ "$np" -eq 1 ]; then
                CHECKS=$((CHECKS + 1))
                local got want
                got=$(sed -n 's/^d2h_bytes=\([0-9]*\).*/\1/p' "$log")
                want=$(expected_d2h "$out")
                [ "$got" = "$want" ] || fail "$name keep $keep: $got bytes copied to the host, want $want (the kept vectors only)"
                echo "    $name keep $keep: d2h $got bytes, streams busy at once: $busy"
            fi
        done
    done
}

ALL=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
# F32, 4 layers x 7 modules: q/o 96x96, k/v 48x96 (GQA), gate/up 160x96 (tall),
# down 96x160 (wide); a spectrum over 6 decades
M="$WORK/model"
check "$AILORA" synth --out "$M" --hidden 96 --heads 4 --kv-heads 2 --layers 4 --intermediate 160 \
    --shards 2 --structured "$ALL" --decades 6 --seed 1
run_case "$M" "$ALL" f32 all 1 7 30
# BF16, 2 layers x 7: q/o 64x64, k/v 16x64, gate/up 96x64, down 64x96
B="$WORK/bf16"
check "$AILORA" synth --out "$B" --dtype BF16 --hidden 64 --heads 8 --kv-heads 2 --layers 2 \
    --intermediate 96 --structured "$ALL" --decades 3
run_case "$B" "$ALL" bf16 all 5 20

# errors mid-pipe: one line naming the call and the shape, nothing left behind.
# cudaMalloc calls: each slot's setup allocates 1, each new largest matrix up to 7
expect_error "cudaMalloc of" "$WORK/oom.h5" \
    env AILORA_EMU_MALLOC_FAIL=12 "$EMU" svd --model "$M" --targets "$ALL" --backend cusolver --out "$WORK/oom.h5"
expect_error "matrix)" "$WORK/oom.h5" \
    env AILORA_EMU_MALLOC_FAIL=12 "$EMU" svd --model "$M" --targets "$ALL" --backend cusolver --out "$WORK/oom.h5"
# the third gesvd of each rank does not converge (two more matrices queued or done)
expect_error "cusolverDnDgesvd did not converge on a" "$WORK/noconv.h5" \
    run_np 2 env AILORA_EMU_GESVD_NOCONV=3 "$EMU" svd --model "$M" --targets "$ALL" --backend cusolver \
    --keep 7 --out "$WORK/noconv.h5"
expect_error "did not converge" "$WORK/noconv1.h5" \
    env AILORA_EMU_GESVD_NOCONV=1 "$EMU" svd --model "$B" --targets "$ALL" --backend cusolver --out "$WORK/noconv1.h5"
CHECKS=$((CHECKS + 1))
ls "$WORK"/*.partial > /dev/null 2>&1 && fail "partial files left behind"
finish
