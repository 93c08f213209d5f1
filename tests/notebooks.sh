# analysis/notebooks run headless (nbclient) on small real sweeps made with
# slurm/sweep.py local: a method comparison (4 inits x 2 seeds) and a rank-ratio
# grid (2 x 2 ratios x 2 ranks). Fails if a cell errors or a figure is missing.
. "${top_srcdir:-.}/tests/lib.sh"
PY=/usr/bin/python3
$PY -c "import numpy, pandas, h5py, matplotlib, scipy, nbclient, nbformat, ipykernel" 2> /dev/null ||
    skip "/usr/bin/python3 lacks the analysis or notebook packages (scripts/install-deps.sh)"
R=$(cd "$top_srcdir/tests/reference" && pwd)
check "$AILORA" svd --model "$R/train_llama" --out "$WORK/svd.h5" --quiet
common="model = $R/train_llama
svd_cache = $WORK/svd.h5
train_data = $R/train_data.h5
eval_data = $R/train_data.h5
steps = 8
batch_size = 4
lr = 3e-3
log_every = 2
eval_every = 4"
printf '[sweep]\nname = methods\nout_dir = %s\n[base]\nrank = 4\n%s\n[grid]\nmethod = lora,pissa,milora,ailora\nseed = 0,1\n' \
    "$WORK/sweeps" "$common" > "$WORK/methods.ini"
printf '[sweep]\nname = ratios\nout_dir = %s\n[base]\nmethod = ratio\n%s\n[grid]\nratio_q = 0,1\nratio_v = 0,1\nrank = 2,4\n' \
    "$WORK/sweeps" "$common" > "$WORK/ratios.ini"
check $PY "$top_srcdir/slurm/sweep.py" local "$WORK/methods.ini" --ailora "$AILORA" -j 2
check $PY "$top_srcdir/slurm/sweep.py" local "$WORK/ratios.ini" --ailora "$AILORA" -j 2
run_notebook() {  # run_notebook NAME SWEEP
    CHECKS=$((CHECKS + 1))
    if ! AILORA_SWEEP="$2" $PY - "$top_srcdir/analysis/notebooks/$1" > "$WORK/nb.out" 2>&1 <<'PY'
import os, sys
import nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
NotebookClient(nb, timeout=300, kernel_name="python3",
               resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
images = sum("image/png" in out.get("data", {}) for cell in nb.cells if cell.cell_type == "code"
             for out in cell.get("outputs", []))
assert images > 0, f"{path}: no figure"
print(f"{os.path.basename(path)}: {len(nb.cells)} cells ran, {images} figure(s)")
PY
    then
        fail "notebook $1 failed on $2"
        tail -20 "$WORK/nb.out"
    else
        cat "$WORK/nb.out"
    fi
}
run_notebook spectra.ipynb "$WORK/sweeps/methods"
run_notebook method_comparison.ipynb "$WORK/sweeps/methods"
run_notebook rank_ratio_ablation.ipynb "$WORK/sweeps/ratios"
finish
