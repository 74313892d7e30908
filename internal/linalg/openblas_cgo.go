//go:build cgo && openblas

package linalg

/*
#cgo pkg-config: openblas lapacke
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/mman.h>
#include <cblas.h>
#include <lapacke.h>

// The LAPACK wrappers below take column-major operands (the Go side passes
// the column-major view of its row-major matrices, see OpenBLAS), ask the
// routine for its workspace size, allocate it, run it and return INFO.
// LAPACKE's *_work entry points with LAPACK_COL_MAJOR call the Fortran
// routine directly, with no layout conversion and no NaN scan; the Fortran
// symbols resolve to libopenblas, which carries LAPACK built on its own BLAS
// and its own parallel potrf.

// lr_symbol_library names the shared object that the dynamic linker binds
// sym to, or "" when unknown.
static const char *lr_symbol_library(const char *sym) {
	Dl_info info;
	void *p = dlsym(RTLD_DEFAULT, sym);
	if (p == NULL || dladdr(p, &info) == 0 || info.dli_fname == NULL) {
		return "";
	}
	return info.dli_fname;
}

// lr_lwork turns a workspace size returned in a float into an int. A float32
// holds 24 bits of mantissa, so a size above 2^24 may come back rounded
// down; add the possible error back.
// A size past the 32-bit LAPACK integer comes back as 0, which the
// allocation below turns into LR_NOMEM.
static lapack_int lr_lwork(double w) {
	double n = ceil(w * (1.0 + 1.0 / 8388608.0)) + 1;
	return n < 2147483647.0 ? (lapack_int)n : 0;
}

// LR_NOMEM is returned as INFO when a workspace cannot be had.
#define LR_NOMEM -1000
#define LR_ALLOC(T, n) ((n) > 0 ? (T *)lr_alloc(sizeof(T) * (size_t)(n)) : NULL)

// lr_alloc allocates a LAPACK workspace. One of 2 MiB or more is aligned
// to 2 MiB and advised into transparent huge pages (where the kernel's
// THP mode is "madvise", as on Debian, nothing else gives them): the
// BLAS-2 halves of xGESDD and xSYEVD stream through their workspace, and
// 4 KiB pages cost them TLB misses. NumPy advises its large arrays the
// same way. Measured on SGESDD 2048², 9 interleaved runs: 2.71 s median
// with malloc'd workspace, 2.47 s with it in huge pages (2.39 s with A
// too). Freed with free().
static void *lr_alloc(size_t bytes) {
	const size_t huge = (size_t)2 << 20;
	if (bytes < huge) {
		return malloc(bytes);
	}
	void *p = NULL;
	if (posix_memalign(&p, huge, bytes) != 0) {
		return NULL;
	}
	madvise(p, bytes, MADV_HUGEPAGE); // advice only: ignored where THP is off
	return p;
}

// lr_huge_copy returns a copy of the first bytes of a in huge-page memory
// when they span 2 MiB or more, else NULL (the caller then works on a
// itself). For xGESDD, whose bidiagonal reduction streams A at BLAS-2
// speed once per column: on 2048², A in huge pages too took the SVD from
// 2.47 to 2.39 s (C, 9 runs), and the thin SVD benchmark from 1.01–1.10×
// to 0.92–1.07× the faster of SciPy and PyTorch, whose NumPy arrays are
// in huge pages. It costs a copy of A (a few ms, and A's size in memory
// for the call).
static void *lr_huge_copy(const void *a, size_t bytes) {
	if (bytes < ((size_t)2 << 20)) {
		return NULL;
	}
	void *c = lr_alloc(bytes);
	if (c != NULL) {
		memcpy(c, a, bytes);
	}
	return c;
}

static int lr_sgesdd(char jobz, int m, int n, float *a, int lda, float *s,
		float *u, int ldu, float *vt, int ldvt) {
	int p = m < n ? m : n;
	lapack_int *iwork = LR_ALLOC(lapack_int, 8 * p);
	if (iwork == NULL) {
		return LR_NOMEM;
	}
	float q;
	lapack_int info = LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, jobz, m, n, a, lda, s, u, ldu, vt, ldvt, &q, -1, iwork);
	if (info == 0) {
		lapack_int lwork = lr_lwork(q);
		float *work = LR_ALLOC(float, lwork);
		if (work == NULL) {
			free(iwork);
			return LR_NOMEM;
		}
		float *ah = lr_huge_copy(a, sizeof(float) * ((size_t)(n - 1) * lda + m));
		info = LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, jobz, m, n, ah != NULL ? ah : a, lda, s, u, ldu, vt, ldvt, work, lwork, iwork);
		free(ah);
		free(work);
	}
	free(iwork);
	return info;
}

static int lr_dgesdd(char jobz, int m, int n, double *a, int lda, double *s,
		double *u, int ldu, double *vt, int ldvt) {
	int p = m < n ? m : n;
	lapack_int *iwork = LR_ALLOC(lapack_int, 8 * p);
	if (iwork == NULL) {
		return LR_NOMEM;
	}
	double q;
	lapack_int info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, jobz, m, n, a, lda, s, u, ldu, vt, ldvt, &q, -1, iwork);
	if (info == 0) {
		lapack_int lwork = lr_lwork(q);
		double *work = LR_ALLOC(double, lwork);
		if (work == NULL) {
			free(iwork);
			return LR_NOMEM;
		}
		double *ah = lr_huge_copy(a, sizeof(double) * ((size_t)(n - 1) * lda + m));
		info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, jobz, m, n, ah != NULL ? ah : a, lda, s, u, ldu, vt, ldvt, work, lwork, iwork);
		free(ah);
		free(work);
	}
	free(iwork);
	return info;
}

static int lr_ssyevd(char uplo, int n, float *a, int lda, float *w) {
	float q;
	lapack_int iq;
	lapack_int info = LAPACKE_ssyevd_work(LAPACK_COL_MAJOR, 'V', uplo, n, a, lda, w, &q, -1, &iq, -1);
	if (info != 0) {
		return info;
	}
	lapack_int lwork = lr_lwork(q);
	float *work = LR_ALLOC(float, lwork);
	lapack_int *iwork = LR_ALLOC(lapack_int, iq);
	if (work == NULL || iwork == NULL) {
		free(work);
		free(iwork);
		return LR_NOMEM;
	}
	info = LAPACKE_ssyevd_work(LAPACK_COL_MAJOR, 'V', uplo, n, a, lda, w, work, lwork, iwork, iq);
	free(work);
	free(iwork);
	return info;
}

static int lr_dsyevd(char uplo, int n, double *a, int lda, double *w) {
	double q;
	lapack_int iq;
	lapack_int info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'V', uplo, n, a, lda, w, &q, -1, &iq, -1);
	if (info != 0) {
		return info;
	}
	lapack_int lwork = lr_lwork(q);
	double *work = LR_ALLOC(double, lwork);
	lapack_int *iwork = LR_ALLOC(lapack_int, iq);
	if (work == NULL || iwork == NULL) {
		free(work);
		free(iwork);
		return LR_NOMEM;
	}
	info = LAPACKE_dsyevd_work(LAPACK_COL_MAJOR, 'V', uplo, n, a, lda, w, work, lwork, iwork, iq);
	free(work);
	free(iwork);
	return info;
}

// LR_SYEVSEL defines lr_ssyevsel and lr_dsyevsel: the eigenpairs il..iu
// of the symmetric A (lower triangle, column-major) by xSYTRD, xSTEDC with
// COMPZ 'I' (every eigenvector of the tridiagonal T, divide and conquer)
// and xORMTR on the m = iu - il + 1 selected columns only. z (n×m, stride n)
// receives the eigenvectors and w the m eigenvalues.
#define LR_SYEVSEL(NAME, T, P)                                                         \
static int NAME(int n, int il, int iu, T *a, int lda, T *w, T *z) {                  \
	int m = iu - il + 1;                                                             \
	T *d = LR_ALLOC(T, n), *e = LR_ALLOC(T, n), *tau = LR_ALLOC(T, n);               \
	T *zt = LR_ALLOC(T, (size_t)n * n);                                              \
	T *work = NULL;                                                                  \
	lapack_int *iwork = NULL;                                                        \
	lapack_int info = LR_NOMEM;                                                      \
	if (d == NULL || e == NULL || tau == NULL || zt == NULL) {                       \
		goto out;                                                                    \
	}                                                                                \
	T q1, q2, q3;                                                                    \
	lapack_int iq;                                                                   \
	info = LAPACKE_##P##sytrd_work(LAPACK_COL_MAJOR, 'L', n, a, lda, d, e, tau, &q1, -1); \
	if (info == 0) {                                                                 \
		info = LAPACKE_##P##stedc_work(LAPACK_COL_MAJOR, 'I', n, d, e, zt, n, &q2, -1, &iq, -1); \
	}                                                                                \
	if (info == 0) {                                                                 \
		info = LAPACKE_##P##ormtr_work(LAPACK_COL_MAJOR, 'L', 'L', 'N', n, m, a, lda, tau, zt, n, &q3, -1); \
	}                                                                                \
	if (info != 0) {                                                                 \
		goto out;                                                                    \
	}                                                                                \
	lapack_int lwork = lr_lwork(q1);                                                 \
	if (lr_lwork(q2) > lwork) lwork = lr_lwork(q2);                                  \
	if (lr_lwork(q3) > lwork) lwork = lr_lwork(q3);                                  \
	work = LR_ALLOC(T, lwork);                                                       \
	iwork = LR_ALLOC(lapack_int, iq);                                                \
	info = LR_NOMEM;                                                                 \
	if (work == NULL || iwork == NULL) {                                             \
		goto out;                                                                    \
	}                                                                                \
	info = LAPACKE_##P##sytrd_work(LAPACK_COL_MAJOR, 'L', n, a, lda, d, e, tau, work, lwork); \
	if (info == 0) {                                                                 \
		info = LAPACKE_##P##stedc_work(LAPACK_COL_MAJOR, 'I', n, d, e, zt, n, work, lwork, iwork, iq); \
	}                                                                                \
	if (info == 0) {                                                                 \
		memcpy(z, zt + (size_t)(il - 1) * n, sizeof(T) * (size_t)n * m);             \
		memcpy(w, d + il - 1, sizeof(T) * (size_t)m);                                \
		info = LAPACKE_##P##ormtr_work(LAPACK_COL_MAJOR, 'L', 'L', 'N', n, m, a, lda, tau, z, n, work, lwork); \
	}                                                                                \
out:                                                                                 \
	free(d); free(e); free(tau); free(zt); free(work); free(iwork);                  \
	return info;                                                                     \
}

LR_SYEVSEL(lr_ssyevsel, float, s)
LR_SYEVSEL(lr_dsyevsel, double, d)

// The QR wrappers run the LQ routines: see OpenBLAS.Dgeqrf.
static int lr_sgelqf(int m, int n, float *a, int lda, float *tau) {
	float q;
	lapack_int info = LAPACKE_sgelqf_work(LAPACK_COL_MAJOR, m, n, a, lda, tau, &q, -1);
	if (info != 0) {
		return info;
	}
	lapack_int lwork = lr_lwork(q);
	float *work = LR_ALLOC(float, lwork);
	if (work == NULL) {
		return LR_NOMEM;
	}
	info = LAPACKE_sgelqf_work(LAPACK_COL_MAJOR, m, n, a, lda, tau, work, lwork);
	free(work);
	return info;
}

static int lr_dgelqf(int m, int n, double *a, int lda, double *tau) {
	double q;
	lapack_int info = LAPACKE_dgelqf_work(LAPACK_COL_MAJOR, m, n, a, lda, tau, &q, -1);
	if (info != 0) {
		return info;
	}
	lapack_int lwork = lr_lwork(q);
	double *work = LR_ALLOC(double, lwork);
	if (work == NULL) {
		return LR_NOMEM;
	}
	info = LAPACKE_dgelqf_work(LAPACK_COL_MAJOR, m, n, a, lda, tau, work, lwork);
	free(work);
	return info;
}

static int lr_sorglq(int m, int n, int k, float *a, int lda, const float *tau) {
	float q;
	lapack_int info = LAPACKE_sorglq_work(LAPACK_COL_MAJOR, m, n, k, a, lda, tau, &q, -1);
	if (info != 0) {
		return info;
	}
	lapack_int lwork = lr_lwork(q);
	float *work = LR_ALLOC(float, lwork);
	if (work == NULL) {
		return LR_NOMEM;
	}
	info = LAPACKE_sorglq_work(LAPACK_COL_MAJOR, m, n, k, a, lda, tau, work, lwork);
	free(work);
	return info;
}

static int lr_dorglq(int m, int n, int k, double *a, int lda, const double *tau) {
	double q;
	lapack_int info = LAPACKE_dorglq_work(LAPACK_COL_MAJOR, m, n, k, a, lda, tau, &q, -1);
	if (info != 0) {
		return info;
	}
	lapack_int lwork = lr_lwork(q);
	double *work = LR_ALLOC(double, lwork);
	if (work == NULL) {
		return LR_NOMEM;
	}
	info = LAPACKE_dorglq_work(LAPACK_COL_MAJOR, m, n, k, a, lda, tau, work, lwork);
	free(work);
	return info;
}

static int lr_dpotrf(int n, double *a, int lda) {
	return LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', n, a, lda);
}

// lr_dpotrs solves Uᵀ U X = B for the row-major B with two triangular
// solves, which is what xPOTRS does; CBLAS takes row-major operands as they
// are, where LAPACKE would transpose B into a copy.
static void lr_dpotrs(int n, int nrhs, const double *a, int lda, double *b, int ldb) {
	cblas_dtrsm(CblasRowMajor, CblasLeft, CblasUpper, CblasTrans, CblasNonUnit, n, nrhs, 1.0, a, lda, b, ldb);
	cblas_dtrsm(CblasRowMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, n, nrhs, 1.0, a, lda, b, ldb);
}
*/
import "C"

