# python3 -m ailora_analysis.report on a small real sweep (2 methods x 2 seeds of
# `ailora train` through slurm/sweep.py local; the runs record their own /diagnostics),
# then again after adding per-example scores (/eval/examples/<step>/score)
# and one unfinished run (steps_done < steps). The HTML is loaded in headless
# Chromium: its DOM must hold the tables, the unfinished count and the
# fingerprints; every <img> must decode to a non-empty PNG that is not blank
# (pixel variance > 0). Skipped only without Chromium or the Python packages, and
# never under CI=true (tests/ci_skips.sh).
. "${top_srcdir:-.}/tests/lib.sh"
PY=/usr/bin/python3
$PY -c "import numpy, pandas, h5py, matplotlib, scipy" 2> /dev/null ||
    skip "/usr/bin/python3 lacks numpy/pandas/h5py/matplotlib/scipy (scripts/install-deps.sh)"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || skip "no chromium (Debian package chromium, scripts/install-deps.sh)"
R=$(cd "$top_srcdir/tests/reference" && pwd)
A=$(cd "$(dirname "$AILORA")" && pwd)/ailora
check "$AILORA" svd --model "$R/train_llama" --out "$WORK/svd.h5" --quiet
printf '[sweep]\nname = rep\nout_dir = %s\n[base]\nmodel = %s\nsvd_cache = %s\ntrain_data = %s\neval_data = %s\nrank = 4\nsteps = 6\nbatch_size = 4\nlr = 3e-3\nlog_every = 1\neval_every = 3\n[grid]\nmethod = lora,ailora\nseed = 0,1\n' \
    "$WORK/sweeps" "$R/train_llama" "$WORK/svd.h5" "$R/train_data.h5" "$R/train_data.h5" > "$WORK/rep.ini"
check $PY "$top_srcdir/slurm/sweep.py" local "$WORK/rep.ini" --ailora "$A" -j 2
S="$WORK/sweeps/rep"

render() {  # render NAME EXPECT...: report of $S into $WORK/NAME.html, DOM from Chromium, checks
    local name=$1
    shift
    local before=$FAILED
    check env PYTHONPATH="$top_srcdir/analysis" $PY -m ailora_analysis.report "$S" --out "$WORK/$name.html"
    [ "$FAILED" -eq "$before" ] || return 0
    CHECKS=$((CHECKS + 1))
    # a fresh profile each time (root: --no-sandbox); --dump-dom prints the DOM after load
    if ! timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --user-data-dir="$WORK/chrome-$name" --dump-dom "file://$WORK/$name.html" > "$WORK/$name.dom" 2> "$WORK/chrome.err" ||
        [ ! -s "$WORK/$name.dom" ]; then
        fail "chromium did not render $name.html"
        tail -5 "$WORK/chrome.err"
        return
    fi
    check env PYTHONPATH="$top_srcdir/analysis" $PY - "$WORK/$name.html" "$WORK/$name.dom" "$@" <<'PY'
import base64, io, re, sys
import matplotlib.image as mpimg
import numpy as np
src, dom = open(sys.argv[1]).read(), open(sys.argv[2]).read()
imgs = re.findall(r'<img[^>]*src="([^"]*)"', dom)
assert len(imgs) >= 3, f"{len(imgs)} images in the DOM"
assert len(imgs) == len(re.findall(r"<img", src)), "the DOM lost images"
for i, url in enumerate(imgs):
    assert url.startswith("data:image/png;base64,"), url[:40]   # self-contained: nothing linked
    data = base64.b64decode(url.split(",", 1)[1], validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000, (i, len(data))
    pixels = mpimg.imread(io.BytesIO(data), format="png")
    assert pixels.size and float(pixels[..., :3].var()) > 1e-4, (i, pixels.shape, pixels.var())
assert "<link" not in src and "<script" not in src and "http://" not in src and "https://" not in src
for want in sys.argv[3:]:
    assert re.search(want, dom), f"not in the DOM: {want}"
print(f"{sys.argv[1]}: {len(imgs)} PNG figures decoded, non-blank; {len(sys.argv) - 3} DOM checks")
PY
    cat "$WORK/last.out"
}
FP='model_fingerprint <code class="fp">[0-9a-f]{32}</code>'
MOD='<td class="l">model\.layers\.0\.self_attn\.q_proj</td><td class="l">[0-9a-f]{32}</td>'
render plain '<table class="summary">' 'id="table-eval_loss"' 'id="table-train_loss"' '<b id="n-runs">4</b>' \
    '<b id="n-unfinished">0</b>' "$FP" "$MOD" 'bootstrap over seeds only' '4 run file\(s\) with /diagnostics' \
    '<table class="diagnostics">' '<td class="l">ailora</td><td class="l">q_proj</td>'

# what later run files carry: per-example scores; and one run cut short
check env S="$S" $PY - <<'PY'
import glob, os, shutil
import h5py, numpy as np
runs = sorted(glob.glob(os.path.join(os.environ["S"], "runs", "*.h5")))
rng = np.random.default_rng(0)
for i, path in enumerate(runs):
    with h5py.File(path, "a") as f:
        step = int(f["eval/step"][-1])
        g = f.create_group(f"eval/examples/{step}")
        g.attrs["metric"] = "exact_match"
        p = 0.8 if "method-ailora" in os.path.basename(path) else 0.4
        g["score"] = (rng.random(64) < p).astype(np.float64)
cut = runs[0].replace(".h5", "_cut.h5")
shutil.copy(runs[0], cut)
with h5py.File(cut, "a") as f:
    f.attrs["steps_done"] = np.int64(3)   # preempted at step 3 of 6
PY
render full '<table class="summary">' 'id="table-exact_match"' '<b id="n-runs">5</b>' '<b id="n-unfinished">1</b>' \
    '<b id="n-finished">4</b>' 'over seeds and eval examples' 'excluded: 1 run\(s\) unfinished \(step &lt; steps\)' \
    '<table class="unfinished">' '_cut\.h5' '5 run file\(s\) with /diagnostics' \
    "$FP" "$MOD"
# exact_match from 64 scored examples per run (ailora p 0.8, lora 0.4): lora's row second,
# 2 seeds x 64 examples, its difference to ailora negative with an interval inside [-1, 0)
CHECKS=$((CHECKS + 1))
grep -Eq '<td class="l">lora</td><td>2</td><td>64</td><td>0\.[0-9]+</td><td>0\.[0-9]+</td><td>0\.[0-9]+</td><td>-0\.[0-9]+</td><td>-(0\.[0-9]+|1\.0000)</td><td>-0\.[0-9]+</td>' "$WORK/full.dom" ||
    fail "lora's exact_match row: $(grep -o '<td class="l">lora</td>[^/]*/td><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td><td>[^<]*' "$WORK/full.dom" | head -2)"
# bad input: one error line, nothing written
mkdir -p "$WORK/empty"
expect_error "no run files under $WORK/empty" "$WORK/e.html" env PYTHONPATH="$top_srcdir/analysis" \
    $PY -m ailora_analysis.report "$WORK/empty" --out "$WORK/e.html"
expect_error "$WORK/none is not a folder" "$WORK/e.html" env PYTHONPATH="$top_srcdir/analysis" \
    $PY -m ailora_analysis.report "$WORK/none" --out "$WORK/e.html"
[ -z "${REPORT_KEEP:-}" ] || cp "$WORK"/*.html "$WORK"/*.dom "$REPORT_KEEP"  # to look at them
finish
