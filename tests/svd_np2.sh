# SVD accuracy (every backend) on 2 MPI rank(s): see tests/test_svd.c
. "${top_srcdir:-.}/tests/lib.sh"
run_np 2 "$top_builddir/tests/test_svd"