import (
	"fmt"
	"strings"
	"unsafe"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/lapack"
)

// OpenBLAS is the backend on OpenBLAS's CBLAS and on LAPACK through
// LAPACKE, bound with cgo (build tag "openblas").
//
// Layout: BLAS calls go through CBLAS with CblasRowMajor, which handles
// row-major operands without copying. LAPACK is column-major, and LAPACKE's
// row-major mode transposes every operand into a copy, which for the large
// matrices Lowrank factors costs memory and time. Instead each routine is
// called in column-major mode on the view of the row-major m×n matrix A as
// the column-major n×m matrix Aᵀ, and the result is read back through the
// same identity:
//
//   - SVD: Aᵀ = U' Σ V'ᵀ gives A = V' Σ U'ᵀ, so xGESDD on the view writes
//     our Vᵀ where it writes its U and our U where it writes its Vᵀ.
//   - Symmetric eigenproblem: A = Aᵀ, and our upper triangle is the view's
//     lower one. Only the n×n eigenvectors need a transpose in place, to land
//     in the columns of a (gonum's convention) rather than its rows; the n×m
//     eigenvectors of xSYEVR's range are transposed from a scratch matrix into z.
//   - QR: the LQ factorisation of the view, Aᵀ = L Q, is A = Qᵀ Lᵀ, the QR
//     factorisation of A; xGELQF leaves Lᵀ = R in our upper triangle and the
//     reflectors in our columns below the diagonal, exactly where row-major
//     xGEQRF puts them, and xORGLQ on the view forms our Q. No copy.
//   - Cholesky: xPOTRF with uplo 'L' on the view is A = Uᵀ U with U in our
//     upper triangle; the solve uses two CBLAS triangular solves.
//
// Threads: see threadGate.
//
// References:
//
//	E. Anderson et al., LAPACK Users' Guide, 3rd ed., SIAM, 1999
//	(xGESDD, xSYEVD, xSYTRD, xSTEDC, xORMTR, xGELQF, xORGLQ, xPOTRF).
//	M. Gu and S. C. Eisenstat, A divide-and-conquer algorithm for the
//	bidiagonal SVD, SIAM J. Matrix Anal. Appl. 16(1), 1995 (xGESDD).
//	M. Gu and S. C. Eisenstat, A divide-and-conquer algorithm for the
//	symmetric tridiagonal eigenproblem, SIAM J. Matrix Anal. Appl. 16(1),
//	1995 (xSYEVD).
type OpenBLAS struct {
	threads int
}

