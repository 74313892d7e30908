// Package linalg holds Lowrank's matrix core: the dense BLAS/LAPACK kernels it
// needs behind one small interface (Backend), and the decompositions built on
// them (SVD, randomized SVD, PCA, rank selection).
//
// Every matrix is row-major with an explicit stride (leading dimension), as in
// gonum's blas64.General: element (i, j) of an m×n matrix a with stride lda is
// a[i*lda+j], and lda ≥ max(1, n).
//
// Two backends implement Backend: OpenBLAS + LAPACKE through a thin cgo
// binding (build tag "openblas"), and gonum's pure-Go BLAS/LAPACK, which is
// always available. Default returns the fastest one compiled in.
package linalg

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/lapack"
)

// Float is the element type of the kernels: weights arrive as f16/bf16/f32
// and are computed in float32 or float64.
type Float interface {
	~float32 | ~float64
}

// Backend is the set of dense kernels Lowrank needs from BLAS and LAPACK.
//
// All matrices are row-major. The methods follow the reference BLAS/LAPACK
// argument order with gonum's row-major conventions (gonum.org/v1/gonum/lapack),
// so a call reads like the routine it names. Shape mismatches are programmer
// errors and panic; numerical failures (no convergence, a matrix that is not
// positive definite) are reported by ok == false.
//
// A Backend value carries a thread budget: a kernel called on it never runs
// more than Threads() threads at once, OpenBLAS's own included. WithThreads
// returns a view of the same backend with another budget, so one process can
// give each pool worker its share of the cores.
type Backend interface {
	// Name identifies the backend, e.g. "openblas" or "gonum".
	Name() string
	// Threads is the thread budget of kernels called on this value (≥ 1).
	Threads() int
	// WithThreads returns the same backend with a budget of n threads
	// (n < 1 is taken as 1).
	WithThreads(n int) Backend

	// Sgemm and Dgemm compute C = alpha * op(A) * op(B) + beta * C, where
	// op(X) is X or Xᵀ; op(A) is m×k, op(B) is k×n and C is m×n.
	Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
	Dgemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int)

	// Ssyrk and Dsyrk compute the n×n symmetric C = alpha * op(A) * op(A)ᵀ + beta * C,
	// touching only the triangle given by ul. op(A) is A (n×k) when t is
	// blas.NoTrans and Aᵀ (A is k×n) when t is blas.Trans.
	Ssyrk(ul blas.Uplo, t blas.Transpose, n, k int, alpha float32, a []float32, lda int, beta float32, c []float32, ldc int)
	Dsyrk(ul blas.Uplo, t blas.Transpose, n, k int, alpha float64, a []float64, lda int, beta float64, c []float64, ldc int)

	// Strsm and Dtrsm solve op(A) * X = alpha * B (side blas.Left) or
	// X * op(A) = alpha * B (blas.Right) for the m×n B, overwritten by X,
	// where A is triangular (the triangle ul; diag blas.Unit takes its
	// diagonal as ones) and m×m or n×n by side.
	Strsm(side blas.Side, ul blas.Uplo, t blas.Transpose, d blas.Diag, m, n int, alpha float32, a []float32, lda int, b []float32, ldb int)
	Dtrsm(side blas.Side, ul blas.Uplo, t blas.Transpose, d blas.Diag, m, n int, alpha float64, a []float64, lda int, b []float64, ldb int)

	// Sgesdd and Dgesdd compute the singular value decomposition
	//  A = U * Σ * Vᵀ
	// of the m×n matrix A, which is destroyed. With p = min(m, n), s receives
	// the p singular values in decreasing order. job selects the vectors:
	//  lapack.SVDAll:   U is m×m and Vᵀ is n×n;
	//  lapack.SVDStore: the thin factors, U is m×p and Vᵀ is p×n;
	//  lapack.SVDNone:  no vectors; u and vt are not referenced.
	// Backends with LAPACK's divide-and-conquer xGESDD use it; others may use
	// another algorithm with the same results up to rounding and signs.
	Sgesdd(job lapack.SVDJob, m, n int, a []float32, lda int, s, u []float32, ldu int, vt []float32, ldvt int) (ok bool)
	Dgesdd(job lapack.SVDJob, m, n int, a []float64, lda int, s, u []float64, ldu int, vt []float64, ldvt int) (ok bool)

	// Ssyevd and Dsyevd compute all eigenvalues, in ascending order in w, and
	// the eigenvectors of the n×n symmetric matrix A, read from its upper
	// triangle. On return the columns of a hold orthonormal eigenvectors
	// (row-major, as gonum's Dsyev).
	Ssyevd(n int, a []float32, lda int, w []float32) (ok bool)
	Dsyevd(n int, a []float64, lda int, w []float64) (ok bool)

	// Ssyevr and Dsyevr compute the eigenvalues il..iu (1-based, counted in
	// ascending order, 1 ≤ il ≤ iu ≤ n; il = 1, iu = 0 when n = 0) of the
	// n×n symmetric matrix A, read from its upper triangle, and their
	// eigenvectors. With m = iu − il + 1, w receives the m eigenvalues in
	// ascending order and the n×m z (stride ldz) the orthonormal
	// eigenvectors in its columns, in the same order. A is destroyed.
	// This is LAPACK's xSYEVR with RANGE = 'I'; a backend may compute the
	// pairs by another method (the OpenBLAS one: xSYTRD, xSTEDC, and
	// xORMTR on the m columns; gonum: every eigenpair) with the same
	// results up to rounding and signs.
	Ssyevr(n, il, iu int, a []float32, lda int, w, z []float32, ldz int) (ok bool)
	Dsyevr(n, il, iu int, a []float64, lda int, w, z []float64, ldz int) (ok bool)

	// Sgeqrf and Dgeqrf compute the QR factorisation A = Q * R of the m×n
	// matrix A: R in the upper triangle of a, Q as min(m, n) elementary
	// reflectors below it with their scalars in tau (len ≥ min(m, n)).
	Sgeqrf(m, n int, a []float32, lda int, tau []float32)
	Dgeqrf(m, n int, a []float64, lda int, tau []float64)

	// Sorgqr and Dorgqr overwrite the m×n a (m ≥ n ≥ k) holding k reflectors
	// from xGEQRF with the first n columns of Q.
	Sorgqr(m, n, k int, a []float32, lda int, tau []float32)
	Dorgqr(m, n, k int, a []float64, lda int, tau []float64)

	// Dpotrf computes the Cholesky factorisation A = Uᵀ * U of the n×n
	// symmetric positive definite A, read from and written to its upper
	// triangle. ok is false when A is not positive definite.
	Dpotrf(n int, a []float64, lda int) (ok bool)
	// Dpotrs solves A * X = B for the n×nrhs B, overwritten by X, given the
	// factor U from Dpotrf.
	Dpotrs(n, nrhs int, a []float64, lda int, b []float64, ldb int)
}
