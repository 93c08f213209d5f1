# `ailora svd --backend pdgebrd` (the distributed selected-vector route: pdgebrd,
# the bidiagonal solved on every rank, pdormbr of the kept vectors) at 1, 2 and 4
# ranks, and `ailora svd --plan`.
#  - keep all: S and every vector equal single-rank LAPACK's within 1e-12 smax and
#    the gap-aware bound 1e-12 smax / gap (tests/h5compare.c --svd)
#  - keep 4: a partial cache; the adapters that `ailora init` builds from it (pissa:
#    principal, milora: minor, rank 4) equal those built from the whole LAPACK cache
#    within 1e-10 max|x| (cli_init.sh's tolerance, on its 3-decade spectrum: minor
#    vectors good to ~1e-13; on 6 decades the gap bound alone reaches ~1e-10)
#  - --plan computes nothing and writes nothing; from config.json alone as well; a
#    bad rates file is one error line
. "${top_srcdir:-.}/tests/lib.sh"
M="$WORK/model"
# hidden 100 is no multiple of the block size 16; v_proj is wide (GQA), 6 decades
check "$AILORA" synth --out "$M" --hidden 100 --heads 4 --kv-heads 2 --layers 2 \
    --intermediate 72 --decades 6 --seed 3
check "$AILORA" svd --model "$M" --backend lapack --out "$WORK/ref.h5" --quiet
M3="$WORK/model3"
check "$AILORA" synth --out "$M3" --hidden 100 --heads 4 --kv-heads 2 --layers 2 \
    --intermediate 72 --decades 3 --seed 4
check "$AILORA" svd --model "$M3" --backend lapack --out "$WORK/ref3.h5" --quiet
for method in pissa milora; do
    check "$AILORA" init --model "$M3" --method "$method" --rank 4 --svd "$WORK/ref3.h5" \
        --out "$WORK/${method}_ref.h5" --quiet
done
for np in 1 2 4; do
    check run_np "$np" "$AILORA" svd --model "$M" --backend pdgebrd --block 16 --out "$WORK/all_np$np.h5" --quiet
    check "$H5COMPARE" "$WORK/ref.h5" "$WORK/all_np$np.h5" --svd --tol 1e-12
    check run_np "$np" "$AILORA" svd --model "$M3" --backend pdgebrd --keep 4 --block 16 \
        --out "$WORK/k4_np$np.h5" --quiet
    for method in pissa milora; do
        check "$AILORA" init --model "$M3" --method "$method" --rank 4 --svd "$WORK/k4_np$np.h5" \
            --out "$WORK/${method}_np$np.h5" --quiet
        check "$H5COMPARE" "$WORK/${method}_ref.h5" "$WORK/${method}_np$np.h5" --tol 1e-10
    done
done
# a rank the partial cache cannot serve is refused by the reader
expect_error "recompute the cache with a larger" "$WORK/bad_init.h5" \
    "$AILORA" init --model "$M3" --method pissa --rank 8 --svd "$WORK/k4_np2.h5" --out "$WORK/bad_init.h5" --quiet

# --plan: a schedule and predictions, nothing computed or written
check run_np 2 "$AILORA" svd --model "$M" --plan --keep 4 --out "$WORK/plan.h5"
for want in "2 rank(s)" "phase 0:" "memory per rank" "total: predicted"; do
    CHECKS=$((CHECKS + 1))
    grep -q "$want" "$WORK/last.out" || fail "--plan output lacks \"$want\""
done
CHECKS=$((CHECKS + 1))
[ ! -e "$WORK/plan.h5" ] || fail "--plan wrote $WORK/plan.h5"
mkdir -p "$WORK/cfg"
cp "$M/config.json" "$WORK/cfg/"
check "$AILORA" svd --model "$WORK/cfg" --plan --ranks 64 --node-cores 16 --max-rank-mem 1 \
    --targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
for want in "14 target matrices" "config.json only" "64 rank(s), 16 per node"; do
    CHECKS=$((CHECKS + 1))
    grep -q "$want" "$WORK/last.out" || fail "--plan (config.json only) output lacks \"$want\""
done
printf 'gesdd 1e-9\nbogus 1\n' > "$WORK/bad_rates.txt"
expect_error "bad_rates.txt:2: expected" "" "$AILORA" svd --model "$M" --plan --rates "$WORK/bad_rates.txt"
expect_error "missing required option --out" "" "$AILORA" svd --model "$M"
ls "$WORK"/*.partial > /dev/null 2>&1 && fail "partial files left behind"
finish