var _ Backend = OpenBLAS{}

// gate is process-wide because OpenBLAS's thread count is.
var gate *threadGate

func init() {
	gate = newThreadGate(func(n int) { C.openblas_set_num_threads(C.int(n)) })
	openBLAS = func(threads int) Backend { return OpenBLAS{threads: max(1, threads)} }
}

func (o OpenBLAS) Name() string { return "openblas" }

func (o OpenBLAS) Threads() int { return max(1, o.threads) }

func (o OpenBLAS) WithThreads(n int) Backend { return OpenBLAS{threads: max(1, n)} }

// Describe names the library build, e.g.
// "openblas 0.3.21 (Haswell, pthreads), threads=2".
func (o OpenBLAS) Describe() string {
	config := strings.Fields(C.GoString(C.openblas_get_config()))
	version := "?"
	if len(config) > 1 {
		version = config[1]
	}
	par := map[C.int]string{0: "sequential", 1: "pthreads", 2: "openmp"}[C.openblas_get_parallel()]
	core := C.GoString(C.openblas_get_corename())
	return fmt.Sprintf("openblas %s (%s, %s), threads=%d", version, core, par, o.Threads())
}

// symbolLibrary names the shared library that provides the C symbol sym in
// this process, e.g. where LAPACKE's calls to sgesdd_ land: it must be
// libopenblas (LAPACK on OpenBLAS's kernels), not a reference liblapack on
// a reference BLAS, which is several times slower.
func symbolLibrary(sym string) string {
	cs := C.CString(sym)
	defer C.free(unsafe.Pointer(cs))
	return C.GoString(C.lr_symbol_library(cs))
}

