#!/usr/bin/env python3
"""Expand an ailora sweep spec into runs, and run them locally or as a Slurm job array.

    sweep.py expand SPEC                 print the runs (name and overrides)
    sweep.py local SPEC [-j N] [--np R]  run them here, N at a time, each on R MPI ranks
    sweep.py submit SPEC [--dry-run]     write the manifest and submit a Slurm job array

A spec is INI (Python's configparser):

    [sweep]
    name = rank_ratio            ; output folder: <out_dir>/<name>/
    out_dir = sweeps
    config = experiments/base.ini ; base `ailora train` config (optional)
    ranks = 2                    ; MPI ranks per run
    throttle = 8                 ; at most this many array tasks at once
    time = 01:00:00              ; Slurm time limit per run
    partition =                  ; Slurm partition (optional)
    gpus_per_task =              ; GPUs per MPI rank (default: 1 if [base]/[grid] set device = cuda)
    signal_lead = 120            ; seconds before the time limit Slurm sends USR1 (B:USR1@120)
    [base]                       ; key = value overrides of the base config; values
    steps = 200                  ; may use grid keys: train_data = data/{task}_train.h5
    [grid]                       ; comma-separated values: the cartesian product
    method = lora,pissa,milora,ailora
    seed = 0,1

Two stages (learning rate chosen on a validation split, then seeds on the test
split) are declared by a [select] section; [validation] and [final] hold the
overrides of each stage and [final_grid] the grid of the second:

    [select]
    choose = lr                  ; keys chosen on validation (default lr)
    per = method                 ; one choice per value of these grid keys (default method)
    metric = eval_loss           ; last /eval value of the run files (eval_loss, exact_match, ...)
    goal = min                   ; min or max (mean over the stage-1 runs of a choice)
    [validation]
    eval_data = data/task_val.h5
    [final]
    eval_data = data/task_test.h5
    [final_grid]
    seed = 0,1,2

Stage 1 is [grid] with [base] + [validation] in <out_dir>/<name>/validation/;
every [grid] key must be in choose, per or [final_grid] (those are averaged over
in the choice). Once every stage-1 run is finished, the choice is written to
<out_dir>/<name>/selection.tsv and stage 2 (per x chosen x [final_grid], [base] +
[final]) runs in <out_dir>/<name>/final/. `local` runs both; `submit` submits
stage 1 and a one-task job (--dependency=afterok on the array,
--kill-on-invalid-dep=yes) that runs `sweep.py submit SPEC` again, which finds
stage 1 done and submits stage 2 (running `sweep.py submit SPEC` by hand after
stage 1 does the same).

Every run writes <out_dir>/<name>/runs/<run name>.h5, the run name being its grid
values (method-ailora_seed-1). The manifest (<out_dir>/<name>/manifest.tsv: index,
run name, status, overrides as shell-quoted key=value words) is written before
anything runs. A run whose file already holds all its steps is skipped ("done"), so
submitting again only runs what is missing. Every run is started with resume=true:
it continues from its checkpoint, or starts from scratch when there is none yet (a
task requeued before its first checkpoint), and ailora refuses to continue a run
whose stored config differs from the spec's in anything but steps and output
cadence (README, Training). A run file that exists but cannot be read (h5py
missing, a damaged file) is an error: nothing is written or submitted. Relative
paths are relative to the folder sweep.py runs in; the job script changes to it, so
it runs the same whatever directory it is submitted from.
"""
import argparse
import configparser
import itertools
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class SweepError(Exception):
    """one line for the user; nothing has been written or submitted"""


