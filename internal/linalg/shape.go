package linalg

import (
	"math"

	"gonum.org/v1/gonum/blas"
)

// Shape checks for the cgo backend: C code does not check bounds, so every
// slice is checked before it is handed over, and a mismatch panics like a
// gonum routine does instead of corrupting memory.

const (
	errNegDim    = "linalg: negative dimension"
	errBadLd     = "linalg: bad leading dimension"
	errShortMat  = "linalg: slice too short for the matrix"
	errShortVec  = "linalg: slice too short for the vector"
	errBadTrans  = "linalg: bad transpose"
	errBadUplo   = "linalg: bad uplo"
	errBadSide   = "linalg: bad side"
	errBadDiag   = "linalg: bad diag"
	errBadSVDJob = "linalg: bad SVD job"
	errBadRange  = "linalg: bad eigenvalue range"
	errTooLarge  = "linalg: dimension does not fit a 32-bit LAPACK integer"
	errLapackArg = "linalg: LAPACK rejected an argument"
	// errNoWorkspace: the workspace LAPACK asks for cannot be allocated or
	// exceeds its 32-bit size.
	errNoWorkspace = "linalg: LAPACK workspace too large"
)

// checkMat panics unless a holds a rows×cols row-major matrix with stride ld.
func checkMat(rows, cols, ld, lenA int) {
	if rows < 0 || cols < 0 {
		panic(errNegDim)
	}
	if ld < max(1, cols) {
		panic(errBadLd)
	}
	if rows > math.MaxInt32 || cols > math.MaxInt32 || ld > math.MaxInt32 {
		panic(errTooLarge)
	}
	if rows > 0 && cols > 0 && lenA < (rows-1)*ld+cols {
		panic(errShortMat)
	}
}

// checkRange panics unless il..iu is a valid eigenvalue range of an n×n
// matrix (LAPACK's: 1 ≤ il ≤ iu ≤ n, or il = 1, iu = 0 when n = 0) and
// returns its length.
func checkRange(n, il, iu int) int {
	if n < 0 {
		panic(errNegDim)
	}
	if n == 0 && il == 1 && iu == 0 {
		return 0
	}
	if il < 1 || iu < il || iu > n {
		panic(errBadRange)
	}
	return iu - il + 1
}

// checkVec panics unless a vector of n elements fits in a slice of lenV.
func checkVec(n, lenV int) {
	if lenV < n {
		panic(errShortVec)
	}
}

// opShape returns the shape of X given the shape r×c of op(X).
func opShape(t blas.Transpose, r, c int) (int, int) {
	switch t {
	case blas.NoTrans:
		return r, c
	case blas.Trans, blas.ConjTrans:
		return c, r
	}
	panic(errBadTrans)
}
