package linalg

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/gonum/lapack"
	lapackgo "gonum.org/v1/gonum/lapack/gonum"
)

// Gonum is the pure-Go backend: gonum's BLAS and LAPACK. It is always
// compiled in and is the fallback when cgo or OpenBLAS is absent.
//
// gonum has no single-precision LAPACK, so the S-prefixed LAPACK routines
// convert to float64, run the D routine and convert back; the BLAS routines
// have true float32 kernels. gonum has no divide-and-conquer SVD or
// eigensolver: Dgesdd runs Dgesvd (one-sided QR iteration) and Dsyevd runs
// Dsyev.
//
// Threads: gonum's level-3 BLAS spreads large products over goroutines,
// which the Go scheduler runs on at most GOMAXPROCS threads, so the pure-Go
// backend can never oversubscribe the cores given to the process. The budget
// is still carried so that Lowrank's own blocked loops can size their fan-out
// from it.
type Gonum struct {
	threads int
}

var _ Backend = Gonum{}

// NewGonum returns the pure-Go backend with a budget of threads.
func NewGonum(threads int) Gonum { return Gonum{threads: max(1, threads)} }

var (
	goBLAS   gonum.Implementation
	goLAPACK lapackgo.Implementation
)

func (g Gonum) Name() string { return "gonum" }

func (g Gonum) Threads() int { return max(1, g.threads) }

func (g Gonum) WithThreads(n int) Backend { return Gonum{threads: max(1, n)} }

func (Gonum) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	goBLAS.Sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func (Gonum) Dgemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	goBLAS.Dgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func (Gonum) Ssyrk(ul blas.Uplo, t blas.Transpose, n, k int, alpha float32, a []float32, lda int, beta float32, c []float32, ldc int) {
	goBLAS.Ssyrk(ul, t, n, k, alpha, a, lda, beta, c, ldc)
}

func (Gonum) Dsyrk(ul blas.Uplo, t blas.Transpose, n, k int, alpha float64, a []float64, lda int, beta float64, c []float64, ldc int) {
	goBLAS.Dsyrk(ul, t, n, k, alpha, a, lda, beta, c, ldc)
}

func (Gonum) Strsm(side blas.Side, ul blas.Uplo, t blas.Transpose, d blas.Diag, m, n int, alpha float32, a []float32, lda int, b []float32, ldb int) {
	goBLAS.Strsm(side, ul, t, d, m, n, alpha, a, lda, b, ldb)
}

func (Gonum) Dtrsm(side blas.Side, ul blas.Uplo, t blas.Transpose, d blas.Diag, m, n int, alpha float64, a []float64, lda int, b []float64, ldb int) {
	goBLAS.Dtrsm(side, ul, t, d, m, n, alpha, a, lda, b, ldb)
}

func (g Gonum) Dgesdd(job lapack.SVDJob, m, n int, a []float64, lda int, s, u []float64, ldu int, vt []float64, ldvt int) bool {
	if m == 0 || n == 0 {
		return true
	}
	if job == lapack.SVDNone {
		ldu, ldvt = 1, 1
	}
	var wk [1]float64
	goLAPACK.Dgesvd(job, job, m, n, a, lda, s, u, ldu, vt, ldvt, wk[:], -1)
	work := make([]float64, int(wk[0]))
	return goLAPACK.Dgesvd(job, job, m, n, a, lda, s, u, ldu, vt, ldvt, work, len(work))
}

func (g Gonum) Sgesdd(job lapack.SVDJob, m, n int, a []float32, lda int, s, u []float32, ldu int, vt []float32, ldvt int) bool {
	if m == 0 || n == 0 {
		return true
	}
	p := min(m, n)
	a64 := widen(m, n, a, lda)
	s64 := make([]float64, p)
	var u64, vt64 []float64
	ur, vr := 0, 0
	switch job {
	case lapack.SVDAll:
		ur, vr = m, n
	case lapack.SVDStore:
		ur, vr = p, p
	}
	// U is m×ur, Vᵀ is vr×n.
	ldu64, ldvt64 := max(1, ur), max(1, n)
	if job != lapack.SVDNone {
		u64 = make([]float64, m*ur)
		vt64 = make([]float64, vr*n)
	}
	ok := g.Dgesdd(job, m, n, a64, n, s64, u64, ldu64, vt64, ldvt64)
	narrow(1, p, s, p, s64, p)
	if job != lapack.SVDNone {
		narrow(m, ur, u, ldu, u64, ldu64)
		narrow(vr, n, vt, ldvt, vt64, ldvt64)
	}
	return ok
}

func (g Gonum) Dsyevd(n int, a []float64, lda int, w []float64) bool {
	if n == 0 {
		return true
	}
	var wk [1]float64
	goLAPACK.Dsyev(lapack.EVCompute, blas.Upper, n, a, lda, w, wk[:], -1)
	work := make([]float64, int(wk[0]))
	return goLAPACK.Dsyev(lapack.EVCompute, blas.Upper, n, a, lda, w, work, len(work))
}

