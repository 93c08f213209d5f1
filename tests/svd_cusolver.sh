# `ailora svd --backend cusolver` against single-rank LAPACK (dgesdd) at 1 and 2
# ranks: S within 1e-12 * smax, each singular pair within the gap-aware bound
# 1e-12 * smax / gap (tests/h5compare.c) -- the tolerance the CPU backends meet.
# gesvd on the GPU is backward stable like dgesdd (errors ~ n eps smax, about
# 1e-14 here for n <= 128), so 1e-12 leaves two orders of margin without hiding a
# wrong factor or a sign flip (those are O(1)). Skipped (77) without a GPU.
. "${top_srcdir:-.}/tests/lib.sh"
M="$WORK/model"
check "$AILORA" synth --out "$M" --hidden 100 --heads 4 --kv-heads 2 --layers 3 \
    --intermediate 72 --shards 2 --decades 6 --seed 1
rc=0
"$AILORA" svd --model "$M" --backend cusolver --out "$WORK/probe.h5" --quiet > "$WORK/probe.txt" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] && grep -qE "no CUDA device visible|built without CUDA" "$WORK/probe.txt"; then
    skip "$(grep 'error:' "$WORK/probe.txt" | head -1)"
fi
check test "$rc" -eq 0
check "$AILORA" svd --model "$M" --backend lapack --out "$WORK/ref.h5" --quiet
check "$H5COMPARE" "$WORK/ref.h5" "$WORK/probe.h5" --svd --tol 1e-12
for np in 1 2; do
    out="$WORK/cusolver_np$np.h5"
    check run_np "$np" "$AILORA" svd --model "$M" --backend cusolver --out "$out"
    check "$H5COMPARE" "$WORK/ref.h5" "$out" --svd --tol 1e-12
done
# GQA-wide k/v and tall/wide MLP matrices of a BF16 model, every module type
B="$WORK/bf16"
ALL=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
check "$AILORA" synth --out "$B" --dtype BF16 --hidden 64 --heads 8 --kv-heads 2 --layers 2 \
    --intermediate 96 --structured "$ALL" --decades 3
check "$AILORA" svd --model "$B" --targets "$ALL" --backend lapack --out "$WORK/bref.h5" --quiet
check run_np 2 "$AILORA" svd --model "$B" --targets "$ALL" --backend cusolver --out "$WORK/bcu.h5" --quiet
check "$H5COMPARE" "$WORK/bref.h5" "$WORK/bcu.h5" --svd --tol 1e-12
# --keep: only the kept vectors are gathered on the GPU and copied back (K = 5 two
# ranges; K = 20 >= k/2 of the GQA k/v, merged into one)
for keep in 5 20; do
    check "$AILORA" svd --model "$B" --targets "$ALL" --backend lapack --keep "$keep" --out "$WORK/bref$keep.h5" --quiet
    check run_np 2 "$AILORA" svd --model "$B" --targets "$ALL" --backend cusolver --keep "$keep" \
        --out "$WORK/bcu$keep.h5" --quiet
    check "$H5COMPARE" "$WORK/bref$keep.h5" "$WORK/bcu$keep.h5" --svd --tol 1e-12
done
CHECKS=$((CHECKS + 1))
h5dump -a /backend "$WORK/bcu.h5" 2> /dev/null | grep -q '"cusolver"' || fail "backend attribute is not cusolver"
ls "$WORK"/*.partial > /dev/null 2>&1 && fail "partial files left behind"
finish
