# What config.json may say (src/io/hfmodel.c) and LLaMA's attention_bias in training:
#  - every variant of the table below that the engine would compute as some other
#    network is refused by `ailora svd` and `ailora train`, at 1 and at 2 ranks, with
#    one error line naming the key and its value, and nothing written
#  - an active sliding window (Mistral, Qwen2) runs sequences up to its length, where it
#    masks nothing (equal to the model without it, bit for bit), and refuses longer ones
#  - variants that transformers computes exactly as the engine does still run
#    (pretraining_tp = 2 gives the same losses as 1, bit for bit; llama3 and linear
#    RoPE in transformers 4 and 5 spellings, whose logits test_llama_parity checks)
#  - a LLaMA with attention_bias and mlp_bias (biases on all seven linears,
#    tests/reference/bias_llama, whose logits match transformers in test_llama_parity):
#    tp = 2 and tp = 2 x dp = 2 reproduce tp = 1 within 1e-5 of the loss scale over 12
#    steps (o_proj's and down_proj's biases added once, after the all-reduce; added on
#    both ranks they move the loss by 2 %); full-parameter training writes a model
#    that holds the trained o_proj.bias and loads again; so does `init --residual-out`
#  - `ailora synth --bias --mlp-bias` (LLaMA, all seven biases), `--model-type qwen2`
#    (q/k/v) and `--model-type mistral` write models that svd and train at tp = 2 accept
. "${top_srcdir:-.}/tests/lib.sh"
R=$(cd "$top_srcdir/tests/reference" && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "SKIP: no $PY"; exit 77; }

# variant NAME BASE PATCH: model dir NAME with BASE's weights and BASE's config.json
# patched by the JSON object PATCH (a value "DEL" removes the key)
variant() {
    mkdir -p "$WORK/$1"
    ln -sf "$R/$2/model.safetensors" "$WORK/$1/model.safetensors"
    "$PY" -c 'import json, sys
c = json.load(open(sys.argv[1]))
for k, v in json.loads(sys.argv[2]).items():
    c.pop(k, None) if v == "DEL" else c.__setitem__(k, v)
json.dump(c, open(sys.argv[3], "w"), indent=1)' "$R/$2/config.json" "$3" "$WORK/$1/config.json"
}

