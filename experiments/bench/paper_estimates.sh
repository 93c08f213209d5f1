#!/usr/bin/env bash
# paper_estimates.sh BUILD_DIR RATES [TORCH_S_PER_MNK] - time-to-cache on paper, from
# `ailora svd --plan` (cost model svd_cost.h, rates file RATES), for LLaMA-2-7B,
# Llama-3-8B and a 70B LLaMA (config.json only, experiments/bench/configs) on 1 to 64
# nodes of 64 cores (one rank per core, 4 GiB per rank), keep 64 and keep all;
# against PEFT's PiSSA init: one float32 torch.linalg.svd per matrix, one after
# another on one device, TORCH_S_PER_MNK seconds per m n k (measured per core by
# svd_vs_torch.sh) divided by DEVICE_SPEEDUP (default 16: a 64-core node's LAPACK
# on the SVD, whose bidiagonalization is memory-bound; an assumption).
set -euo pipefail
B=$(cd "${1:-.}" && pwd)
RATES=$2
TORCH=${3:-0}
SPEEDUP=${DEVICE_SPEEDUP:-16}
C="$(cd "$(dirname "$0")" && pwd)/configs"
ALL=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
printf "| model | targets | matrices | keep | PEFT fp32, 1 device (h) |"
for nodes in 1 2 4 8 16 32 64; do printf " %d node(s) |" "$nodes"; done
printf "\n|---|---|---|---|---|"
for nodes in 1 2 4 8 16 32 64; do printf -- "---|"; done
printf "\n"
for spec in llama2-7b:q_proj,v_proj llama3-8b:q_proj,v_proj llama3-8b:$ALL llama-70b:q_proj,v_proj llama-70b:$ALL; do
    model=${spec%%:*} targets=${spec#*:}
    tname=$([ "$targets" = "$ALL" ] && echo "all 7" || echo "q, v")
    for keep in 64 all; do
        first=$("$B/ailora" svd --model "$C/$model" --targets "$targets" --plan --ranks 64 --node-cores 64 \
            --max-rank-mem 4 --keep "$keep" --rates "$RATES")
        count=$(echo "$first" | awk '/target matrices/ {print $4}')
        # PEFT: sum of m n k over the targets, from the model's shapes
        peft=$("$B/ailora" svd --model "$C/$model" --targets "$targets" --plan --ranks 1 --backend lapack \
            --max-rank-mem 1000 --rates "$RATES" | awk '/summed over its matrices/ {gsub(",", ""); print $9}')
        printf "| %s | %s | %s | %s | %s |" "$model" "$tname" "$count" "$keep" \
            "$(awk -v f="$peft" -v t="$TORCH" -v r="$(awk '$1=="gesdd"{print $2}' "$RATES")" -v s="$SPEEDUP" \
                'BEGIN { if (t > 0) printf "%.2f", f / r * t / s / 3600; else print "-" }')"
        for nodes in 1 2 4 8 16 32 64; do
            t=$("$B/ailora" svd --model "$C/$model" --targets "$targets" --plan --ranks $((nodes * 64)) \
                --node-cores 64 --max-rank-mem 4 --keep "$keep" --rates "$RATES" | awk '/^total: predicted/ {print $3}')
            printf " %s |" "$(awk -v t="$t" 'BEGIN { if (t >= 3600) printf "%.2f h", t / 3600; else if (t >= 60) printf "%.1f min", t / 60; else printf "%.0f s", t }')"
        done
        printf "\n"
    done
done
