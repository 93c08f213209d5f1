#!/usr/bin/env bash
# default.sh [BUILD_DIR] - the embedded default job: a LLaMA-shaped model generated
# here (no downloads), its SVD cache over MPI, and the four initializations that
# the AILoRA paper compares, with their diagnostics.
#
# The model (experiments/default/model) is deterministic and rebuilt only when
# missing: 4 layers, hidden 256, 8 heads, 2 KV heads (GQA: v_proj is 64 x 256),
# BF16, singular values of every attention weight spread over 4 decades.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-$SRC}" && pwd)
AILORA="$B/ailora"
D="$SRC/experiments/default"
NP=${NP:-2}
RANK=${RANK:-16}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
MPIRUN=(mpirun -np "$NP" --oversubscribe --bind-to none)
mkdir -p "$D"

if [ ! -f "$D/model/config.json" ]; then
    "$AILORA" synth --out "$D/model" --hidden 256 --intermediate 688 --layers 4 --heads 8 \
        --kv-heads 2 --vocab 1024 --dtype BF16 --decades 4 --seed 2026 \
        --structured q_proj,k_proj,v_proj,o_proj
fi
if [ ! -f "$D/svd.h5" ]; then
    "${MPIRUN[@]}" "$AILORA" svd --model "$D/model" --out "$D/svd.h5"
fi
for method in lora pissa milora ailora; do
    echo
    echo "== $method, rank $RANK =="
    "${MPIRUN[@]}" "$AILORA" init --model "$D/model" --method "$method" --rank "$RANK" \
        --svd "$D/svd.h5" --out "$D/init_$method.h5"
done
echo
echo "Outputs in $D: svd.h5 (spectra and singular vectors), init_<method>.h5 (adapters,"
echo "selected indices, energy and reconstruction errors per module). energy: the share of"
echo "||W||_F^2 the adapter starts with; err_rounded: ||W - W_res - sBA||/||W|| after the"
echo "residual is rounded to the model's BF16 (the float64 residual is exact)."