def load_spec(path):
    cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    cp.optionxform = str  # keys are case-sensitive config keys
    if not cp.read(path):
        sys.exit(f"sweep: error: cannot read spec {path}")
    for section in ("sweep", "grid"):
        if section not in cp:
            sys.exit(f"sweep: error: {path}: missing [{section}] section")
    sweep = dict(cp["sweep"])
    for key in ("name", "out_dir"):
        if not sweep.get(key):
            sys.exit(f"sweep: error: {path}: [sweep] needs {key}")
    base = dict(cp["base"]) if "base" in cp else {}
    grid = {k: [v.strip() for v in vals.split(",") if v.strip()] for k, vals in cp["grid"].items()}
    for key, values in grid.items():
        if not values:
            sys.exit(f"sweep: error: {path}: grid key {key} has no values")
    # the manifest is one line per run, tab-separated: values can hold anything else
    for section, items in (("sweep", sweep), ("base", base), ("grid", {k: ",".join(v) for k, v in grid.items()})):
        for key, value in items.items():
            if any(ch in key + value for ch in "\t\n\r"):
                sys.exit(f"sweep: error: {path}: [{section}] {key}: tabs and line breaks are not allowed")
    if "%" in sweep["out_dir"] + sweep["name"]:
        sys.exit(f"sweep: error: {path}: '%' in out_dir or name (Slurm reads it as a file name pattern)")
    for key, pattern in (("ranks", r"[1-9][0-9]*"), ("throttle", r"[1-9][0-9]*"), ("signal_lead", r"[0-9]+"),
                         ("time", r"[A-Za-z0-9:-]+"), ("partition", r"[A-Za-z0-9_.,-]*"), ("mpi", r"[A-Za-z0-9_-]+"),
                         ("gpus_per_task", r"[0-9]*")):
        if key in sweep and not re.fullmatch(pattern, sweep[key]):
            sys.exit(f"sweep: error: {path}: [sweep] {key} = {sweep[key]!r} is not valid")
    stages = None
    if "select" in cp:
        sel = dict(cp["select"])
        stages = dict(choose=[k.strip() for k in sel.get("choose", "lr").split(",") if k.strip()],
                      per=[k.strip() for k in sel.get("per", "method").split(",") if k.strip()],
                      metric=sel.get("metric", "eval_loss"), goal=sel.get("goal", "min"),
                      validation=dict(cp["validation"]) if "validation" in cp else {},
                      final=dict(cp["final"]) if "final" in cp else {},
                      final_grid={k: [v.strip() for v in vals.split(",") if v.strip()]
                                  for k, vals in (cp["final_grid"].items() if "final_grid" in cp else [])})
        if stages["goal"] not in ("min", "max"):
            sys.exit(f"sweep: error: {path}: [select] goal = {stages['goal']!r} is not min or max")
        if not re.fullmatch(r"[A-Za-z0-9_/]+", stages["metric"]):
            sys.exit(f"sweep: error: {path}: [select] metric = {stages['metric']!r} is not valid")
        for key in stages["choose"] + stages["per"]:
            if key not in grid:
                sys.exit(f"sweep: error: {path}: [select] names {key}, which is not a [grid] key")
        for key in grid:
            if key not in stages["choose"] + stages["per"] and key not in stages["final_grid"]:
                sys.exit(f"sweep: error: {path}: [grid] key {key} is neither chosen, per nor in [final_grid]")
        for key, values in stages["final_grid"].items():
            if not values:
                sys.exit(f"sweep: error: {path}: [final_grid] key {key} has no values")
    return sweep, base, grid, stages


def stage_specs(sweep, base, grid, stages):
    """stage 1's (sweep, base, grid): [base] + [validation] in <name>/validation"""
    s1 = dict(sweep, out_dir=os.path.join(sweep["out_dir"], sweep["name"]), name="validation",
              job=f"{sweep['name']}-validation")
    return s1, dict(base, **stages["validation"]), grid


def select(sweep, base, grid, stages, runs1):
    """the best `choose` values per `per` group from the finished stage-1 runs;
    writes <name>/selection.tsv; returns stage 2's (sweep, base, grid-less run list)"""
    import h5py
    metric = stages["metric"].split("/")[-1]
    metric = metric[5:] if metric.startswith("eval_") else metric
    scores = {}
    for name, overrides in runs1:
        with h5py.File(overrides["out"], "r") as f:
            values = f[f"eval/{metric}"][:] if f"eval/{metric}" in f else []
        if not len(values) or values[-1] != values[-1]:  # NaN: this metric was not evaluated
            raise SweepError(f"validation run {name} has no eval/{metric}: choose another [select] metric")
        per = tuple(overrides[k] for k in stages["per"])
        choice = tuple(overrides[k] for k in stages["choose"])
        scores.setdefault(per, {}).setdefault(choice, []).append(float(values[-1]))
    best = {}
    for per, choices in scores.items():
        means = {c: sum(v) / len(v) for c, v in choices.items()}
        pick = (min if stages["goal"] == "min" else max)(means, key=lambda c: means[c])
        best[per] = (pick, means[pick], len(choices[pick]))
    folder = os.path.abspath(os.path.join(sweep["out_dir"], sweep["name"]))
    path = os.path.join(folder, "selection.tsv")
    with open(path + ".partial", "w") as f:
        f.write("\t".join(stages["per"] + stages["choose"] + [f"validation_{stages['metric']}", "runs"]) + "\n")
        for per, (pick, mean, n) in best.items():
            f.write("\t".join(list(per) + list(pick) + [repr(mean), str(n)]) + "\n")
    os.replace(path + ".partial", path)
    s2 = dict(sweep, out_dir=os.path.join(sweep["out_dir"], sweep["name"]), name="final", job=f"{sweep['name']}-final")
    runs2 = []
    fg = stages["final_grid"]
    for per, (pick, _, _) in best.items():
        fixed = dict(zip(stages["per"], per))
        fixed.update(zip(stages["choose"], pick))
        sub = expand(s2, dict(base, **stages["final"], **fixed), {**{k: [v] for k, v in fixed.items()}, **fg})
        runs2 += sub
    return s2, runs2, path


