# Bad input: one error line naming the problem, non-zero exit, no output left behind.
. "${top_srcdir:-.}/tests/lib.sh"
M="$WORK/model"
check "$AILORA" synth --out "$M" --hidden 32 --heads 2 --kv-heads 1 --layers 1
O="$WORK/out.h5"

expect_error "does not exist" "$O" "$AILORA" svd --model "$WORK/nope" --out "$O"
expect_error "missing required option --out" "" "$AILORA" svd --model "$M"
expect_error "bad option \"--bogus\"" "$O" "$AILORA" svd --model "$M" --out "$O" --bogus
expect_error "unknown target module \"foo_proj\"" "$O" "$AILORA" svd --model "$M" --targets q_proj,foo_proj --out "$O"
expect_error "unknown SVD backend" "$O" "$AILORA" svd --model "$M" --backend magma --out "$O"
expect_error "unknown init method \"dora\"" "$O" "$AILORA" init --model "$M" --method dora --rank 2 --out "$O"
expect_error "rank 64 exceeds min(m, n) = 32 of model.layers.0.self_attn.q_proj" "$O" "$AILORA" init --model "$M" --method pissa --rank 64 --out "$O"
expect_error "ratio-q must lie in [0, 1]" "$O" "$AILORA" init --model "$M" --method ratio --ratio-q 1.5 --rank 2 --out "$O"
expect_error "ratio-v must lie in [0, 1]" "$O" "$AILORA" init --model "$M" --method ratio --ratio-v -0.1 --rank 2 --out "$O"
expect_error "--rank expects an integer" "$O" "$AILORA" init --model "$M" --method pissa --rank two --out "$O"
expect_error "SVD cache $WORK/none.h5 does not exist" "$O" "$AILORA" init --model "$M" --method pissa --rank 2 --svd "$WORK/none.h5" --out "$O"
echo "not hdf5" > "$WORK/fake.h5"
expect_error "is not an HDF5 file" "$O" "$AILORA" init --model "$M" --method pissa --rank 2 --svd "$WORK/fake.h5" --out "$O"

# a cache of another model lacks these modules / shapes
M2="$WORK/model2"
check "$AILORA" synth --out "$M2" --hidden 48 --heads 2 --kv-heads 1 --layers 1
check "$AILORA" svd --model "$M2" --out "$WORK/svd2.h5" --quiet
expect_error "no SVD of model.layers.0.self_attn.q_proj (32x32)" "$O" "$AILORA" init --model "$M" --method pissa --rank 2 --svd "$WORK/svd2.h5" --out "$O"
# a cache of this model with one Vt of the wrong shape (U right): refused before reading
if /usr/bin/python3 -c "import h5py" 2> /dev/null; then
    check "$AILORA" svd --model "$M" --out "$WORK/svd_vt.h5" --quiet
    check /usr/bin/python3 -c "import h5py, sys; f = h5py.File(sys.argv[1], 'a'); p = '/modules/model.layers.0.self_attn.q_proj/Vt'; del f[p]; f[p] = [[0.0] * 33] * 32" "$WORK/svd_vt.h5"
    expect_error "no SVD of model.layers.0.self_attn.q_proj (32x32)" "$O" "$AILORA" init --model "$M" --method pissa --rank 2 --svd "$WORK/svd_vt.h5" --out "$O"
fi

# config.json problems
B="$WORK/badcfg"; mkdir "$B"; cp "$M/model.safetensors" "$B/"
grep -v '"hidden_size"' "$M/config.json" > "$B/config.json"
expect_error "missing required key \"hidden_size\"" "$O" "$AILORA" svd --model "$B" --out "$O"
echo '{"hidden_size": 32,' > "$B/config.json"
expect_error "not a valid JSON object" "$O" "$AILORA" svd --model "$B" --out "$O"
sed 's/"num_attention_heads":[[:space:]]*[0-9]*/"num_attention_heads": 3e44/' "$M/config.json" > "$B/config.json"
expect_error "\"num_attention_heads\" must be a positive integer" "$O" "$AILORA" svd --model "$B" --out "$O"

# malformed safetensors: truncated data, and a header length past the end
T="$WORK/trunc"; mkdir "$T"; cp "$M/config.json" "$T/"
head -c 5000 "$M/model.safetensors" > "$T/model.safetensors"
expect_error "model.safetensors" "$O" "$AILORA" svd --model "$T" --out "$O"
printf '\377\377\377\377\000\000\000\000{}' > "$T/model.safetensors"
expect_error "header length" "$O" "$AILORA" svd --model "$T" --out "$O"
rm "$T/model.safetensors"
expect_error "neither model.safetensors nor model.safetensors.index.json" "$O" "$AILORA" svd --model "$T" --out "$O"

# sharded model with a shard missing
S="$WORK/sharded"
check "$AILORA" synth --out "$S" --hidden 32 --heads 2 --kv-heads 1 --layers 2 --shards 2
rm "$S/model-00002-of-00002.safetensors"
expect_error "model-00002-of-00002.safetensors" "$O" "$AILORA" svd --model "$S" --out "$O"

# residual directory that already exists
mkdir "$WORK/resdir"
expect_error "already exists" "$O" "$AILORA" init --model "$M" --method pissa --rank 2 --residual-out "$WORK/resdir" --out "$O"

# a failed run never clobbers an existing output
echo keep > "$WORK/keep.h5"
expect_error "rank 64 exceeds" "" "$AILORA" init --model "$M" --method pissa --rank 64 --out "$WORK/keep.h5"
CHECKS=$((CHECKS + 1))
[ "$(cat "$WORK/keep.h5")" = keep ] || fail "existing output was modified by a failed run"

# under MPI the error is printed once, not once per rank
expect_error "rank 64 exceeds" "$O" run_np 2 "$AILORA" init --model "$M" --method pissa --rank 64 --out "$O"
expect_error "unknown target module" "$O" run_np 4 "$AILORA" svd --model "$M" --targets x_proj --out "$O"
finish