func (o OpenBLAS) run(work float64, f func()) {
	gate.do(gate.threadsFor(o.Threads(), work), f)
}

func f32(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

func f64(s []float64) *C.double {
	if len(s) == 0 {
		return nil
	}
	return (*C.double)(unsafe.Pointer(&s[0]))
}

func cblasTrans(t blas.Transpose) C.enum_CBLAS_TRANSPOSE {
	if t == blas.NoTrans {
		return C.CblasNoTrans
	}
	return C.CblasTrans
}

func cblasUplo(ul blas.Uplo) C.enum_CBLAS_UPLO {
	switch ul {
	case blas.Upper:
		return C.CblasUpper
	case blas.Lower:
		return C.CblasLower
	}
	panic(errBadUplo)
}

func checkGemm(tA, tB blas.Transpose, m, n, k, lda, la, ldb, lb, ldc, lc int) {
	ar, ac := opShape(tA, m, k)
	br, bc := opShape(tB, k, n)
	checkMat(ar, ac, lda, la)
	checkMat(br, bc, ldb, lb)
	checkMat(m, n, ldc, lc)
}

func (o OpenBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(tA, tB, m, n, k, lda, len(a), ldb, len(b), ldc, len(c))
	if m == 0 || n == 0 {
		return
	}
	o.run(float64(m)*float64(n)*float64(k), func() {
		C.cblas_sgemm(C.CblasRowMajor, cblasTrans(tA), cblasTrans(tB), C.int(m), C.int(n), C.int(k),
			C.float(alpha), f32(a), C.int(lda), f32(b), C.int(ldb), C.float(beta), f32(c), C.int(ldc))
	})
}

func (o OpenBLAS) Dgemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	checkGemm(tA, tB, m, n, k, lda, len(a), ldb, len(b), ldc, len(c))
	if m == 0 || n == 0 {
		return
	}
	o.run(float64(m)*float64(n)*float64(k), func() {
		C.cblas_dgemm(C.CblasRowMajor, cblasTrans(tA), cblasTrans(tB), C.int(m), C.int(n), C.int(k),
			C.double(alpha), f64(a), C.int(lda), f64(b), C.int(ldb), C.double(beta), f64(c), C.int(ldc))
	})
}

