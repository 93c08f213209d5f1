# The KV-cache decoder under tensor parallelism: tests/test_llama_decode on 2 ranks
# splits each test model tp = 2 (half the heads, kv heads and MLP columns per rank,
# adapters on column- and row-parallel modules) and checks that the decoder's tokens
# equal the no-cache greedy of the same split model and of the whole model on one
# rank, that the prefill logits equal llama_forward's within 1e-4, and that EOS
# stops rows alike on both ranks.
. "${top_srcdir:-.}/tests/lib.sh"
export top_srcdir
check run_np 2 "$top_builddir/tests/test_llama_decode"
tail -4 "$WORK/last.out"
finish
