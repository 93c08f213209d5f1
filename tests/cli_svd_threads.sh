# `ailora svd --threads N|auto`: BLIS threads per rank for the one-rank routes.
# --threads 2 gives the cache of --threads 1 within h5compare --svd --tol 1e-12 for
# the lapack and select routes (not bit for bit in general: threaded BLIS splits
# gemm's sums differently, so the rounding differs), on 1 and 2 ranks; the root
# attribute threads_per_rank records the count; auto takes BLIS_NUM_THREADS, else
# OMP_NUM_THREADS, else the rank's affinity CPUs (at most the node's CPUs / its
# ranks), and an explicit N overrides the environment; bad counts are refused with
# one line naming the option and no output; --plan shows ranks x threads, compares
# layouts of the same cores, and its choice between one threaded rank and a pdgebrd
# sub-grid follows the rates file's 2-thread efficiencies (validated ranges).
. "${top_srcdir:-.}/tests/lib.sh"
M="$WORK/model"
PY=/usr/bin/python3
threads_of() { "$H5COMPARE" --attr "$1" / threads_per_rank; }
# expect_threads FILE N: the cache records N threads per rank
expect_threads() {
    CHECKS=$((CHECKS + 1))
    local got
    got=$(threads_of "$1" 2>&1)
    [ "$got" = "$2" ] || fail "$1: threads_per_rank \"$got\", expected $2"
}
# q_proj 192 x 192, v_proj 96 x 192 (wide)
check "$AILORA" synth --out "$M" --hidden 192 --heads 4 --kv-heads 2 --layers 2 --decades 6 --seed 5

for backend in lapack select; do
    keep=all
    [ "$backend" = select ] && keep=16
    check "$AILORA" svd --model "$M" --backend "$backend" --keep $keep --threads 1 --out "$WORK/${backend}_t1.h5" --quiet
    check "$AILORA" svd --model "$M" --backend "$backend" --keep $keep --threads 2 --out "$WORK/${backend}_t2.h5" --quiet
    check "$H5COMPARE" "$WORK/${backend}_t1.h5" "$WORK/${backend}_t2.h5" --svd --tol 1e-12
    expect_threads "$WORK/${backend}_t1.h5" 1
    expect_threads "$WORK/${backend}_t2.h5" 2
    # two ranks, two threads each (oversubscribed here: correctness only)
    check run_np 2 "$AILORA" svd --model "$M" --backend "$backend" --keep $keep --threads 2 \
        --out "$WORK/${backend}_np2_t2.h5" --quiet
    check "$H5COMPARE" "$WORK/${backend}_t1.h5" "$WORK/${backend}_np2_t2.h5" --svd --tol 1e-12
    expect_threads "$WORK/${backend}_np2_t2.h5" 2
done
# the grid route runs one thread per rank whatever --threads says; the count is still recorded
check run_np 2 "$AILORA" svd --model "$M" --backend pdgebrd --keep 16 --block 16 --threads 2 --out "$WORK/pd.h5" --quiet
check "$H5COMPARE" "$WORK/select_t1.h5" "$WORK/pd.h5" --svd --tol 1e-12

# auto: the environment (the test harness exports BLIS_NUM_THREADS=1), then the affinity mask
check env BLIS_NUM_THREADS=1 "$AILORA" svd --model "$M" --backend lapack --out "$WORK/auto_env1.h5" --quiet
expect_threads "$WORK/auto_env1.h5" 1
check env -u BLIS_NUM_THREADS OMP_NUM_THREADS=2 "$AILORA" svd --model "$M" --backend lapack --out "$WORK/auto_omp2.h5" --quiet
expect_threads "$WORK/auto_omp2.h5" 2
check env -u BLIS_NUM_THREADS -u OMP_NUM_THREADS "$AILORA" svd --model "$M" --backend lapack --out "$WORK/auto_cpus.h5" --quiet
expect_threads "$WORK/auto_cpus.h5" "$($PY -c 'import os; print(max(1, min(len(os.sched_getaffinity(0)), os.cpu_count())))')"
check env -u BLIS_NUM_THREADS -u OMP_NUM_THREADS taskset -c 0 "$AILORA" svd --model "$M" --backend lapack \
    --out "$WORK/auto_bound1.h5" --quiet
