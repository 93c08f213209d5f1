# Every command's options come from one table (include/ailora/options.h):
#  - out-of-range, malformed and overflowing values are one error line naming the
#    key, the value and what is allowed, exit 1, nothing written (1 rank; one of
#    each kind and command again on 2 ranks: printed once, every rank leaves);
#  - CONFIG files work for svd, init and synth (with # and ; comments, overrides
#    after them) and give the same files as the flags;
#  - --help lists every option, and agrees with README.md (command synopses and the
#    train key list), --print-config prints every option's resolved value.
. "${top_srcdir:-.}/tests/lib.sh"
M="$WORK/model"
check "$AILORA" synth --out "$M" --hidden 32 --heads 2 --kv-heads 1 --layers 1
R="$top_srcdir/tests/reference"
O="$WORK/out.h5"
TRAIN="model=$M train_data=$R/train_data.h5 out=$O"

# ---- refusals, 1 rank --------------------------------------------------------------
# the user's report: SIGFPE (log_every=0, tp=0) or silently accepted
while read -r kv want; do
    # shellcheck disable=SC2086
    expect_error "$want" "$O" "$AILORA" train $TRAIN "$kv"
done <<'EOF'
log_every=0 log_every must be >= 1, got 0
tp=0 tp must be >= 1, got 0
eval_every=-1 eval_every must be >= 0, got -1
checkpoint_every=-1 checkpoint_every must be >= 0, got -1
warmup_steps=-1 warmup_steps must be >= 0, got -1
eval_batches=-1 eval_batches must be >= 0, got -1
max_new_tokens=-1 max_new_tokens must be >= 0, got -1
alpha=-5 alpha must be >= 0, got -5
dp=-1 dp must be >= 0, got -1
lr=0 lr must be > 0, got 0
beta1=1 beta1 must lie in [0, 1), got 1
eps=0 eps must be > 0, got 0
grad_clip=-1 grad_clip must be >= 0, got -1
ratio_v=1.5 ratio_v must lie in [0, 1], got 1.5
seed=-2 seed must be >= 0, got -2
rank=8x rank expects an integer, got "8x"
steps=1e99 steps expects an integer, got "1e99"
steps=4294967297 steps must lie in [1, 2147483647], got 4294967297
lr=nan lr expects a number, got "nan"
EOF
# flag spellings name the flag
expect_error "--log-every must be >= 1, got 0" "$O" "$AILORA" train $TRAIN --log-every 0
expect_error "option --rank needs a value" "$O" "$AILORA" train $TRAIN --rank
# a config file: the line, and # comments after values
printf '[run]\nmodel = %s   # the model\ntrain_data = %s\nout = %s ; run file\nlog_every = 0   # oops\n' \
    "$M" "$R/train_data.h5" "$O" > "$WORK/bad.ini"
expect_error "bad.ini:5: log_every must be >= 1, got 0" "$O" "$AILORA" train "$WORK/bad.ini"
printf 'rank = 4\nrank = 8\n' > "$WORK/twice.ini"
expect_error "twice.ini:2: rank given twice (first on line 1)" "$O" "$AILORA" train "$WORK/twice.ini" $TRAIN

expect_error "--block must lie in [1, 4096], got 0" "$O" "$AILORA" svd --model "$M" --out "$O" --block 0
expect_error "--grid-ranks must lie in [0, 1048576], got -1" "$O" "$AILORA" svd --model "$M" --out "$O" --grid-ranks -1
expect_error "--max-rank-mem must be >= 0, got -1" "$O" "$AILORA" svd --model "$M" --out "$O" --max-rank-mem=-1
expect_error "--quiet expects true or false, got \"maybe\"" "$O" "$AILORA" svd --model "$M" --out "$O" --quiet=maybe
expect_error "--alpha must be >= 0, got -5" "$O" "$AILORA" init --model "$M" --method pissa --rank 2 --alpha -5 --out "$O"
expect_error "--rank must lie in [1, 1048576], got 0" "$O" "$AILORA" init --model "$M" --method pissa --rank 0 --out "$O"
expect_error "--seed expects an integer, got \"1e99\"" "$O" "$AILORA" init --model "$M" --method lora --rank 2 --seed 1e99 --out "$O"
expect_error "--ratio-other must lie in [0, 1], got 2" "$O" "$AILORA" init --model "$M" --method ailora --rank 2 --ratio-other 2 --out "$O"
expect_error "--lora-init must be kaiming or gaussian, got \"normal\"" "$O" "$AILORA" init --model "$M" --method lora --rank 2 --lora-init normal --out "$O"
expect_error "missing required option --method" "$O" "$AILORA" init --model "$M" --rank 2 --out "$O"
S="$WORK/synth"
expect_error "--hidden must lie in [1, 1048576], got 0" "$S" "$AILORA" synth --out "$S" --hidden 0
expect_error "--layers must lie in [1, 1048576], got -1" "$S" "$AILORA" synth --out "$S" --layers -1
expect_error "--smax must lie in (0, 1e+300], got 0" "$S" "$AILORA" synth --out "$S" --smax 0
expect_error "--decades must lie in [0, 300], got -1" "$S" "$AILORA" synth --out "$S" --decades -1
expect_error "--shards must lie in [1, 1048576], got 0" "$S" "$AILORA" synth --out "$S" --shards 0
expect_error "unknown --dtype \"F8\"" "$S" "$AILORA" synth --out "$S" --dtype F8

