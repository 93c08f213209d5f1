# One rank failing never hangs or crashes the job (fault injection, AILORA_FAULT in
# include/ailora/error.h). For `svd` (backends lapack, pdgesvd, auto with pdgesvd
# sub-grids) and `train` (data-parallel, tp = 2 with eval and exact match) on 2 and 4
# ranks, and `init` (with a cache and a residual directory on 2 ranks, computing its
# own cache on 4), a traced clean run lists the fault points (allocations and reads) each rank
# passes; then one rank at a time is made to fail at one of them. Every such job must
#  - end within $LIMIT seconds (a hang is killed by `timeout` and fails the test),
#  - exit non-zero, and not by a signal (134, 139, any status >= 128 fails),
#  - print exactly one "error:" line on stderr, naming the failing rank when it is
#    not rank 0; the only other lines allowed are Open MPI's boxed notices (a process
#    exited non-zero; MPI_ABORT for failures that cannot be agreed, which end the
#    job through ail_error_fatal),
#  - leave no final output (train: none but a whole run file or checkpoint
#    committed at a log step before the fault, checked by reading it back);
#    "<out>.partial" only after an MPI_Abort (harmless: it is never read, and the
#    next run rewrites it from scratch).
# Sampling: the fault points of a configuration are grouped by site (kind and
# file:line); each site is taken once, at its first occurrence, on the ranks in
# turn (site j on rank (j + c) mod np, c the configuration's number). By default
# AILORA_FAULT_SAMPLE=5 of these sites per configuration, evenly spaced with an
# offset that moves with c, so the 12 configurations together cover most sites
# (60 jobs, ~1.5-2 min on 2 busy cores); AILORA_FAULT_SAMPLE=all takes every site,
# AILORA_FAULT_SAMPLE=every every fault point on every rank (thousands of jobs).
. "${top_srcdir:-.}/tests/lib.sh"
R="$top_srcdir/tests/reference"
LIMIT=${AILORA_FAULT_TIMEOUT:-60}
SAMPLE=${AILORA_FAULT_SAMPLE:-5}
export OMP_NUM_THREADS=1  # ranks oversubscribe 2 cores: spinning OpenMP threads would crawl
JOBS=0
CFG=0

