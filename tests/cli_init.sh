# `ailora init`: every method gives the same INIT.h5 on 1, 2 and 4 ranks, with a
# cache or computing the SVDs itself (tolerance 1e-10 * max|x|: adapters on a
# 3-decade spectrum, singular vectors good to ~1e-13); lora's random A is
# identical across rank layouts; a residual directory is a loadable model; the
# diagnostics report a float64 residual exact and a BF16 one rounded.
. "${top_srcdir:-.}/tests/lib.sh"
M="$WORK/model"
check "$AILORA" synth --out "$M" --hidden 96 --heads 4 --kv-heads 2 --layers 2 --decades 3 --seed 4
check run_np 2 "$AILORA" svd --model "$M" --out "$WORK/svd.h5" --quiet
for method in lora pissa milora ailora ratio; do
    extra=""
    [ "$method" = ratio ] && extra="--ratio-q 0.75 --ratio-v 0.25"
    ref="$WORK/${method}_ref.h5"
    # shellcheck disable=SC2086
    check "$AILORA" init --model "$M" --method "$method" --rank 8 --alpha 16 --seed 7 $extra \
        --svd "$WORK/svd.h5" --out "$ref" --quiet
    # shellcheck disable=SC2086
    check run_np 2 "$AILORA" init --model "$M" --method "$method" --rank 8 --alpha 16 --seed 7 $extra \
        --svd "$WORK/svd.h5" --out "$WORK/${method}_np2.h5" --quiet
    # shellcheck disable=SC2086
    check run_np 4 "$AILORA" init --model "$M" --method "$method" --rank 8 --alpha 16 --seed 7 $extra \
        --backend pdgesvd --out "$WORK/${method}_np4.h5" --quiet
    check "$H5COMPARE" "$ref" "$WORK/${method}_np2.h5" --tol 1e-10
    check "$H5COMPARE" "$ref" "$WORK/${method}_np4.h5" --tol 1e-10
done
check "$H5COMPARE" "$WORK/lora_ref.h5" "$WORK/lora_np4.h5" --tol 0 --only lora_
ls "$WORK" | grep -q svd-tmp && fail "temporary SVD cache left behind"

# residual directory: loadable by our own loader, holds all tensors
check run_np 2 "$AILORA" init --model "$M" --method ailora --rank 4 --svd "$WORK/svd.h5" \
    --out "$WORK/res.h5" --residual-out "$WORK/res" --quiet
for f in config.json model.safetensors adapter/adapter_config.json adapter/adapter_model.safetensors; do
    CHECKS=$((CHECKS + 1))
    [ -f "$WORK/res/$f" ] || fail "residual directory lacks $f"
done
check "$AILORA" svd --model "$WORK/res" --out "$WORK/res_svd.h5" --quiet

# diagnostics: W_res exact in float64; a BF16 model loses ~2^-9 relative in rounding.
# recon_err_f64 is computed from the cache's own factors, so first the cache against
# the source weights: ||W - U S Vt|| / ||W|| from the safetensors bytes (numpy)
check /usr/bin/python3 "$top_srcdir/tests/svd_source_check.py" "$M" "$WORK/svd.h5" 1e-12
sed 's/^/    /' "$WORK/last.out"
mod=/adapters/model.layers.0.self_attn.v_proj
e64=$("$H5COMPARE" --attr "$WORK/milora_ref.h5" "$mod" recon_err_f64)
CHECKS=$((CHECKS + 1))
awk -v e="$e64" 'BEGIN { exit !(e < 1e-14) }' || fail "float64 reconstruction error $e64 >= 1e-14"
B="$WORK/bf16"
check "$AILORA" synth --out "$B" --dtype BF16 --hidden 64 --heads 4 --kv-heads 2 --layers 1 --decades 3
check "$AILORA" init --model "$B" --method milora --rank 4 --out "$WORK/bf16.h5" --quiet
ebf=$("$H5COMPARE" --attr "$WORK/bf16.h5" "$mod" recon_err_rounded)
CHECKS=$((CHECKS + 1))
awk -v e="$ebf" 'BEGIN { exit !(e > 1e-4 && e < 1e-2) }' || fail "BF16 rounding error $ebf not ~2^-9"
echo "milora v_proj reconstruction error: float64 $e64, BF16 residual $ebf"
finish