func checkSyrk(ul blas.Uplo, t blas.Transpose, n, k, lda, la, ldc, lc int) {
	cblasUplo(ul)
	ar, ac := opShape(t, n, k)
	checkMat(ar, ac, lda, la)
	checkMat(n, n, ldc, lc)
}

func (o OpenBLAS) Ssyrk(ul blas.Uplo, t blas.Transpose, n, k int, alpha float32, a []float32, lda int, beta float32, c []float32, ldc int) {
	checkSyrk(ul, t, n, k, lda, len(a), ldc, len(c))
	if n == 0 {
		return
	}
	o.run(float64(n)*float64(n)*float64(k)/2, func() {
		C.cblas_ssyrk(C.CblasRowMajor, cblasUplo(ul), cblasTrans(t), C.int(n), C.int(k),
			C.float(alpha), f32(a), C.int(lda), C.float(beta), f32(c), C.int(ldc))
	})
}

func (o OpenBLAS) Dsyrk(ul blas.Uplo, t blas.Transpose, n, k int, alpha float64, a []float64, lda int, beta float64, c []float64, ldc int) {
	checkSyrk(ul, t, n, k, lda, len(a), ldc, len(c))
	if n == 0 {
		return
	}
	o.run(float64(n)*float64(n)*float64(k)/2, func() {
		C.cblas_dsyrk(C.CblasRowMajor, cblasUplo(ul), cblasTrans(t), C.int(n), C.int(k),
			C.double(alpha), f64(a), C.int(lda), C.double(beta), f64(c), C.int(ldc))
	})
}

// checkTrsm checks the operands of a triangular solve and returns the order
// of A.
func checkTrsm(side blas.Side, ul blas.Uplo, t blas.Transpose, d blas.Diag, m, n, lda, la, ldb, lb int) int {
	cblasUplo(ul)
	opShape(t, 0, 0)
	k := n
	switch side {
	case blas.Left:
		k = m
	case blas.Right:
	default:
		panic(errBadSide)
	}
	if d != blas.Unit && d != blas.NonUnit {
		panic(errBadDiag)
	}
	checkMat(k, k, lda, la)
	checkMat(m, n, ldb, lb)
	return k
}

