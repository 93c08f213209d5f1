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
    [base]                       ; key = value overrides of the base config; values
    steps = 200                  ; may use grid keys: train_data = data/{task}_train.h5
    [grid]                       ; comma-separated values: the cartesian product
    method = lora,pissa,milora,ailora
    seed = 0,1

Every run writes <out_dir>/<name>/runs/<run name>.h5, the run name being its grid
values (method-ailora_seed-1). The manifest (<out_dir>/<name>/manifest.tsv: index,
run name, status, overrides) is written before anything runs. A run whose file
already holds all its steps is skipped ("done"), so submitting again only runs what
is missing. Every run is started with resume=true: it continues from its checkpoint,
or starts from scratch when there is none yet (a task requeued before its first
checkpoint), and ailora refuses to continue a run whose stored config differs from
the spec's in anything but steps and output cadence (README, Training: Resume).
"""
import argparse
import configparser
import itertools
import os
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


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
    return sweep, base, grid


def expand(sweep, base, grid):
    """[(run name, overrides dict)] in grid order"""
    folder = os.path.join(sweep["out_dir"], sweep["name"])
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
    """done | resume | new, from the run file and its checkpoint"""
    out = overrides["out"]
    if os.path.exists(out):
        try:
            import h5py
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
        except Exception:  # unreadable or partial: run it again
            pass
    return "resume" if os.path.exists(out + ".ckpt.h5") else "new"


def command(sweep, overrides, ailora):
    """the `ailora train` arguments of one run (without the launcher)"""
    args = [ailora, "train"]
    if sweep.get("config"):
        args.append(sweep["config"])
    args += [f"{k}={v}" for k, v in overrides.items()]
    args.append("resume=true")  # continue from a checkpoint, or start when there is none
    return args


def write_manifest(sweep, runs):
    folder = os.path.join(sweep["out_dir"], sweep["name"])
    os.makedirs(os.path.join(folder, "runs"), exist_ok=True)
    path = os.path.join(folder, "manifest.tsv")
    with open(path + ".partial", "w") as f:
        f.write("index\tname\tstatus\toverrides\n")
        for i, (name, overrides) in enumerate(runs):
            f.write(f"{i}\t{name}\t{status_of(overrides)}\t{' '.join(f'{k}={v}' for k, v in overrides.items())}\n")
    os.replace(path + ".partial", path)
    return path


def run_local(sweep, runs, jobs, ranks, ailora):
    todo = [(n, o) for n, o in runs if status_of(o) != "done"]
    print(f"sweep {sweep['name']}: {len(runs)} runs, {len(runs) - len(todo)} done, running {len(todo)} "
          f"({jobs} at a time, {ranks} rank(s) each)")
    failed, active = [], []
    logdir = os.path.join(sweep["out_dir"], sweep["name"], "logs")
    os.makedirs(logdir, exist_ok=True)
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.setdefault("OMP_NUM_THREADS", "1")
    for name, overrides in todo:
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
        proc = subprocess.Popen(launcher + command(sweep, overrides, ailora), stdout=log, stderr=subprocess.STDOUT, env=env)
        active.append((name, proc))
    for name, proc in active:
        if proc.wait() != 0:
            failed.append(name)
    for name in failed:
        print(f"sweep: run {name} failed (see {os.path.join(logdir, name + '.log')})")
    return 1 if failed else 0


SBATCH = """#!/bin/bash
#SBATCH --job-name=ailora-{name}
#SBATCH --array=0-{last}%{throttle}
#SBATCH --ntasks={ranks}
#SBATCH --time={time}
#SBATCH --output={folder}/logs/%A_%a.out
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --open-mode=append
{extra}
# One array task = one run of the manifest. Before the time limit (or on
# preemption) Slurm sends USR1 to this script, which passes it to the run: ailora
# checkpoints at the next step boundary and exits 75, and the task requeues itself
# to resume from that checkpoint.
export OMP_NUM_THREADS=${{OMP_NUM_THREADS:-1}}
line=$(awk -F'\\t' -v i="$SLURM_ARRAY_TASK_ID" '$1 == i' {manifest})
name=$(printf '%s' "$line" | cut -f2)
args=$(printf '%s' "$line" | cut -f4)
# resume=true: continue from the checkpoint, or start when there is none yet
srun --mpi={mpi} {ailora} train {config} $args resume=true &
child=$!
trap 'kill -USR1 $child 2>/dev/null' USR1
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


def submit(sweep, runs, ailora, dry_run):
    folder = os.path.abspath(os.path.join(sweep["out_dir"], sweep["name"]))
    manifest = write_manifest(sweep, runs)
    todo = [i for i, (_, o) in enumerate(runs) if status_of(o) != "done"]
    if not todo:
        print(f"sweep {sweep['name']}: all {len(runs)} runs done, nothing to submit")
        return 0
    os.makedirs(os.path.join(folder, "logs"), exist_ok=True)
    extra = [f"#SBATCH --partition={sweep['partition']}"] if sweep.get("partition") else []
    gpus = sweep.get("gpus_per_task") or ("1" if any(o.get("device") == "cuda" for _, o in runs) else "")
    if gpus and gpus != "0":  # one GPU per rank: ailora picks node-local rank mod visible GPUs
        extra.append(f"#SBATCH --gpus-per-task={gpus}")
    script = SBATCH.format(name=sweep["name"], last=len(runs) - 1, throttle=sweep.get("throttle", "8"),
                           ranks=sweep.get("ranks", "1"), time=sweep.get("time", "01:00:00"), folder=folder,
                           extra="\n".join(extra),
                           manifest=shlex.quote(os.path.abspath(manifest)), mpi=sweep.get("mpi", "pmix"),
                           ailora=shlex.quote(os.path.abspath(ailora)),
                           config=shlex.quote(os.path.abspath(sweep["config"])) if sweep.get("config") else "")
    path = os.path.join(folder, "array.sbatch")
    with open(path, "w") as f:
        f.write(script)
    array = ",".join(str(i) for i in todo)
    cmd = ["sbatch", f"--array={array}%{sweep.get('throttle', '8')}", path]
    print(f"sweep {sweep['name']}: {len(todo)} of {len(runs)} runs to submit; manifest {manifest}")
    print(" ".join(shlex.quote(c) for c in cmd))
    if dry_run:
        return 0
    return subprocess.call(cmd)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["expand", "local", "submit"])
    ap.add_argument("spec")
    ap.add_argument("-j", "--jobs", type=int, default=1)
    ap.add_argument("--np", type=int, help="MPI ranks per run (default: the spec's ranks)")
    ap.add_argument("--ailora", default=os.path.join(ROOT, "ailora"))
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args()
    sweep, base, grid = load_spec(args.spec)
    runs = expand(sweep, base, grid)
    if args.action == "expand":
        for name, overrides in runs:
            print(name, " ".join(f"{k}={v}" for k, v in overrides.items()), status_of(overrides))
        return 0
    if args.action == "local":
        write_manifest(sweep, runs)
        return run_local(sweep, runs, args.jobs, args.np or int(sweep.get("ranks", "1")), args.ailora)
    return submit(sweep, runs, args.ailora, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