func (g Gonum) Ssyevd(n int, a []float32, lda int, w []float32) bool {
	if n == 0 {
		return true
	}
	a64 := widen(n, n, a, lda)
	w64 := make([]float64, n)
	ok := g.Dsyevd(n, a64, n, w64)
	narrow(n, n, a, lda, a64, n)
	narrow(1, n, w, n, w64, n)
	return ok
}

// Dsyevr has no xSYEVR to call: it computes every eigenpair by Dsyev in
// place and copies out the columns il..iu.
func (g Gonum) Dsyevr(n, il, iu int, a []float64, lda int, w, z []float64, ldz int) bool {
	m := checkRange(n, il, iu)
	checkMat(n, n, lda, len(a))
	checkVec(m, len(w))
	checkMat(n, m, ldz, len(z))
	if n == 0 {
		return true
	}
	all := make([]float64, n)
	if !g.Dsyevd(n, a, lda, all) {
		return false
	}
	copy(w, all[il-1:iu])
	for i := range n {
		copy(z[i*ldz:i*ldz+m], a[i*lda+il-1:i*lda+iu])
	}
	return true
}

func (g Gonum) Ssyevr(n, il, iu int, a []float32, lda int, w, z []float32, ldz int) bool {
	m := checkRange(n, il, iu)
	checkMat(n, n, lda, len(a))
	checkVec(m, len(w))
	checkMat(n, m, ldz, len(z))
	if n == 0 {
		return true
	}
	a64 := widen(n, n, a, lda)
	w64 := make([]float64, m)
	z64 := make([]float64, n*m)
	ok := g.Dsyevr(n, il, iu, a64, n, w64, z64, m)
	narrow(1, m, w, m, w64, m)
	narrow(n, m, z, ldz, z64, m)
	return ok
}

func (Gonum) Dgeqrf(m, n int, a []float64, lda int, tau []float64) {
	if m == 0 || n == 0 {
		return
	}
	tau = tau[:min(m, n)] // gonum wants exactly min(m, n); Backend allows more
	var wk [1]float64
	goLAPACK.Dgeqrf(m, n, a, lda, tau, wk[:], -1)
	work := make([]float64, max(1, int(wk[0])))
	goLAPACK.Dgeqrf(m, n, a, lda, tau, work, len(work))
}

func (g Gonum) Sgeqrf(m, n int, a []float32, lda int, tau []float32) {
	if m == 0 || n == 0 {
		return
	}
	a64 := widen(m, n, a, lda)
	tau64 := make([]float64, min(m, n))
	g.Dgeqrf(m, n, a64, n, tau64)
	narrow(m, n, a, lda, a64, n)
	narrow(1, len(tau64), tau, len(tau64), tau64, len(tau64))
}

func (Gonum) Dorgqr(m, n, k int, a []float64, lda int, tau []float64) {
	if n == 0 {
		return
	}
	tau = tau[:k] // gonum wants exactly k
	var wk [1]float64
	goLAPACK.Dorgqr(m, n, k, a, lda, tau, wk[:], -1)
	work := make([]float64, max(1, int(wk[0])))
	goLAPACK.Dorgqr(m, n, k, a, lda, tau, work, len(work))
}

func (g Gonum) Sorgqr(m, n, k int, a []float32, lda int, tau []float32) {
	if n == 0 {
		return
	}
	a64 := widen(m, n, a, lda)
	tau64 := make([]float64, k)
	for i := range k {
		tau64[i] = float64(tau[i])
	}
	g.Dorgqr(m, n, k, a64, n, tau64)
	narrow(m, n, a, lda, a64, n)
}

func (Gonum) Dpotrf(n int, a []float64, lda int) bool {
	if n == 0 {
		return true
	}
	return goLAPACK.Dpotrf(blas.Upper, n, a, lda)
}

func (Gonum) Dpotrs(n, nrhs int, a []float64, lda int, b []float64, ldb int) {
	if n == 0 || nrhs == 0 {
		return
	}
	goLAPACK.Dpotrs(blas.Upper, n, nrhs, a, lda, b, ldb)
}

// widen copies the m×n float32 matrix a (stride lda) into a new contiguous
// float64 matrix.
func widen(m, n int, a []float32, lda int) []float64 {
	out := make([]float64, m*n)
	for i := range m {
		row := a[i*lda : i*lda+n]
		for j, v := range row {
			out[i*n+j] = float64(v)
		}
	}
	return out
}

// narrow copies the m×n float64 matrix src (stride lds) into dst (stride ldd).
func narrow(m, n int, dst []float32, ldd int, src []float64, lds int) {
	for i := range m {
		row := src[i*lds : i*lds+n]
		for j, v := range row {
			dst[i*ldd+j] = float32(v)
		}
	}
}
