# The README's worked examples, run from README.md itself so the test fails when the
# README drifts: the `ailora synth / svd / init` block ("### A worked example") and
# the training block (`cat > my.ini <<EOF ... EOF` and its `mpirun ... train` line,
# "### Training"). The only edits: /tmp/ becomes this test's folder, `./ailora` the
# built program, `mpirun -np N` the test launcher, and the training run gets
# steps=30 appended (500 steps take 20 s here; the config text is untouched).
. "${top_srcdir:-.}/tests/lib.sh"
README="$top_srcdir/README.md"

# code_block PATTERN: the indented code block of README.md holding PATTERN, unindented
code_block() {
    awk -v pat="$1" '
        /^    / { block = block substr($0, 5) "\n"; if (index($0, pat)) hit = 1; next }
        { if (hit && !done) printf "%s", block; if (hit) done = 1; block = ""; hit = 0 }
        END { if (hit && !done) printf "%s", block }' "$README"
}
# as_test: the README's commands as this test runs them
as_test() {
    sed -e "s#/tmp/#$WORK/#g" \
        -e 's#^mpirun -np \([0-9][0-9]*\) \./ailora#run_np \1 "$AILORA"#' \
        -e 's#^\./ailora#"$AILORA"#'
}
prelude() {
    echo 'set -e'
    echo "AILORA=\"$(cd "$(dirname "$AILORA")" && pwd)/ailora\""
    echo "MPIEXEC=\"$MPIEXEC\""
    declare -f run_np
    echo "cd \"$WORK\""
}

code_block "ailora synth --out /tmp/tiny" > "$WORK/worked.txt"
code_block "cat > my.ini <<EOF" > "$WORK/training.txt"
for f in worked training; do
    CHECKS=$((CHECKS + 1))
    [ -s "$WORK/$f.txt" ] || fail "README.md has no $f example block"
done
CHECKS=$((CHECKS + 1))
grep -q '#' "$WORK/training.txt" || fail "README's my.ini lost its comment after a value (the case this test is for)"

# the worked example: synth, svd, two inits
{ prelude; as_test < "$WORK/worked.txt"; } > "$WORK/worked.sh"
check bash "$WORK/worked.sh"
for f in tiny/config.json tiny_svd.h5 ailora_r16.h5 tiny_residual/config.json ratio.h5; do
    CHECKS=$((CHECKS + 1))
    [ -e "$WORK/$f" ] || fail "the README's worked example did not write /tmp/$f"
done

# the training example, on the worked example's model with the reference data
cp "$top_srcdir/tests/reference/train_data.h5" "$WORK/train.h5"
cp "$top_srcdir/tests/reference/train_data.h5" "$WORK/eval.h5"
{ prelude; as_test < "$WORK/training.txt" | sed 's#^\(run_np [0-9]* "$AILORA" train my\.ini.*\)$#\1 steps=30#'; } \
    > "$WORK/training.sh"
CHECKS=$((CHECKS + 1))
grep -q 'train my.ini.* steps=30$' "$WORK/training.sh" || fail "no \`ailora train my.ini\` line in the README block"
check bash "$WORK/training.sh"
CHECKS=$((CHECKS + 1))
out=$(sed -n 's/^out *= *\([^ ]*\).*/\1/p' "$WORK/my.ini")
[ "$("$H5COMPARE" --attr "$WORK/$out" / steps_done 2> /dev/null)" = 30 ] ||
    fail "the README's training example did not write 30 steps to $out"
# the resolved config: the file's values (comment after a value gone), then the overrides
"$AILORA" train "$WORK/my.ini" seed=1 lr=1e-4 --print-config > "$WORK/resolved.txt" 2>&1
while read -r line; do
    CHECKS=$((CHECKS + 1))
    grep -qxF "$line" "$WORK/resolved.txt" || fail "resolved config of my.ini lacks \"$line\""
done <<'EOF'
max_new_tokens = 8
rank = 16
schedule = cosine
seed = 1
lr = 0.0001
EOF
finish
