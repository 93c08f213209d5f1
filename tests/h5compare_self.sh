# tests/h5compare itself, on files made here with numpy + h5py: a comparison that
# must fail does (NaN is no number unless --nan-equal, and then only at the same
# positions; a sign flip of a lone singular vector; a cluster's vectors tilted out
# of the cluster's subspace by 1e-6, far above the gap bound 1e-12 * smax / gap ~
# 1e-11; a cluster vector that lost its norm) and one that must pass does (any
# rotation within a cluster of nearly equal singular values, zero singular
# vectors turned into the null space of a tall matrix, rounding at 1e-15).
. "${top_srcdir:-.}/tests/lib.sh"
PY=/usr/bin/python3
$PY -c "import numpy, h5py" 2> /dev/null || skip "/usr/bin/python3 lacks numpy/h5py (scripts/install-deps.sh)"
check $PY - "$WORK" <<'PY'
import sys
import h5py
import numpy as np
W = sys.argv[1]
rng = np.random.default_rng(7)

def save(name, **datasets):
    with h5py.File(f"{W}/{name}.h5", "w") as f:
        for key, value in datasets.items():
            f[key] = value

save("nan_a", x=np.array([1.0, np.nan, 3.0]))
save("nan_same", x=np.array([1.0, np.nan, 3.0]))
save("nan_moved", x=np.array([1.0, 2.0, np.nan]))
save("nan_none", x=np.array([1.0, 2.0, 3.0]))

def orth(n, k):
    q, r = np.linalg.qr(rng.standard_normal((n, k)))
    return q * np.sign(np.diag(r))

def svd_file(name, S, U, Vt):
    save(name, **{"modules/w/S": S, "modules/w/U": U, "modules/w/Vt": Vt})

# tall 9 x 6: S = 3, 2, {1, 1 - 1e-14, 1 - 2e-14} (a cluster), 0 (joined to the null space)
m, n = 9, 6
S = np.array([3.0, 2.0, 1.0, 1.0 - 1e-14, 1.0 - 2e-14, 0.0])
U, V = orth(m, m), orth(n, n)
svd_file("svd_a", S, U[:, :6], V.T)
Q = orth(3, 3)  # a rotation within the cluster
U2, V2 = U[:, :6].copy(), V.copy()
U2[:, 2:5] = U2[:, 2:5] @ Q
V2[:, 2:5] = V2[:, 2:5] @ Q
svd_file("svd_rotated", S, U2 + 1e-15 * rng.standard_normal(U2.shape), V2.T)
U3 = U[:, :6].copy()
U3[:, 5] = U[:, 7]  # the zero singular vector: any unit vector orthogonal to the others
svd_file("svd_null", S, U3, V.T)
U4 = U[:, :6].copy()
U4[:, 1] *= -1  # a lone vector with the other sign
svd_file("svd_sign", S, U4, V.T)
c, s = np.cos(1e-6), np.sin(1e-6)
U5 = U[:, :6].copy()
U5[:, 3] = c * U[:, 3] + s * U[:, 6]  # out of the cluster's subspace (into the null space)
svd_file("svd_tilted", S, U5, V.T)
V6 = V.copy()
V6[:, 4] *= 0.5  # in the cluster's span, but not of unit length
svd_file("svd_short", S, U[:, :6], V6.T)
U7 = U[:, :6].copy()
U7[:, 5] = c * U[:, 5] + s * U[:, 0]  # the zero vector leans on the principal one
svd_file("svd_nulltilt", S, U7, V.T)
PY
expect() {  # expect pass|fail ARGS...
    local want=$1 rc=0
    shift
    CHECKS=$((CHECKS + 1))
    "$H5COMPARE" "$@" > "$WORK/cmp.out" 2>&1 || rc=$?
    if { [ "$want" = pass ] && [ "$rc" -ne 0 ]; } || { [ "$want" = fail ] && [ "$rc" -ne 1 ]; }; then
        fail "h5compare $* should $want (exit $rc): $(tr '\n' ' ' < "$WORK/cmp.out")"
    fi
}
expect fail "$WORK/nan_a.h5" "$WORK/nan_same.h5"
expect pass "$WORK/nan_a.h5" "$WORK/nan_same.h5" --nan-equal
expect fail "$WORK/nan_a.h5" "$WORK/nan_moved.h5" --nan-equal
expect fail "$WORK/nan_a.h5" "$WORK/nan_none.h5" --nan-equal
expect fail "$WORK/nan_none.h5" "$WORK/nan_a.h5" --nan-equal
expect pass "$WORK/nan_none.h5" "$WORK/nan_none.h5" --tol 0
expect pass "$WORK/svd_a.h5" "$WORK/svd_rotated.h5" --svd --tol 1e-12
expect pass "$WORK/svd_a.h5" "$WORK/svd_null.h5" --svd --tol 1e-12
expect fail "$WORK/svd_a.h5" "$WORK/svd_sign.h5" --svd --tol 1e-12
expect fail "$WORK/svd_a.h5" "$WORK/svd_tilted.h5" --svd --tol 1e-12
expect fail "$WORK/svd_a.h5" "$WORK/svd_short.h5" --svd --tol 1e-12
expect fail "$WORK/svd_a.h5" "$WORK/svd_nulltilt.h5" --svd --tol 1e-12
# the rotation is no difference outside --svd's subspace view
expect fail "$WORK/svd_a.h5" "$WORK/svd_rotated.h5" --tol 1e-12
CHECKS=$((CHECKS + 1))
"$H5COMPARE" "$WORK/nan_a.h5" "$WORK/nan_same.h5" --nan_equal > /dev/null 2>&1 && fail "an unknown option was accepted"
finish