expect_threads "$WORK/auto_bound1.h5" 1
# an explicit count overrides the environment
check env BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1 "$AILORA" svd --model "$M" --backend lapack --threads 2 \
    --out "$WORK/over.h5" --quiet
expect_threads "$WORK/over.h5" 2
check "$H5COMPARE" "$WORK/lapack_t1.h5" "$WORK/over.h5" --svd --tol 1e-12
# ailora init computing its SVDs takes the option too (the same adapters within 1e-10)
check "$AILORA" init --model "$M" --method pissa --rank 8 --threads 1 --out "$WORK/init_t1.h5" --quiet
check "$AILORA" init --model "$M" --method pissa --rank 8 --threads 2 --out "$WORK/init_t2.h5" --quiet
check "$H5COMPARE" "$WORK/init_t1.h5" "$WORK/init_t2.h5" --tol 1e-10 --only /adapters/

# refusals: one line naming the option, no output file
for bad in 0 -1 abc 2x 100000 99999999999999999999; do
    expect_error "threads \"$bad\": expected auto or a count" "$WORK/bad.h5" \
        "$AILORA" svd --model "$M" --threads "$bad" --out "$WORK/bad.h5"
done
expect_error "threads \"0\": expected auto or a count" "$WORK/bad.h5" \
    "$AILORA" init --model "$M" --method pissa --rank 8 --threads 0 --out "$WORK/bad.h5"

# --plan: threads per rank and cores, per phase, and the layouts of the same cores
check "$AILORA" svd --model "$M" --plan --keep 16 --threads 2
grep -q "1 rank(s), 2 thread(s) per rank = 2 core(s)" "$WORK/last.out" || fail "--plan does not show 1 rank x 2 threads"
grep -q "on 1 group(s) of 1 rank(s), 2 thread(s) per rank" "$WORK/last.out" || fail "--plan phase lacks its threads"
grep -q "layouts of the same 2 core(s), ranks x threads: 2 x 1: .* 1 x 2: " "$WORK/last.out" ||
    fail "--plan does not compare layouts"
sed 's/^/    /' "$WORK/last.out"

# the decision rule: one 4096 x 4096 matrix (config.json only), 2 ranks x 2 threads;
# a perfect 2-thread speedup keeps it on one threaded rank, none sends it to a pdgebrd sub-grid
mkdir -p "$WORK/cfg"
cat > "$WORK/cfg/config.json" << 'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
 "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 1,
 "intermediate_size": 11008, "vocab_size": 32000, "torch_dtype": "bfloat16", "rms_norm_eps": 1e-5}
EOF
printf 'gesdd_eff2 1.0\nselect_eff2 1.0\n' > "$WORK/eff1.txt"
printf '# no speedup at all\ngesdd_eff2 0.5\nselect_eff2 0.5\n' > "$WORK/eff05.txt"
check "$AILORA" svd --model "$WORK/cfg" --targets q_proj --keep 64 --plan --ranks 2 --threads 2 --rates "$WORK/eff1.txt"
grep -q "1 select) on 1 group(s) of 1 rank(s), 2 thread(s) per rank" "$WORK/last.out" ||
    fail "efficiency 1: expected the threaded select route on one rank"
check "$AILORA" svd --model "$WORK/cfg" --targets q_proj --keep 64 --plan --ranks 2 --threads 2 --rates "$WORK/eff05.txt"
grep -q "1 pdgebrd) on 1 group(s) of 2 rank(s), 1 thread(s) per rank" "$WORK/last.out" ||
    fail "efficiency 0.5: expected a pdgebrd sub-grid"
# rates file ranges: an efficiency is a speedup in [1, 2] halved
for bad in 0.4 1.5 0; do
    printf 'gesdd_eff2 %s\n' "$bad" > "$WORK/badeff.txt"
    expect_error "badeff.txt:1: expected" "" "$AILORA" svd --model "$M" --plan --rates "$WORK/badeff.txt"
done
finish