# trace NP CMD...: CMD under mpirun with AILORA_FAULT=trace must succeed; writes
# "rank index site" lines to $WORK/points
trace() {
    local np=$1
    shift
    CHECKS=$((CHECKS + 1))
    # one file per rank: mpirun's merged stderr can split a line of one rank in two
    rm -rf "$WORK/trace"
    if ! AILORA_FAULT=trace timeout -k 5 "$LIMIT" "$MPIEXEC" -np "$np" --oversubscribe --bind-to none \
        --output-filename "$WORK/trace" "$@" < /dev/null > /dev/null 2> "$WORK/trace.merged"; then
        fail "clean run failed: $*"
        grep -v "fault point" "$WORK/trace.merged" | head -5 | sed 's/^/    /'
        return 1
    fi
    cat "$WORK"/trace/1/rank.*/stderr > "$WORK/trace.err"
    sed -n 's/^ailora: fault point: rank \([0-9]*\): \([0-9]*\) \([a-z]*\) \(.*\)$/\1 \2 \3@\4/p' \
        "$WORK/trace.err" > "$WORK/points"
    [ -s "$WORK/points" ] || { fail "no fault points traced: $*"; return 1; }
    # the per-rank totals (what AILORA_FAULT=count prints) match the traced points
    CHECKS=$((CHECKS + 1))
    local bad
    bad=$(sed -n 's/^ailora: fault points: rank \([0-9]*\): \([0-9]*\)$/\1 \2/p' "$WORK/trace.err" |
        awk -v np="$np" 'NR == FNR { n[$1]++; next } { seen++; if (n[$1] != $2) print "rank " $1 }
                         END { if (seen != np) print "totals of " seen " ranks" }' "$WORK/points" -)
    [ -z "$bad" ] || fail "fault point totals disagree with the trace ($bad): $*"
}

# pick NP: "rank index site" lines of the fault points to inject (see the header)
pick() {
    awk -v np="$1" -v sample="$SAMPLE" -v c="$CFG" '
        { if (!(($1, $3) in first)) { first[$1, $3] = $2 }
          if (!($3 in seen)) { seen[$3] = 1; site[n++] = $3 }
          all[m++] = $0 }
        END {
            if (sample == "every") { for (i = 0; i < m; i++) print all[i]; exit }
            k = 0
            for (j = 0; j < n; j++) {          # site j on rank (j + c) mod np, else the next that passes it
                for (d = 0; d < np; d++) {
                    r = (j + c + d) % np
                    if ((r, site[j]) in first) { line[k++] = r " " first[r, site[j]] " " site[j]; break }
                }
            }
            if (sample == "all" || k <= sample) { for (i = 0; i < k; i++) print line[i]; exit }
            off = (c * 0.618034) % 1
            for (i = 0; i < sample; i++) print line[int((i + off) * k / sample)]
        }' "$WORK/points"
}

# inject NP RANK INDEX SITE OUTPUTS -- CMD...: one job with rank RANK failing at its
# INDEX-th fault point; OUTPUTS is a space-separated list of files it must not leave
inject() {
    local np=$1 rank=$2 index=$3 site=$4 outputs=$5
    shift 6
    CHECKS=$((CHECKS + 1))
    JOBS=$((JOBS + 1))
    local rc=0 before=$FAILED what="rank $rank point $index ($site) of: ${*##*/}"
    AILORA_FAULT="$index:$rank" timeout -k 5 "$LIMIT" "$MPIEXEC" -np "$np" --oversubscribe --bind-to none "$@" \
        < /dev/null > "$WORK/inj.out" 2> "$WORK/inj.err" || rc=$?
    # Open MPI's notices: the blocks between dashed lines, their aggregation hints, and
    # the error Open MPI 4.1 sometimes logs instead of the MPI_ABORT notice when the
    # job is torn down while the notice is on its way (a race in its show_help.c)
    awk '/^-----/ { inbox = !inbox; next } !inbox' "$WORK/inj.err" |
        grep -v -e 'more process.* sent help message' -e 'orte_base_help_aggregate' \
            -e '^\[[^]]*\] .*ORTE_ERROR_LOG: .*show_help\.c' > "$WORK/inj.rest"
    local aborted=0
    grep -q -e "MPI_ABORT was invoked" -e "(aborting the job)$" "$WORK/inj.err" && aborted=1
    local nerr
    nerr=$(grep -c "error:" "$WORK/inj.rest" || true)
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        fail "hang: killed after ${LIMIT}s: $what"
    elif [ "$rc" -eq 0 ]; then
        fail "the fault was ignored (exit 0): $what"
    elif [ "$rc" -ge 128 ]; then
        fail "died of signal $((rc - 128)) (exit $rc): $what"
    elif [ "$nerr" -ne 1 ] || [ "$(wc -l < "$WORK/inj.rest")" -ne 1 ]; then
        fail "expected one error line on stderr, got: $what"
    elif [ "$rank" -ne 0 ] && ! grep -q "rank $rank:" "$WORK/inj.rest"; then
        fail "the error line does not name rank $rank: $what"
    fi
    [ "$FAILED" -gt "$before" ] && head -8 "$WORK/inj.err" | sed 's/^/    /'
    for o in $outputs; do
        CHECKS=$((CHECKS + 1))
        local earlier=0
        case $o in "?"*) earlier=1 o=${o#\?} ;; esac
        if [ -e "$o" ] && [ "$earlier" -eq 1 ]; then
            # committed before the fault (a run file at a log step): must be whole
            "$H5COMPARE" "$o" "$o" > /dev/null 2>&1 || fail "left a broken $o behind: $what"
        elif [ -e "$o" ]; then
            fail "left the final output $o behind: $what"
        elif [ -e "$o.partial" ] && [ "$aborted" -eq 0 ]; then
            fail "left $o.partial behind without an MPI_Abort: $what"
        fi
        rm -rf "$o" "$o.partial"
    done
}

# sweep NP OUTPUTS -- CMD...: trace CMD, then inject the picked fault points.
# OUTPUTS: files a failed job must not leave; "?FILE": a file it may leave only
# whole, committed before the fault (train writes its run file at log steps)
sweep() {
    local np=$1 outputs=$2
    CFG=$((CFG + 1))
    trace "$np" "${@:4}" || return 0
    for o in $outputs; do rm -rf "${o#\?}" "${o#\?}.partial"; done
    pick "$np" > "$WORK/picked"
    [ -n "${AILORA_FAULT_VERBOSE:-}" ] && sed "s/^/  pick: /" "$WORK/picked"
    while read -r rank index site; do
        inject "$np" "$rank" "$index" "$site" "$outputs" -- "${@:4}"
    done < "$WORK/picked"
}

# A matrix whose dgesdd workspace exceeds the 32-bit LWORK (k = 23200: 4k^2 > 2^31)
# is refused by the plan with one line, before anything is computed or written
# (the weight is a sparse file: no disk space, never read).
BIG="$WORK/big"
mkdir -p "$BIG"
/usr/bin/python3 - "$BIG" <<'PY'
import json, struct, sys
d, H = sys.argv[1], 23200
json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H,
           "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 8,
           "num_key_value_heads": 8, "vocab_size": 16, "max_position_embeddings": 16,
           "rms_norm_eps": 1e-5, "rope_theta": 10000.0}, open(d + "/config.json", "w"))