func cblasTrsmFlags(side blas.Side, ul blas.Uplo, d blas.Diag) (C.enum_CBLAS_SIDE, C.enum_CBLAS_DIAG) {
	cs, cd := C.enum_CBLAS_SIDE(C.CblasLeft), C.enum_CBLAS_DIAG(C.CblasNonUnit)
	if side == blas.Right {
		cs = C.CblasRight
	}
	if d == blas.Unit {
		cd = C.CblasUnit
	}
	return cs, cd
}

func (o OpenBLAS) Strsm(side blas.Side, ul blas.Uplo, t blas.Transpose, d blas.Diag, m, n int, alpha float32, a []float32, lda int, b []float32, ldb int) {
	k := checkTrsm(side, ul, t, d, m, n, lda, len(a), ldb, len(b))
	if m == 0 || n == 0 {
		return
	}
	cs, cd := cblasTrsmFlags(side, ul, d)
	o.run(float64(m)*float64(n)*float64(k)/2, func() {
		C.cblas_strsm(C.CblasRowMajor, cs, cblasUplo(ul), cblasTrans(t), cd, C.int(m), C.int(n),
			C.float(alpha), f32(a), C.int(lda), f32(b), C.int(ldb))
	})
}

func (o OpenBLAS) Dtrsm(side blas.Side, ul blas.Uplo, t blas.Transpose, d blas.Diag, m, n int, alpha float64, a []float64, lda int, b []float64, ldb int) {
	k := checkTrsm(side, ul, t, d, m, n, lda, len(a), ldb, len(b))
	if m == 0 || n == 0 {
		return
	}
	cs, cd := cblasTrsmFlags(side, ul, d)
	o.run(float64(m)*float64(n)*float64(k)/2, func() {
		C.cblas_dtrsm(C.CblasRowMajor, cs, cblasUplo(ul), cblasTrans(t), cd, C.int(m), C.int(n),
			C.double(alpha), f64(a), C.int(lda), f64(b), C.int(ldb))
	})
}

// checkGesdd checks the operands of an SVD and returns LAPACK's JOBZ.
func checkGesdd(job lapack.SVDJob, m, n, lda, la, ls, ldu, lu, ldvt, lvt int) C.char {
	checkMat(m, n, lda, la)
	p := min(m, n)
	checkVec(p, ls)
	switch job {
	case lapack.SVDAll:
		checkMat(m, m, ldu, lu)
		checkMat(n, n, ldvt, lvt)
		return 'A'
	case lapack.SVDStore:
		checkMat(m, p, ldu, lu)
		checkMat(p, n, ldvt, lvt)
		return 'S'
	case lapack.SVDNone:
		return 'N'
	}
	panic(errBadSVDJob)
}

// lapackOK maps INFO to ok, panicking on an argument error: those are
// programmer errors the shape checks should have caught.
func lapackOK(info C.int) bool {
	if info == C.LR_NOMEM {
		panic(errNoWorkspace)
	}
	if info < 0 {
		panic(fmt.Sprintf("%s (INFO = %d)", errLapackArg, int(info)))
	}
	return info == 0
}

// Sgesdd: see Dgesdd.
func (o OpenBLAS) Sgesdd(job lapack.SVDJob, m, n int, a []float32, lda int, s, u []float32, ldu int, vt []float32, ldvt int) bool {
	jobz := checkGesdd(job, m, n, lda, len(a), len(s), ldu, len(u), ldvt, len(vt))
	if m == 0 || n == 0 {
		return true
	}
	if jobz == 'N' {
		u, vt, ldu, ldvt = nil, nil, 1, 1
	}
	var info C.int
	o.run(float64(m)*float64(n)*float64(min(m, n)), func() {
		info = C.lr_sgesdd(jobz, C.int(n), C.int(m), f32(a), C.int(lda), f32(s), f32(vt), C.int(ldvt), f32(u), C.int(ldu))
	})
	return lapackOK(info)
}

