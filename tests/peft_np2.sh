# The init pipeline against PEFT / numpy fixtures on 2 MPI ranks: see tests/test_peft_parity.c
. "${top_srcdir:-.}/tests/lib.sh"
run_np 2 env top_srcdir="$top_srcdir" "$top_builddir/tests/test_peft_parity"