# ---- refusals, 2 ranks: one of each kind and command ------------------------------
expect_error "log_every must be >= 1, got 0" "$O" run_np 2 "$AILORA" train $TRAIN log_every=0
expect_error "tp must be >= 1, got 0" "$O" run_np 2 "$AILORA" train $TRAIN tp=0
expect_error "steps expects an integer, got \"1e99\"" "$O" run_np 2 "$AILORA" train $TRAIN steps=1e99
expect_error "bad.ini:5: log_every must be >= 1, got 0" "$O" run_np 2 "$AILORA" train "$WORK/bad.ini"
expect_error "--block must lie in [1, 4096], got 0" "$O" run_np 2 "$AILORA" svd --model "$M" --out "$O" --block 0
expect_error "--alpha must be >= 0, got -5" "$O" run_np 2 "$AILORA" init --model "$M" --method pissa --rank 2 --alpha -5 --out "$O"
expect_error "--hidden must lie in [1, 1048576], got 0" "$S" run_np 2 "$AILORA" synth --out "$S" --hidden 0

# ---- CONFIG files for svd, init and synth: same files as the flags ----------------
check "$AILORA" synth --out "$WORK/m2" --hidden 48 --heads 4 --kv-heads 2 --layers 2 --seed 3 --dtype BF16
cat > "$WORK/synth.ini" <<EOF
; a synthetic model
out = $WORK/m3
hidden = 48        # hidden_size
heads: 4
kv-heads = 2
[shape]
  layers = 2
seed = 3
dtype = "BF16"
EOF
check "$AILORA" synth "$WORK/synth.ini"
check cmp "$WORK/m2/model.safetensors" "$WORK/m3/model.safetensors"
check cmp "$WORK/m2/config.json" "$WORK/m3/config.json"

check run_np 2 "$AILORA" svd --model "$WORK/m2" --out "$WORK/svd_flags.h5" --targets q_proj,v_proj,o_proj \
    --backend lapack --quiet
cat > "$WORK/svd.ini" <<EOF
model = $WORK/m2   # the model
out = $WORK/svd_wrong.h5
targets = q_proj,v_proj,o_proj ; three targets
backend = lapack
quiet = true
EOF
check run_np 2 "$AILORA" svd "$WORK/svd.ini" --out "$WORK/svd_cfg.h5"
check "$H5COMPARE" "$WORK/svd_flags.h5" "$WORK/svd_cfg.h5" --tol 0
CHECKS=$((CHECKS + 1))
[ -e "$WORK/svd_wrong.h5" ] && fail "the command line did not override out of svd.ini"

check run_np 2 "$AILORA" init --model "$WORK/m2" --svd "$WORK/svd_flags.h5" --targets q_proj,v_proj,o_proj \
    --method ratio --ratio-q 0.75 --ratio-v 0.25 --ratio-other 0.5 --rank 4 --alpha 8 --out "$WORK/init_flags.h5" --quiet
cat > "$WORK/init.ini" <<EOF
[model]
model = $WORK/m2
svd = $WORK/svd_flags.h5
targets = q_proj,v_proj,o_proj
[adapter]
method = ratio     # principal fraction per module
ratio_q = 0.75
ratio_v = 0.25
ratio_other = 0.5
rank = 8           ; overridden below
alpha = 8
quiet = yes
EOF
check run_np 2 "$AILORA" init "$WORK/init.ini" rank=4 --out "$WORK/init_cfg.h5"
check "$H5COMPARE" "$WORK/init_flags.h5" "$WORK/init_cfg.h5" --tol 0