// Dgesdd runs LAPACK's DGESDD on the column-major n×m view Aᵀ, with the
// places of U and Vᵀ swapped (see OpenBLAS).
func (o OpenBLAS) Dgesdd(job lapack.SVDJob, m, n int, a []float64, lda int, s, u []float64, ldu int, vt []float64, ldvt int) bool {
	jobz := checkGesdd(job, m, n, lda, len(a), len(s), ldu, len(u), ldvt, len(vt))
	if m == 0 || n == 0 {
		return true
	}
	if jobz == 'N' {
		u, vt, ldu, ldvt = nil, nil, 1, 1
	}
	var info C.int
	o.run(float64(m)*float64(n)*float64(min(m, n)), func() {
		info = C.lr_dgesdd(jobz, C.int(n), C.int(m), f64(a), C.int(lda), f64(s), f64(vt), C.int(ldvt), f64(u), C.int(ldu))
	})
	return lapackOK(info)
}

// transposeSquare transposes the n×n matrix a (stride lda) in place.
func transposeSquare[T Float](n int, a []T, lda int) {
	for i := range n {
		for j := i + 1; j < n; j++ {
			a[i*lda+j], a[j*lda+i] = a[j*lda+i], a[i*lda+j]
		}
	}
}

// Ssyevd: see Dsyevd.
func (o OpenBLAS) Ssyevd(n int, a []float32, lda int, w []float32) bool {
	checkMat(n, n, lda, len(a))
	checkVec(n, len(w))
	if n == 0 {
		return true
	}
	var info C.int
	o.run(float64(n)*float64(n)*float64(n), func() {
		info = C.lr_ssyevd('L', C.int(n), f32(a), C.int(lda), f32(w))
	})
	ok := lapackOK(info)
	transposeSquare(n, a, lda)
	return ok
}

// Dsyevd runs LAPACK's DSYEVD (divide and conquer) on the lower triangle of
// the column-major view, which is our upper triangle, then transposes the
// eigenvectors from the rows of a into its columns.
func (o OpenBLAS) Dsyevd(n int, a []float64, lda int, w []float64) bool {
	checkMat(n, n, lda, len(a))
	checkVec(n, len(w))
	if n == 0 {
		return true
	}
	var info C.int
	o.run(float64(n)*float64(n)*float64(n), func() {
		info = C.lr_dsyevd('L', C.int(n), f64(a), C.int(lda), f64(w))
	})
	ok := lapackOK(info)
	transposeSquare(n, a, lda)
	return ok
}

// Ssyevr: see Dsyevr.
func (o OpenBLAS) Ssyevr(n, il, iu int, a []float32, lda int, w, z []float32, ldz int) bool {
	m := checkRange(n, il, iu)
	checkMat(n, n, lda, len(a))
	checkVec(m, len(w))
	checkMat(n, m, ldz, len(z))
	if n == 0 {
		return true
	}
	wm := make([]float32, m)
	zc := make([]float32, n*m)
	var info C.int
	o.run(float64(n)*float64(n)*float64(n), func() {
		info = C.lr_ssyevsel(C.int(n), C.int(il), C.int(iu), f32(a), C.int(lda), f32(wm), f32(zc))
	})
	ok := lapackOK(info)
	copy(w, wm)
	placeColumns(n, m, z, ldz, zc)
	return ok
}

// Dsyevr works on the lower triangle of the column-major view, which is our
// upper triangle: DSYTRD reduces it to tridiagonal T = QᵀAQ, DSTEDC finds
// every eigenpair of T by divide and conquer, and DORMTR multiplies only the
// m selected eigenvectors by Q. DSYEVR itself would pick MRRR or bisection
// and inverse iteration for the subset; on OpenBLAS 0.3.21 both took longer
// than DSTEDC on all of T (n = 256, m = 64: SSTEMR 3.0 ms, SSTEBZ with
// SSTEIN 3.1 ms, SSTEDC 1.9–2.3 ms, SSYTRD 1.0–1.3 ms, SORMTR 0.7–0.9 ms).
// Forming Q (SORGTR) on a second thread while SSTEDC runs, then one SGEMM,
// took 15 % off the solve alone but nothing off HOOI, whose threaded GEMMs
// leave OpenBLAS's workers spinning on the cores that thread needs. The eigenvectors come back as the columns
// of a column-major n×m matrix, i.e. the rows of a row-major m×n one, and
// are transposed into the columns of z.
func (o OpenBLAS) Dsyevr(n, il, iu int, a []float64, lda int, w, z []float64, ldz int) bool {
	m := checkRange(n, il, iu)
	checkMat(n, n, lda, len(a))
	checkVec(m, len(w))
	checkMat(n, m, ldz, len(z))
	if n == 0 {
		return true
	}
	wm := make([]float64, m)
	zc := make([]float64, n*m)
	var info C.int
	o.run(float64(n)*float64(n)*float64(n), func() {
		info = C.lr_dsyevsel(C.int(n), C.int(il), C.int(iu), f64(a), C.int(lda), f64(wm), f64(zc))
	})
	ok := lapackOK(info)
	copy(w, wm)
	placeColumns(n, m, z, ldz, zc)
	return ok
}