def expand(sweep, base, grid):
    """[(run name, overrides dict)] in grid order"""
    folder = os.path.abspath(os.path.join(sweep["out_dir"], sweep["name"]))
    runs = []
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values))
        name = "_".join(f"{k}-{v}" for k, v in point.items()).replace("/", "-")
        # [base] values may name grid keys: train_data = data/{task}_train.h5
        overrides = {k: v.format(**point) if "{" in v else v for k, v in base.items()}
        overrides.update(point)
        overrides["out"] = os.path.join(folder, "runs", name + ".h5")
        runs.append((name, overrides))
    return runs


def status_of(overrides):
    """done | resume | new, from the run file and its checkpoint. A run file that
    exists but cannot be read raises SweepError: calling it "new" would run it
    again over finished work."""
    out = overrides["out"]
    if os.path.exists(out):
        try:
            import h5py
        except Exception as e:  # ImportError, or a broken install
            why = " ".join(str(e).split())
            raise SweepError(f"cannot read run file {out}: h5py does not import ({why}); "
                             f"run sweep.py with a python3 that has h5py") from None
        try:
            with h5py.File(out, "r") as f:
                steps_done = int(f.attrs["steps_done"])
                config = f.attrs["config"]
                config = config.decode() if isinstance(config, bytes) else str(config)
            # the spec's steps when it sets them: the stored config keeps the steps the
            # run was started with, and a resume may extend them
            steps = [line.split("=", 1)[1].strip() for line in config.splitlines() if line.startswith("steps ")]
            if "steps" in overrides:
                steps = [overrides["steps"]]
            if steps and steps_done >= int(steps[0]):
                return "done"
        except Exception as e:
            why = " ".join(str(e).split())  # one line
            raise SweepError(f"cannot read run file {out}: {type(e).__name__}: {why}; "
                             f"move it away to run it again") from None
    return "resume" if os.path.exists(out + ".ckpt.h5") else "new"


def statuses_of(runs):
    """every run's status, before anything is written: one unreadable file stops all"""
    return [status_of(overrides) for _, overrides in runs]


def command(sweep, overrides, status, ailora):
    """the `ailora train` arguments of one run (without the launcher)"""
    args = [ailora, "train"]
    if sweep.get("config"):
        args.append(sweep["config"])
    args += [f"{k}={v}" for k, v in overrides.items()]
    args.append("resume=true")  # continue from a checkpoint, or start when there is none
    return args


def write_manifest(sweep, runs, statuses):
    """manifest.tsv; its overrides column is shell-quoted key=value words, so that the
    job script gets every value back as one argument (spaces, quotes, $, globs)"""
    folder = os.path.abspath(os.path.join(sweep["out_dir"], sweep["name"]))
    os.makedirs(os.path.join(folder, "runs"), exist_ok=True)
    path = os.path.join(folder, "manifest.tsv")
    with open(path + ".partial", "w") as f:
        f.write("index\tname\tstatus\toverrides\n")
        for i, ((name, overrides), status) in enumerate(zip(runs, statuses)):
            words = " ".join(shlex.quote(f"{k}={v}") for k, v in overrides.items())
            f.write(f"{i}\t{name}\t{status}\t{words}\n")
    os.replace(path + ".partial", path)
    return path