# --print-config: the resolved values, file then overrides in order
"$AILORA" init "$WORK/init.ini" --rank 2 rank=3 --print-config > "$WORK/print.txt" 2>&1
CHECKS=$((CHECKS + 1))
grep -qx "rank = 3" "$WORK/print.txt" && grep -qx "ratio_q = 0.75" "$WORK/print.txt" &&
    grep -qx "quiet = true" "$WORK/print.txt" || fail "init --print-config: $(cat "$WORK/print.txt")"
# the printed text is itself a valid CONFIG giving the same values
grep -v '^out = $' "$WORK/print.txt" > "$WORK/again.ini"
"$AILORA" init "$WORK/again.ini" --print-config > "$WORK/print2.txt" 2>&1
CHECKS=$((CHECKS + 1))
cmp -s "$WORK/print.txt" "$WORK/print2.txt" || fail "init --print-config output does not load back to itself"

# ---- help lists every option; README agrees -----------------------------------------
# options of COMMAND in its --help (the --flags / keys in the first column)
help_options() {
    "$AILORA" "$1" --help | sed -n 's/^  \(--[a-z][a-z0-9-]*\|[a-z][a-z0-9_]*\) .*/\1/p' | grep -v -x -e '--print-config' -e option -e key | sort -u
}
# the README's synopsis of COMMAND (## Commands): every --flag on its lines
readme_flags() {
    sed -n '/^## Commands/,/^### Training/p' "$top_srcdir/README.md" |
        awk -v cmd="$1" '/^    ailora [a-z]+/ { on = ($2 == cmd) } /^    [^ ]/ && !/^    ailora/ { on = 0 } on' |
        grep -o -e '--[a-z][a-z0-9-]*' | sort -u
}
for cmd in svd init synth export import; do
    help_options "$cmd" > "$WORK/help_$cmd.txt"
    readme_flags "$cmd" > "$WORK/readme_$cmd.txt"
    CHECKS=$((CHECKS + 1))
    min=5; [ "$cmd" = import ] && min=4
    [ "$(wc -l < "$WORK/help_$cmd.txt")" -ge "$min" ] || fail "ailora $cmd --help lists too few options"
    diff "$WORK/help_$cmd.txt" "$WORK/readme_$cmd.txt" > "$WORK/diff.txt" ||
        fail "ailora $cmd: --help (<) and README.md's synopsis (>) differ: $(tr '\n' ' ' < "$WORK/diff.txt")"
    # --print-config prints every option --help lists
    "$AILORA" "$cmd" --print-config | sed 's/ = .*//' | tr _ - | sed 's/^/--/' | sort -u > "$WORK/print_$cmd.txt"
    CHECKS=$((CHECKS + 1))
    cmp -s "$WORK/help_$cmd.txt" "$WORK/print_$cmd.txt" || fail "ailora $cmd --print-config and --help differ"
done
help_options train > "$WORK/help_train.txt"
sed -n '/^All `ailora train` keys/,/^### /p' "$top_srcdir/README.md" | sed -n 's/^    \([a-z][a-z0-9_]*\) .*/\1/p' |
    sort -u > "$WORK/readme_train.txt"
CHECKS=$((CHECKS + 1))
[ "$(wc -l < "$WORK/help_train.txt")" -ge 30 ] || fail "ailora train --help lists too few keys"
diff "$WORK/help_train.txt" "$WORK/readme_train.txt" > "$WORK/diff.txt" ||
    fail "ailora train: --help (<) and README.md's key list (>) differ: $(tr '\n' ' ' < "$WORK/diff.txt")"
"$AILORA" train --print-config | sed 's/ = .*//' | sort -u > "$WORK/print_train.txt"
CHECKS=$((CHECKS + 1))
cmp -s "$WORK/help_train.txt" "$WORK/print_train.txt" || fail "ailora train --print-config and --help differ"
# the README's train key lines are the --help lines themselves (defaults, ranges, meaning)
"$AILORA" train --help | sed -n '/^  model /,$p' | sed 's/^/  /' > "$WORK/help_lines.txt"
sed -n '/^All `ailora train` keys/,/^### /p' "$top_srcdir/README.md" | grep '^    [a-z][a-z0-9_]* ' > "$WORK/readme_lines.txt"
CHECKS=$((CHECKS + 1))
diff "$WORK/help_lines.txt" "$WORK/readme_lines.txt" > "$WORK/diff.txt" ||
    fail "README.md's train key list is not \`ailora train --help\`: $(head -4 "$WORK/diff.txt" | tr '\n' ' ')"
finish
