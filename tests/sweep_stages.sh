# slurm/sweep.py two-stage specs: stage 1 (method x lr on a validation split),
# the best lr per method by the validation metric, stage 2 (the chosen lr x 2
# seeds on the test split), run by `sweep.py local` on the reference tiny LLaMA
# (2 steps per run). Checks: the selection equals the one recomputed from the
# stage-1 run files, each final run was trained with its method's chosen lr and
# the [final] overrides, a second `local` has nothing to do; `submit --dry-run`
# submits stage 1 with a dependent (afterok) job that resubmits the spec, and
# only stage 2 once stage 1 is done; bad [select] sections are refused.
. "${top_srcdir:-.}/tests/lib.sh"
PY=/usr/bin/python3
$PY -c "import h5py" 2> /dev/null || skip "/usr/bin/python3 lacks h5py (scripts/install-deps.sh)"
SWEEP=$(cd "$top_srcdir/slurm" && pwd)/sweep.py
R=$(cd "$top_srcdir/tests/reference" && pwd)
A=$(cd "$(dirname "$AILORA")" && pwd)/ailora
check "$AILORA" svd --model "$R/train_llama" --out "$WORK/svd.h5" --quiet
cat > "$WORK/two.ini" <<INI
[sweep]
name = two
out_dir = $WORK/sweeps
[base]
model = $R/train_llama
svd_cache = $WORK/svd.h5
train_data = $R/train_data.h5
rank = 4
steps = 2
batch_size = 4
log_every = 1
eval_every = 2
[grid]
method = lora,pissa
lr = 1e-4,3e-2
seed = 0
[select]
choose = lr
per = method
metric = eval_loss
goal = min
[validation]
eval_data = $R/train_data.h5
eval_batches = 1
[final]
eval_data = $R/train_data.h5
eval_batches = 2
[final_grid]
seed = 0,1
INI
check $PY "$SWEEP" expand "$WORK/two.ini"
CHECKS=$((CHECKS + 1))
[ "$(grep -c '^validation ' "$WORK/last.out")" = 4 ] && grep -q "^final: expanded once all 4" "$WORK/last.out" ||
    fail "expand before stage 1: $(cat "$WORK/last.out")"
check $PY "$SWEEP" submit "$WORK/two.ini" --dry-run --ailora "$A"
CHECKS=$((CHECKS + 1))
grep -q "^sbatch --parsable --array=0,1,2,3%8 " "$WORK/last.out" &&
    grep -q "^sbatch --dependency=afterok:JOBID --kill-on-invalid-dep=yes .*submit $WORK/two.ini" "$WORK/last.out" ||
    fail "two-stage submit: $(cat "$WORK/last.out")"
check $PY "$SWEEP" local "$WORK/two.ini" --ailora "$A" -j 2
cat "$WORK/last.out"
S="$WORK/sweeps/two"
check env S="$S" $PY - <<'PY'
import glob, os
import h5py
S = os.environ["S"]
def cfg(path):
    with h5py.File(path, "r") as f:
        text = f.attrs["config"]
        text = text.decode() if isinstance(text, bytes) else str(text)
        loss = f["eval/loss"][:]
        done = int(f.attrs["steps_done"])
    return dict(l.split(" = ", 1) for l in text.splitlines() if " = " in l), loss, done
val = sorted(p for p in glob.glob(f"{S}/validation/runs/*.h5") if not p.endswith(".ckpt.h5"))
fin = sorted(p for p in glob.glob(f"{S}/final/runs/*.h5") if not p.endswith(".ckpt.h5"))
assert len(val) == 4 and len(fin) == 4, (val, fin)
best = {}
for p in val:
    c, loss, done = cfg(p)
    assert done == 2 and c["eval_batches"] == "1", c
    m, lr = c["method"], float(c["lr"])
    if m not in best or loss[-1] < best[m][1]:
        best[m] = (lr, loss[-1])
rows = [l.rstrip("\n").split("\t") for l in open(f"{S}/selection.tsv")]
assert rows[0] == ["method", "lr", "validation_eval_loss", "runs"], rows
sel = {r[0]: (float(r[1]), float(r[2])) for r in rows[1:]}
assert set(sel) == {"lora", "pissa"}
for m, (lr, loss) in best.items():
    assert sel[m][0] == lr and abs(sel[m][1] - loss) <= 1e-12 * abs(loss), (m, sel[m], best[m])