MISTRAL='"model_type": "mistral", "architectures": ["MistralForCausalLM"]'
# base | patch | the error names
TABLE=$(cat << EOF
train_llama|{"model_type": "gemma"}|"model_type": "gemma"
train_llama|{"model_type": "phi3", "architectures": ["Phi3ForCausalLM"]}|"model_type": "phi3"
train_llama|{"model_type": "DEL", "architectures": ["GPT2LMHeadModel"]}|"architectures": "GPT2LMHeadModel"
train_llama|{"architectures": ["LlamaForSequenceClassification"]}|"architectures": "LlamaForSequenceClassification"
train_llama|{"architectures": ["MistralForCausalLM"]}|"architectures": "MistralForCausalLM" (does not match model_type)
train_llama|{"hidden_act": "gelu"}|"hidden_act": "gelu"
train_llama|{"hidden_activation": "gelu_pytorch_tanh"}|"hidden_activation": "gelu_pytorch_tanh"
train_llama|{"mlp_bias": true}|"model.layers.0.mlp.gate_proj.bias" is missing
train_llama|{$MISTRAL, "sliding_window": null, "mlp_bias": true}|"mlp_bias": true
train_llama|{"rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0}}|"rope_parameters.low_freq_factor"
train_llama|{"rope_parameters": {"rope_theta": 10000.0, "rope_type": "yarn", "factor": 4.0}}|"rope_parameters.rope_type": "yarn"
train_llama|{"rope_scaling": {"type": "linear"}}|"rope_scaling.factor"
train_llama|{"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}|"rope_scaling.rope_type": "dynamic"
train_llama|{"rope_scaling": {"rope_type": "longrope", "short_factor": [1], "long_factor": [2]}}|"rope_scaling.rope_type": "longrope"
train_llama|{"partial_rotary_factor": 0.5}|"partial_rotary_factor": 0.5
train_llama|{"attn_logit_softcapping": 50.0}|"attn_logit_softcapping": 50
train_llama|{"final_logit_softcapping": 30.0}|"final_logit_softcapping": 30
train_llama|{$MISTRAL, "sliding_window": "4k"}|"sliding_window": "4k"
train_llama|{$MISTRAL, "sliding_window": null, "attention_bias": true}|"attention_bias": true
train_qwen2|{"use_sliding_window": "yes"}|"use_sliding_window": "yes"
train_qwen2|{"layer_types": ["full_attention", "sliding_attention"]}|"layer_types": "sliding_attention"
train_llama|{"head_dim": 8}|is not [32, 64] as config.json implies
train_llama|{"head_dim": 5}|is not [20, 64] as config.json implies
train_llama|{"dtype": "int8"}|"dtype": "int8"
train_llama|{"dtype": "DEL", "torch_dtype": "float8_e4m3fn"}|"torch_dtype": "float8_e4m3fn"
train_llama|{"attention_dropout": 0.1}|"attention_dropout": 0.1
train_llama|{"embedding_multiplier": 12.0, "logits_scaling": 8.0}|"embedding_multiplier": 12
train_llama|{"use_qk_norm": true}|"use_qk_norm": true
train_llama|{"num_hidden_layers": 1}|"model.layers.1.input_layernorm.weight" exists but config.json says num_hidden_layers 1
train_llama|{"pretraining_tp": 0}|"pretraining_tp": 0
train_llama|{"quantization_config": {"quant_method": "gptq", "bits": 4}}|"quantization_config"
train_llama|{"auto_map": {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}}|"auto_map.AutoModelForCausalLM"
bias_llama|{"attention_bias": false}|"model.layers.0.self_attn.q_proj.bias" exists
bias_llama|{"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "attention_bias": "DEL", "mlp_bias": "DEL"}|"model.layers.0.self_attn.o_proj.bias" exists
train_llama|{"attention_bias": true}|"model.layers.0.self_attn.q_proj.bias" is missing
train_qwen2|{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}|"model.layers.0.self_attn.q_proj.bias" exists
EOF
)
i=0
while IFS='|' read -r base patch want <&3; do
    i=$((i + 1))
    variant "bad$i" "$base" "$patch"
    TRAIN="train_data=$R/train_data.h5 method=lora rank=4 steps=2 batch_size=4"
    # every variant at 1 and at 2 ranks, svd and train taking turns
    if [ $((i % 2)) -eq 0 ]; then
        expect_error "$want" "$WORK/out$i.h5" "$AILORA" svd --model "$WORK/bad$i" --out "$WORK/out$i.h5"
        # shellcheck disable=SC2086
        expect_error "$want" "$WORK/run$i.h5" run_np 2 "$AILORA" train model="$WORK/bad$i" $TRAIN out="$WORK/run$i.h5"
    else
        # shellcheck disable=SC2086
        expect_error "$want" "$WORK/run$i.h5" "$AILORA" train model="$WORK/bad$i" $TRAIN out="$WORK/run$i.h5"
        expect_error "$want" "$WORK/out$i.h5" run_np 2 "$AILORA" svd --model "$WORK/bad$i" --out "$WORK/out$i.h5"
    fi
done 3<< EOF
$TABLE
EOF

# init opens models the same way
expect_error '"hidden_act": "gelu"' "$WORK/init_bad.h5" "$AILORA" init --model "$WORK/bad6" --method pissa --rank 2 \
    --out "$WORK/init_bad.h5"
expect_error '"hidden_act": "gelu"' "$WORK/init_bad.h5" run_np 2 "$AILORA" init --model "$WORK/bad6" --method lora \
    --rank 2 --out "$WORK/init_bad.h5"

# an active sliding window: sequences up to its length (where it masks nothing) run,
# longer ones are refused by train (svd does not care)
for v in "train_llama|{$MISTRAL, \"sliding_window\": 8}" "train_qwen2|{\"use_sliding_window\": true, \"sliding_window\": 15}"; do
    i=$((i + 1))
    variant "win$i" "${v%%|*}" "${v#*|}"
    check "$AILORA" svd --model "$WORK/win$i" --out "$WORK/win$i.h5" --quiet
    # shellcheck disable=SC2086
    expect_error "exceeds config.json's sliding_window" "$WORK/winrun$i.h5" "$AILORA" train model="$WORK/win$i" \
        train_data="$R/train_data.h5" method=lora rank=2 steps=2 batch_size=4 out="$WORK/winrun$i.h5"
    # shellcheck disable=SC2086
    expect_error "sliding_window" "$WORK/winrun$i.h5" run_np 2 "$AILORA" train model="$WORK/win$i" \
        train_data="$R/train_data.h5" method=lora rank=2 steps=2 batch_size=4 out="$WORK/winrun$i.h5"
done

# an odd head_dim: the matrices have SVDs, but RoPE (here and in transformers) needs pairs
check "$AILORA" synth --out "$WORK/odd" --hidden 20 --heads 4 --kv-heads 2 --layers 1 --vocab 128
check "$AILORA" svd --model "$WORK/odd" --out "$WORK/odd.h5" --quiet
expect_error "head_dim 5 is odd" "$WORK/odd_run.h5" "$AILORA" train model="$WORK/odd" train_data="$R/train_data.h5" \
    method=lora rank=2 steps=2 batch_size=4 out="$WORK/odd_run.h5"
expect_error "head_dim 5 is odd" "$WORK/odd_run.h5" run_np 2 "$AILORA" train model="$WORK/odd" \
    train_data="$R/train_data.h5" method=lora rank=2 steps=2 batch_size=4 out="$WORK/odd_run.h5"

# computed exactly as transformers does: accepted
TRAIN="train_data=$R/train_data.h5 method=lora rank=4 steps=4 batch_size=4 log_every=1"
cat << EOF > "$WORK/good.txt"
train_llama|{"pretraining_tp": 2}
train_llama|{"hidden_act": "swish", "rope_scaling": null, "attention_dropout": 0}
train_llama|{"rope_scaling": {"rope_type": "default"}}
train_llama|{"rope_scaling": {"type": "linear", "factor": 2.0}}
rope_llama3|{}
train_llama|{"rope_parameters": "DEL", "rope_theta": 500000.0, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16, "rope_type": "llama3"}}
train_llama|{$MISTRAL, "sliding_window": 16}
train_llama|{$MISTRAL, "sliding_window": 64}
train_llama|{$MISTRAL, "sliding_window": null}
train_llama|{$MISTRAL, "max_position_embeddings": 8192}
train_qwen2|{"use_sliding_window": true, "sliding_window": 16}
train_qwen2|{"use_sliding_window": false, "sliding_window": 4}
EOF
i=0
while IFS='|' read -r base patch <&3; do
    i=$((i + 1))
    variant "good$i" "$base" "$patch"
    # shellcheck disable=SC2086
    check "$AILORA" train model="$WORK/good$i" $TRAIN out="$WORK/good$i.h5"
done 3< "$WORK/good.txt"
# shellcheck disable=SC2086
check "$AILORA" train model="$R/train_llama" $TRAIN out="$WORK/plain.h5"
check "$H5COMPARE" "$WORK/plain.h5" "$WORK/good1.h5" --only /train/loss --tol 0
# a window as long as the sequences (16 tokens) masks nothing: the plain model's losses
check "$H5COMPARE" "$WORK/plain.h5" "$WORK/good7.h5" --only /train/loss --tol 0

# synthetic models with each class's biases load and train; an unknown type is refused
TRAIN2="train_data=$R/train_data.h5 method=pissa rank=2 steps=2 batch_size=4"
SYN="--hidden 32 --heads 4 --kv-heads 2 --layers 1 --vocab 128"
for kind in "--bias --mlp-bias" "--model-type qwen2" "--model-type mistral"; do
    name=$(echo "$kind" | tr -d ' -')
    # shellcheck disable=SC2086
    check "$AILORA" synth --out "$WORK/syn_$name" $SYN $kind
    check "$AILORA" svd --model "$WORK/syn_$name" --out "$WORK/syn_$name.h5" --quiet
    # shellcheck disable=SC2086
    check run_np 2 "$AILORA" train model="$WORK/syn_$name" svd_cache="$WORK/syn_$name.h5" $TRAIN2 tp=2 \
        out="$WORK/syn_$name.run.h5"
done
grep -Eq '"attention_bias":[[:space:]]*true' "$WORK/syn_biasmlpbias/config.json" || fail "synth --bias wrote no attention_bias"
# shellcheck disable=SC2086
expect_error 'must be llama, mistral or qwen2, got "gemma"' "$WORK/syn_gemma/model.safetensors" "$AILORA" synth --out "$WORK/syn_gemma" $SYN --model-type gemma
# shellcheck disable=SC2086
expect_error "--bias is for llama" "$WORK/syn_q/model.safetensors" "$AILORA" synth --out "$WORK/syn_q" $SYN \
    --model-type qwen2 --bias

# a residual directory of the attention_bias LLaMA keeps every bias (it opens and trains)
check "$AILORA" init --model "$R/bias_llama" --method pissa --rank 2 --out "$WORK/init.h5" --residual-out "$WORK/res"
# shellcheck disable=SC2086
check "$AILORA" train model="$WORK/res" $TRAIN out="$WORK/res.h5"

# LLaMA attention_bias under tensor parallelism: adapters on all seven modules
ALL=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
BASE="model=$R/bias_llama train_data=$R/train_data.h5 eval_data=$R/train_data.h5 targets=$ALL method=lora"
BASE="$BASE rank=4 lr=5e-3 steps=12 batch_size=8 log_every=4 eval_every=6"
# shellcheck disable=SC2086
check "$AILORA" train $BASE out="$WORK/bias_tp1.h5"
# shellcheck disable=SC2086
check run_np 2 "$AILORA" train $BASE tp=2 out="$WORK/bias_tp2.h5"
# shellcheck disable=SC2086
check run_np 4 "$AILORA" train $BASE tp=2 out="$WORK/bias_tp2dp2.h5"
for other in tp2 tp2dp2; do
    for d in /train/loss /train/grad_norm /eval/loss; do
        check "$H5COMPARE" "$WORK/bias_tp1.h5" "$WORK/bias_$other.h5" --only $d --tol 1e-5
    done
    # adapters: 1e-2 of each tensor's scale. Measured 4.7e-3 in layer 0's down_proj lora_B,
    # one of whose step-1 gradients is ~1e-8, as small as Adam's eps, so that its first
    # update lr g / (|g| + eps) is decided by float rounding (the losses agree to 1e-5)
    check "$H5COMPARE" "$WORK/bias_tp1.h5" "$WORK/bias_$other.h5" --only /adapters/ --tol 1e-2
done

# full-parameter training keeps (and trains) every bias in the model it writes
# shellcheck disable=SC2086
check "$AILORA" train model="$R/bias_llama" train_data="$R/train_data.h5" train_base=true lr=1e-2 steps=3 \
    batch_size=4 out="$WORK/full.h5" out_model="$WORK/full_model"
CHECKS=$((CHECKS + 1))
"$PY" - "$R/bias_llama/model.safetensors" "$WORK/full_model/model.safetensors" > "$WORK/st.out" 2>&1 << 'EOF' ||
import json, struct, sys
def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    head.pop("__metadata__", None)
    return {k: raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in head.items()}
a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
assert set(a) == set(b), sorted(set(a) ^ set(b))
for name in [k for k in a if k.endswith(".bias")]:
    assert a[name] != b[name], name + " did not train"
print(len(b), "tensors, all", sum(k.endswith(".bias") for k in a), "biases trained")
EOF
    { fail "trained model lacks or did not train a bias"; sed 's/^/    /' "$WORK/st.out"; }
# shellcheck disable=SC2086
check "$AILORA" train model="$WORK/full_model" $TRAIN out="$WORK/again.h5"
finish