def run_local(sweep, runs, statuses, jobs, ranks, ailora):
    todo = [(n, o, s) for (n, o), s in zip(runs, statuses) if s != "done"]
    print(f"sweep {sweep['name']}: {len(runs)} runs, {len(runs) - len(todo)} done, running {len(todo)} "
          f"({jobs} at a time, {ranks} rank(s) each)")
    failed, active = [], []
    logdir = os.path.join(sweep["out_dir"], sweep["name"], "logs")
    os.makedirs(logdir, exist_ok=True)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.setdefault("OMP_NUM_THREADS", "1")
    for name, overrides, status in todo:
        while len(active) >= jobs:
            for p in list(active):
                if p[1].poll() is not None:
                    active.remove(p)
                    if p[1].returncode != 0:
                        failed.append(p[0])
            if len(active) >= jobs:
                active[0][1].wait()
        launcher = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none"] if ranks > 1 else []
        log = open(os.path.join(logdir, name + ".log"), "w")
        proc = subprocess.Popen(launcher + command(sweep, overrides, status, ailora), stdout=log, stderr=subprocess.STDOUT, env=env)
        active.append((name, proc))
    for name, proc in active:
        if proc.wait() != 0:
            failed.append(name)
    for name in failed:
        print(f"sweep: run {name} failed (see {os.path.join(logdir, name + '.log')})")
    return 1 if failed else 0


SBATCH = """#!/bin/bash
#SBATCH --ntasks={ranks}
#SBATCH --time={time}
#SBATCH --signal=B:USR1@{signal_lead}
#SBATCH --requeue
#SBATCH --open-mode=append
{extra}
# One array task = one run of the manifest; sweep.py submits this script with
# --array, --job-name and --output (it prints the sbatch command). Before the time
# limit (signal_lead seconds), or on `scancel -b -s USR1`, Slurm sends USR1 to this
# script, which passes it to srun, which passes it to every rank: ailora
# checkpoints at the next step boundary and exits 75, and the task requeues itself
# to resume from that checkpoint. Paths are absolute and relative values are
# relative to the folder sweep.py ran in, so the script runs from any directory.
cd {workdir} || exit 1
export OMP_NUM_THREADS=${{OMP_NUM_THREADS:-1}}
line=$(awk -F'\\t' -v i="$SLURM_ARRAY_TASK_ID" '$1 == i' {manifest})
[ -n "$line" ] || {{ echo "array task $SLURM_ARRAY_TASK_ID is not in {manifest}" >&2; exit 1; }}
name=$(printf '%s' "$line" | cut -f2)
# the overrides are shell-quoted key=value words (sweep.py writes them with shlex.quote)
eval "set -- $(printf '%s' "$line" | cut -f4)"
# resume=true: continue from the checkpoint, or start when there is none yet
srun --mpi={mpi} {ailora} train {config} "$@" resume=true &
child=$!
trap 'echo "run $name: USR1, passed on to its ranks"; kill -USR1 $child 2>/dev/null' USR1
wait $child; rc=$?
while kill -0 $child 2>/dev/null; do wait $child; rc=$?; done   # wait returns early on a trapped signal
if [ "$rc" -eq 75 ]; then
    echo "run $name preempted: checkpointed, requeueing"
    task="${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
    for attempt in 1 2 3 4 5; do  # the controller can be busy: retry
        scontrol requeue "$task" && break
        sleep 2
    done
fi
exit $rc
"""