n = H * H * 2
h = json.dumps({"model.layers.0.self_attn.q_proj.weight":
                {"dtype": "BF16", "shape": [H, H], "data_offsets": [0, n]}}).encode()
h += b" " * (-len(h) % 8)
with open(d + "/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    f.truncate(8 + len(h) + n)
PY
expect_error "exceeds LAPACK's 32-bit LWORK" "$WORK/big.h5" \
    "$AILORA" svd --model "$BIG" --targets q_proj --backend lapack --out "$WORK/big.h5" --quiet
expect_error "exceeds LAPACK's 32-bit LWORK" "$WORK/big.h5" \
    run_np 2 "$AILORA" svd --model "$BIG" --targets q_proj --backend lapack --out "$WORK/big.h5" --quiet
rm -rf "$BIG"

START=$(date +%s)
ALL=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
S="$WORK/s.h5"
for np in 2 4; do
    sweep "$np" "$S" -- "$AILORA" svd --model "$R/train_llama" --out "$S" --quiet --backend lapack
    sweep "$np" "$S" -- "$AILORA" svd --model "$R/train_llama" --out "$S" --quiet --backend pdgesvd
    sweep "$np" "$S" -- "$AILORA" svd --model "$R/train_llama" --out "$S" --quiet --backend pdgebrd --keep 2
    # auto: pdgesvd on sub-grids of 2 ranks (4 ranks) or dgesdd per rank (2 ranks)
    grid=""
    [ "$np" -eq 4 ] && grid="--grid-ranks 2"
    # shellcheck disable=SC2086
    sweep "$np" "$S" -- "$AILORA" svd --model "$R/train_llama" --out "$S" --quiet --backend auto --targets $ALL $grid
done

# init: from a cache on 2 ranks (with the residual model directory), computing its
# own temporary cache on 4 ranks (which must not outlive a failure either)
check "$AILORA" svd --model "$R/train_llama" --out "$WORK/cache.h5" --quiet
I="$WORK/init.h5"
sweep 2 "$I $WORK/res" -- "$AILORA" init --model "$R/train_llama" --method ailora --rank 4 \
    --svd "$WORK/cache.h5" --out "$I" --residual-out "$WORK/res" --quiet
sweep 4 "$I $I.svd-tmp.h5" -- "$AILORA" init --model "$R/train_llama" --method pissa --rank 4 --out "$I" --quiet

# train on a fixed cache: every fault point of the training itself
OUT="$WORK/run.h5"
BASE="model=$R/train_llama svd_cache=$WORK/cache.h5 train_data=$R/train_data.h5 eval_data=$R/train_data.h5"
BASE="$BASE method=ailora rank=4 steps=2 batch_size=4 log_every=2 eval_every=1 eval_batches=1"
BASE="$BASE max_new_tokens=2 shuffle=true out=$OUT"
for np in 2 4; do
    # shellcheck disable=SC2086
    sweep "$np" "?$OUT ?$OUT.ckpt.h5" -- "$AILORA" train $BASE
    # shellcheck disable=SC2086
    sweep "$np" "?$OUT ?$OUT.ckpt.h5" -- "$AILORA" train $BASE tp=2
done
echo "fault_inject: $JOBS injected jobs in $(($(date +%s) - START)) s (sample: $SAMPLE per configuration)"
finish
