# `ailora svd`: every backend at 1, 2 and 4 ranks gives the spectra and singular
# vectors of single-rank LAPACK, within 1e-12 * smax for S and the gap-aware bound
# 1e-12 * smax / gap for each singular pair (see tests/h5compare.c).
. "${top_srcdir:-.}/tests/lib.sh"
M="$WORK/model"
# hidden 100 is no multiple of the block sizes; 2 shards exercise the index file
check "$AILORA" synth --out "$M" --hidden 100 --heads 4 --kv-heads 2 --layers 3 \
    --intermediate 72 --shards 2 --decades 6 --seed 1
check "$AILORA" svd --model "$M" --backend lapack --out "$WORK/ref.h5" --quiet
for np in 1 2 4; do
    for backend in lapack pdgesvd auto; do
        out="$WORK/svd_${backend}_np$np.h5"
        check run_np "$np" "$AILORA" svd --model "$M" --backend "$backend" --block 16 --out "$out" --quiet
        check "$H5COMPARE" "$WORK/ref.h5" "$out" --svd --tol 1e-12
    done
done
# auto's other schedules: pdgesvd on two sub-grids of 2 ranks side by side, and a
# memory cap that sends the larger matrices (q_proj) to a grid of all ranks
check run_np 4 "$AILORA" svd --model "$M" --grid-ranks 2 --block 8 --out "$WORK/sub.h5"
CHECKS=$((CHECKS + 1))
grep -q "phase 0: 2 group(s) of 2 rank(s)" "$WORK/last.out" || fail "auto --grid-ranks 2 did not plan 2 sub-grids"
check "$H5COMPARE" "$WORK/ref.h5" "$WORK/sub.h5" --svd --tol 1e-12
check run_np 2 "$AILORA" svd --model "$M" --max-rank-mem 0.0003 --block 16 --out "$WORK/cap.h5"
CHECKS=$((CHECKS + 1))
grep -q "phase 1: 1 group(s) of 2 rank(s)" "$WORK/last.out" || fail "--max-rank-mem did not plan an all-rank phase"
check "$H5COMPARE" "$WORK/ref.h5" "$WORK/cap.h5" --svd --tol 1e-12

# an odd block size, and every linear module of a BF16 model with GQA
check run_np 4 "$AILORA" svd --model "$M" --backend pdgesvd --block 7 --out "$WORK/b7.h5" --quiet
check "$H5COMPARE" "$WORK/ref.h5" "$WORK/b7.h5" --svd --tol 1e-12
B="$WORK/bf16"
ALL=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
check "$AILORA" synth --out "$B" --dtype BF16 --hidden 64 --heads 8 --kv-heads 2 --layers 2 \
    --intermediate 96 --structured "$ALL" --decades 3
check "$AILORA" svd --model "$B" --targets "$ALL" --backend lapack --out "$WORK/bref.h5" --quiet
check run_np 2 "$AILORA" svd --model "$B" --targets "$ALL" --backend pdgesvd --block 8 --out "$WORK/bpd.h5" --quiet
check "$H5COMPARE" "$WORK/bref.h5" "$WORK/bpd.h5" --svd --tol 1e-12
ls "$WORK"/*.partial > /dev/null 2>&1 && fail "partial files left behind"
finish