def submit(sweep, runs, statuses, ailora, dry_run, then=None):
    """one job array of the runs not done; with then (a two-stage spec), also a job
    that runs `sweep.py submit then` once the array has finished without error"""
    folder = os.path.abspath(os.path.join(sweep["out_dir"], sweep["name"]))
    todo = [i for i, status in enumerate(statuses) if status != "done"]
    manifest = write_manifest(sweep, runs, statuses)
    if not todo:
        print(f"sweep {sweep['name']}: all {len(runs)} runs done, nothing to submit")
        return 0
    os.makedirs(os.path.join(folder, "logs"), exist_ok=True)
    extra = [f"#SBATCH --partition={sweep['partition']}"] if sweep.get("partition") else []
    gpus = sweep.get("gpus_per_task") or ("1" if any(o.get("device") == "cuda" for _, o in runs) else "")
    if gpus and gpus != "0":  # one GPU per rank: ailora picks node-local rank mod visible GPUs
        extra.append(f"#SBATCH --gpus-per-task={gpus}")
    q = shlex.quote
    script = SBATCH.format(ranks=sweep.get("ranks", "1"), time=sweep.get("time", "01:00:00"),
                           signal_lead=sweep.get("signal_lead", "120"), extra="\n".join(extra),
                           workdir=q(os.getcwd()), manifest=q(manifest), mpi=sweep.get("mpi", "pmix"),
                           ailora=q(os.path.abspath(ailora)),
                           config=q(os.path.abspath(sweep["config"])) if sweep.get("config") else "")
    path = os.path.join(folder, "array.sbatch")
    with open(path + ".partial", "w") as f:
        f.write(script)
    os.replace(path + ".partial", path)
    array = ",".join(str(i) for i in todo)
    # names and paths go on the command line (an argument list, no shell), not in #SBATCH lines
    cmd = ["sbatch", f"--array={array}%{sweep.get('throttle', '8')}", f"--job-name=ailora-{sweep.get('job', sweep['name'])}",
           f"--output={os.path.join(folder, 'logs', '%A_%a.out')}", path]
    print(f"sweep {sweep['name']}: {len(todo)} of {len(runs)} runs to submit; manifest {manifest}")
    if then is None:
        print(" ".join(q(c) for c in cmd))
        return 0 if dry_run else subprocess.call(cmd)
    # two stages: the array's job id, then a dependent job that submits stage 2
    cmd.insert(1, "--parsable")
    print(" ".join(q(c) for c in cmd))
    job = "JOBID"
    if not dry_run:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if out.returncode != 0:
            return out.returncode
        job = out.stdout.strip().split(";")[0]
    nxt = ["sbatch", f"--dependency=afterok:{job}", "--kill-on-invalid-dep=yes", "--ntasks=1", "--time=00:10:00",
           f"--job-name=ailora-{sweep.get('job', sweep['name'])}-next", f"--output={os.path.join(folder, 'logs', 'next_%j.out')}",
           f"--chdir={os.getcwd()}"] + ([f"--partition={sweep['partition']}"] if sweep.get("partition") else []) + [
           f"--wrap={q(sys.executable)} {q(os.path.abspath(__file__))} submit {q(os.path.abspath(then))} "
           f"--ailora {q(os.path.abspath(ailora))}"]
    print(" ".join(q(c) for c in nxt))
    return 0 if dry_run else subprocess.call(nxt)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["expand", "local", "submit"])
    ap.add_argument("spec")
    ap.add_argument("-j", "--jobs", type=int, default=1)
    ap.add_argument("--np", type=int, help="MPI ranks per run (default: the spec's ranks)")
    ap.add_argument("--ailora", default=os.path.join(ROOT, "ailora"))
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    sweep, base, grid, stages = load_spec(args.spec)
    if stages is not None:
        return main_two_stage(args, sweep, base, grid, stages)
    runs = expand(sweep, base, grid)
    try:
        statuses = statuses_of(runs)
    except SweepError as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        return 1
    if args.action == "expand":
        for (name, overrides), status in zip(runs, statuses):
            print(name, " ".join(shlex.quote(f"{k}={v}") for k, v in overrides.items()), status)
        return 0
    if args.action == "local":
        write_manifest(sweep, runs, statuses)
        return run_local(sweep, runs, statuses, args.jobs, args.np or int(sweep.get("ranks", "1")), args.ailora)
    return submit(sweep, runs, statuses, args.ailora, args.dry_run)


def main_two_stage(args, sweep, base, grid, stages):
    """stage 1 (validation), then, once it is all done, the selection and stage 2"""
    s1, base1, grid1 = stage_specs(sweep, base, grid, stages)
    runs1 = expand(s1, base1, grid1)
    ranks = args.np or int(sweep.get("ranks", "1"))
    try:
        st1 = statuses_of(runs1)
        if args.action == "expand":
            for (name, overrides), status in zip(runs1, st1):
                print("validation", name, " ".join(shlex.quote(f"{k}={v}") for k, v in overrides.items()), status)
        if any(s != "done" for s in st1):
            if args.action == "expand":
                print(f"final: expanded once all {len(runs1)} validation runs are done")
                return 0
            if args.action == "local":
                write_manifest(s1, runs1, st1)
                rc = run_local(s1, runs1, st1, args.jobs, ranks, args.ailora)
                if rc:
                    print("sweep: validation stage failed: final stage not started", file=sys.stderr)
                    return rc
                st1 = statuses_of(runs1)
                if any(s != "done" for s in st1):
                    raise SweepError("validation runs are not all finished after running them")
            else:
                return submit(s1, runs1, st1, args.ailora, args.dry_run, then=args.spec)
        s2, runs2, selection = select(sweep, base, grid, stages, runs1)
        print(f"sweep {sweep['name']}: selection in {selection}")
        st2 = statuses_of(runs2)
    except SweepError as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        return 1
    if args.action == "expand":
        for (name, overrides), status in zip(runs2, st2):
            print("final", name, " ".join(shlex.quote(f"{k}={v}") for k, v in overrides.items()), status)
        return 0
    if args.action == "local":
        write_manifest(s2, runs2, st2)
        return run_local(s2, runs2, st2, args.jobs, ranks, args.ailora)
    return submit(s2, runs2, st2, args.ailora, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