// placeColumns writes the column-major n×m zc (stride n) into the
// row-major n×m z (stride ldz).
func placeColumns[T Float](n, m int, z []T, ldz int, zc []T) {
	for j := range m {
		col := zc[j*n : (j+1)*n]
		for i, v := range col {
			z[i*ldz+j] = v
		}
	}
}

// Sgeqrf: see Dgeqrf.
func (o OpenBLAS) Sgeqrf(m, n int, a []float32, lda int, tau []float32) {
	checkMat(m, n, lda, len(a))
	checkVec(min(m, n), len(tau))
	if m == 0 || n == 0 {
		return
	}
	var info C.int
	o.run(float64(m)*float64(n)*float64(min(m, n)), func() {
		info = C.lr_sgelqf(C.int(n), C.int(m), f32(a), C.int(lda), f32(tau))
	})
	lapackOK(info)
}

// Dgeqrf runs LAPACK's DGELQF on the column-major n×m view Aᵀ: its LQ
// factorisation is the QR factorisation of A, stored the way row-major
// DGEQRF stores it (see OpenBLAS).
func (o OpenBLAS) Dgeqrf(m, n int, a []float64, lda int, tau []float64) {
	checkMat(m, n, lda, len(a))
	checkVec(min(m, n), len(tau))
	if m == 0 || n == 0 {
		return
	}
	var info C.int
	o.run(float64(m)*float64(n)*float64(min(m, n)), func() {
		info = C.lr_dgelqf(C.int(n), C.int(m), f64(a), C.int(lda), f64(tau))
	})
	lapackOK(info)
}

func checkOrgqr(m, n, k, lda, la, ltau int) {
	if n > m || k > n || k < 0 {
		panic("linalg: orgqr needs m ≥ n ≥ k ≥ 0")
	}
	checkMat(m, n, lda, la)
	checkVec(k, ltau)
}

// Sorgqr: see Dorgqr.
func (o OpenBLAS) Sorgqr(m, n, k int, a []float32, lda int, tau []float32) {
	checkOrgqr(m, n, k, lda, len(a), len(tau))
	if n == 0 {
		return
	}
	var info C.int
	o.run(float64(m)*float64(n)*float64(k), func() {
		info = C.lr_sorglq(C.int(n), C.int(m), C.int(k), f32(a), C.int(lda), f32(tau))
	})
	lapackOK(info)
}

// Dorgqr runs LAPACK's DORGLQ on the column-major n×m view: the n×m Q with
// orthonormal rows it forms is our m×n Q with orthonormal columns.
func (o OpenBLAS) Dorgqr(m, n, k int, a []float64, lda int, tau []float64) {
	checkOrgqr(m, n, k, lda, len(a), len(tau))
	if n == 0 {
		return
	}
	var info C.int
	o.run(float64(m)*float64(n)*float64(k), func() {
		info = C.lr_dorglq(C.int(n), C.int(m), C.int(k), f64(a), C.int(lda), f64(tau))
	})
	lapackOK(info)
}

// Dpotrf runs LAPACK's DPOTRF (OpenBLAS's own parallel version) with uplo
// 'L' on the column-major view, which factors A = Uᵀ U in our upper triangle.
func (o OpenBLAS) Dpotrf(n int, a []float64, lda int) bool {
	checkMat(n, n, lda, len(a))
	if n == 0 {
		return true
	}
	var info C.int
	o.run(float64(n)*float64(n)*float64(n)/3, func() {
		info = C.lr_dpotrf(C.int(n), f64(a), C.int(lda))
	})
	return lapackOK(info)
}

// Dpotrs solves Uᵀ U X = B by two row-major triangular solves.
func (o OpenBLAS) Dpotrs(n, nrhs int, a []float64, lda int, b []float64, ldb int) {
	checkMat(n, n, lda, len(a))
	checkMat(n, nrhs, ldb, len(b))
	if n == 0 || nrhs == 0 {
		return
	}
	o.run(float64(n)*float64(n)*float64(nrhs), func() {
		C.lr_dpotrs(C.int(n), C.int(nrhs), f64(a), C.int(lda), f64(b), C.int(ldb))
	})
}