seeds = {}
for p in fin:
    c, loss, done = cfg(p)
    assert done == 2 and c["eval_batches"] == "2" and float(c["lr"]) == sel[c["method"]][0], (p, c)
    seeds.setdefault(c["method"], set()).add(c["seed"])
assert seeds == {"lora": {"0", "1"}, "pissa": {"0", "1"}}, seeds
print("selection:", {m: v[0] for m, v in sel.items()}, "final runs:", len(fin))
PY
cat "$WORK/last.out"
check $PY "$SWEEP" local "$WORK/two.ini" --ailora "$A"
CHECKS=$((CHECKS + 1))
grep -q "sweep final: 4 runs, 4 done, running 0" "$WORK/last.out" || fail "second local: $(cat "$WORK/last.out")"
check $PY "$SWEEP" submit "$WORK/two.ini" --dry-run --ailora "$A"
CHECKS=$((CHECKS + 1))
grep -q "sweep final: all 4 runs done, nothing to submit" "$WORK/last.out" || fail "submit after both: $(cat "$WORK/last.out")"
rm "$S"/final/runs/*seed-1.h5
check $PY "$SWEEP" submit "$WORK/two.ini" --dry-run --ailora "$A"
CHECKS=$((CHECKS + 1))
grep -q "^sbatch --array=1,3%8 " "$WORK/last.out" && ! grep -q "dependency" "$WORK/last.out" ||
    fail "stage 2 submit: $(cat "$WORK/last.out")"
# bad [select] sections: one error line each
sed 's/^goal = min/goal = lowest/' "$WORK/two.ini" > "$WORK/bad1.ini"
expect_error "[select] goal = 'lowest' is not min or max" "" $PY "$SWEEP" expand "$WORK/bad1.ini"
sed 's/^choose = lr/choose = rank/' "$WORK/two.ini" > "$WORK/bad2.ini"
expect_error "[select] names rank, which is not a [grid] key" "" $PY "$SWEEP" expand "$WORK/bad2.ini"
sed '/^\[final_grid\]/,$d' "$WORK/two.ini" > "$WORK/bad3.ini"
expect_error "[grid] key seed is neither chosen, per nor in [final_grid]" "" $PY "$SWEEP" expand "$WORK/bad3.ini"

# ---- a real Slurm (tests/slurm_cluster.sh): stage 1 as a job array, the afterok job
# resubmits the spec, which finds stage 1 done and submits stage 2 ----
for tool in slurmctld slurmd munged sbatch squeue; do
    command -v $tool > /dev/null || skip "$tool not installed"
done
SL="$WORK/slurm"
trap 'bash "$top_srcdir/tests/slurm_cluster.sh" stop "$SL"; rm -rf "$WORK"' EXIT
conf=$(bash "$top_srcdir/tests/slurm_cluster.sh" start "$SL" 2> "$WORK/slurm.err") ||
    skip "local Slurm did not start: $(cat "$WORK/slurm.err")"
export SLURM_CONF="$conf"
sed -e "s|^out_dir = .*|out_dir = $WORK/sl|" -e 's/^\[sweep\]$/[sweep]\nmpi = pmix\ntime = 00:05:00/' "$WORK/two.ini" > "$WORK/sl.ini"
check $PY "$SWEEP" submit "$WORK/sl.ini" --ailora "$A"
cat "$WORK/last.out"
finals() {
    n=0
    for f in "$WORK"/sl/two/final/runs/*_seed-?.h5; do
        [ -f "$f" ] && [ "$("$H5COMPARE" --attr "$f" / steps_done 2> /dev/null)" = 2 ] && n=$((n + 1))
    done
    echo $n
}
for _ in $(seq 300); do
    [ "$(finals)" -eq 4 ] && [ "$(squeue -h | wc -l)" -eq 0 ] && break
    sleep 1
done
CHECKS=$((CHECKS + 1))
if [ "$(finals)" -ne 4 ]; then
    fail "Slurm two-stage sweep: $(finals) of 4 final runs after 300 s"
    squeue
    tail -n 5 "$WORK"/sl/two/*/logs/* 2> /dev/null | tail -n 40
fi
CHECKS=$((CHECKS + 1))
cmp -s "$WORK/sl/two/selection.tsv" "$S/selection.tsv" ||
    fail "Slurm's selection differs from the local one: $(cat "$WORK/sl/two/selection.tsv")"
finish
