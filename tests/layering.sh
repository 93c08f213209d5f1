# The layout shows the pipeline: src/<stage>/ files include only headers of their
# own or lower stages, and headers include only headers of their own or lower
# stages (DESIGN.md section 3). Each public header belongs to one stage below; a
# header missing from the table fails the test so that new modules get a place.
. "${top_srcdir:-.}/tests/lib.sh"
stages="base io svd init model eval train cli"
# header -> stage (cuda headers sit with the stage that calls them)
header_stage() {
    case "$1" in
        error|cpu|rng|fileio|options|gpu_backend) echo base ;;
        dtype|safetensors|hfmodel|h5io|fingerprint|gguf) echo io ;;
        distmat|svd|svd_signs|svdcache|gpu_svd|svd_cost) echo svd ;;
        adapter|initfile|synth) echo init ;;
        llama|gpu|gpu_plugin|llama_decode) echo model ;;
        eval|updatediag|metrics|evaldata) echo eval ;;
        optim|trainconfig|dataset|runfile|train|engine|diaglog|export) echo train ;;
        *) echo unknown ;;
    esac
}
rank_of() { i=0; for s in $stages; do [ "$s" = "$1" ] && { echo $i; return; }; i=$((i + 1)); done; echo 99; }

violations=0
check_file() {  # file, its stage
    own=$(rank_of "$2")
    for h in $(grep -ho '#include "ailora/[a-z_0-9]*\.h"' "$1" | sed 's/.*ailora\/\(.*\)\.h"/\1/'); do
        hs=$(header_stage "$h")
        if [ "$hs" = unknown ]; then
            echo "FAIL: $1 includes ailora/$h.h, which has no stage in tests/layering.sh"; violations=$((violations + 1))
        elif [ "$(rank_of "$hs")" -gt "$own" ]; then
            echo "FAIL: $1 ($2) includes ailora/$h.h of the higher stage $hs"; violations=$((violations + 1))
        fi
    done
}
nfiles=0
for f in "$top_srcdir"/src/*/*.c "$top_srcdir"/src/*/*.cu "$top_srcdir"/src/*/*.h; do
    [ -f "$f" ] || continue
    dir=$(basename "$(dirname "$f")")
    [ "$dir" = cuda ] && dir=model
    case " $stages " in *" $dir "*) ;; *) echo "FAIL: $f is in no stage folder"; violations=$((violations + 1)); continue ;; esac
    check_file "$f" "$dir"; nfiles=$((nfiles + 1))
done
for f in "$top_srcdir"/include/ailora/*.h; do
    s=$(header_stage "$(basename "$f" .h)")
    [ "$s" = unknown ] && { echo "FAIL: $f has no stage in tests/layering.sh"; violations=$((violations + 1)); continue; }
    check_file "$f" "$s"; nfiles=$((nfiles + 1))
done
echo "checked $nfiles files, $violations layering violations"
[ "$nfiles" -gt 40 ] || { echo "FAIL: too few files found under $top_srcdir/src"; exit 1; }
[ "$violations" -eq 0 ]
