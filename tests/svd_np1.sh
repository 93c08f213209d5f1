# SVD accuracy (every backend) on 1 MPI rank(s): see tests/test_svd.c
. "${top_srcdir:-.}/tests/lib.sh"
run_np 1 "$top_builddir/tests/test_svd"
