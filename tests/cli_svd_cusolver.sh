# `ailora svd --backend cusolver` where it cannot run: one clear error line, a
# non-zero exit and no output file, at 1 and 2 ranks. A CUDA build is checked
# with every device hidden (CUDA_VISIBLE_DEVICES=""), so this runs the same on
# machines with and without a GPU; GPU parity is tests/svd_cusolver.sh.
. "${top_srcdir:-.}/tests/lib.sh"
M="$WORK/model"
check "$AILORA" synth --out "$M" --hidden 48 --heads 4 --kv-heads 2 --layers 2 --intermediate 40
if grep -q "define AILORA_HAVE_CUDA 1" "$top_builddir/config.h"; then
    want="--backend cusolver: no CUDA device visible"
else
    want="--backend cusolver: built without CUDA (configure --with-cuda)"
fi
for np in 1 2; do
    expect_error "$want" "$WORK/out$np.h5" \
        run_np "$np" env CUDA_VISIBLE_DEVICES= "$AILORA" svd --model "$M" --backend cusolver \
        --out "$WORK/out$np.h5"
done
# `ailora init` computing its SVD on the fly goes through the same path
expect_error "$want" "$WORK/init.h5" env CUDA_VISIBLE_DEVICES= "$AILORA" init --model "$M" \
    --method pissa --rank 4 --backend cusolver --out "$WORK/init.h5"
# the name is known to the parser in every build, and listed in --help
CHECKS=$((CHECKS + 1))
"$AILORA" svd --help | grep -q "cusolver:" || fail "ailora svd --help does not mention cusolver"
expect_error 'unknown SVD backend "cuda" (auto, lapack, pdgesvd, cusolver, select, pdgebrd)' "$WORK/bad.h5" \
    "$AILORA" svd --model "$M" --backend cuda --out "$WORK/bad.h5"
finish
