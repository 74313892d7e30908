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

// LR_WORKSPACE returns the INFO of the LAPACKE call CALL, an expression in
// work and lwork, run first as a workspace query (lwork = -1) and then with
// a workspace of the size asked for plus EXTRA elements.
#define LR_WORKSPACE(T, EXTRA, CALL)                                                   \
	do {                                                                             \
		T q_;                                                                        \
		T *work = &q_;                                                               \
		lapack_int lwork = -1;                                                       \
		lapack_int info_ = (CALL);                                                   \
		if (info_ != 0) {                                                            \
			return info_;                                                            \
		}                                                                            \
		lwork = lr_lwork(q_) + (EXTRA);                                              \
		work = LR_ALLOC(T, lwork);                                                   \
		if (work == NULL) {                                                          \
			return LR_NOMEM;                                                         \
		}                                                                            \
		info_ = (CALL);                                                              \
		free(work);                                                                  \
		return info_;                                                                \
	} while (0)

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

// The thin SVD of a column-major m×n A with min(m, n) = k in steps
// (gesddSplit), so that Go can run the middle two at once.
//
// LR_GEBRD defines lr_sgebrd and lr_dgebrd: xGEBRD reduces a to the
// bidiagonal B = QᵀAP (upper when m ≥ n, lower otherwise; diagonal d,
// off-diagonal e), leaving Q's and P's reflectors in a, tauq and taup.
#define LR_GEBRD(NAME, T, P)                                                           \
static int NAME(int m, int n, T *a, int lda, T *d, T *e, T *tauq, T *taup) { \
	LR_WORKSPACE(T, 0, LAPACKE_##P##gebrd_work(LAPACK_COL_MAJOR, m, n, a, lda, d, e, tauq, taup, work, lwork)); \
}

LR_GEBRD(lr_sgebrd, float, s)
LR_GEBRD(lr_dgebrd, double, d)

// LR_BDSDC defines lr_sbdsdc and lr_dbdsdc: the SVD B = U Σ Vᵀ of the k×k
// bidiagonal B (upper when upper is nonzero) by divide and conquer; σ
// replaces d in decreasing order, e is destroyed, U and Vᵀ are k×k.
#define LR_BDSDC(NAME, T, P)                                                           \
static int NAME(int upper, int k, T *d, T *e, T *u, int ldu, T *vt, int ldvt) {       \
	T *work = LR_ALLOC(T, 3 * (size_t)k * k + 4 * (size_t)k);                        \
	lapack_int *iwork = LR_ALLOC(lapack_int, 8 * (size_t)k);                         \
	lapack_int info = LR_NOMEM;                                                      \
	if (work != NULL && iwork != NULL) {                                             \
		info = LAPACKE_##P##bdsdc_work(LAPACK_COL_MAJOR, upper ? 'U' : 'L', 'I', k, d, e, u, ldu, vt, ldvt, NULL, NULL, work, iwork); \
	}                                                                                \
	free(work); free(iwork);                                                         \
	return info;                                                                     \
}

LR_BDSDC(lr_sbdsdc, float, s)
LR_BDSDC(lr_dbdsdc, double, d)

// LR_ORGBR defines lr_sorgbr and lr_dorgbr: xORGBR forms Q (vect 'Q') or Pᵀ
// (vect 'P') of LR_GEBRD in place of its reflectors: m×n from the
// reflectors of a matrix with k columns (Q) or rows (Pᵀ).
#define LR_ORGBR(NAME, T, P)                                                           \
static int NAME(char vect, int m, int n, int k, T *a, int lda, const T *tau) { \
	LR_WORKSPACE(T, 0, LAPACKE_##P##orgbr_work(LAPACK_COL_MAJOR, vect, m, n, k, a, lda, tau, work, lwork)); \
}

LR_ORGBR(lr_sorgbr, float, s)
LR_ORGBR(lr_dorgbr, double, d)

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

// The selected eigenpairs of a symmetric matrix (Syevr) in steps, so that
// Go can run some of them side by side.
//
// LR_SYTRD defines lr_ssytrd and lr_dsytrd: xSYTRD reduces the lower
// triangle of the column-major n×n a to T = QᵀAQ (diagonal d, off-diagonal
// e, Q as reflectors in a and tau).
#define LR_SYTRD(NAME, T, P)                                                           \
static int NAME(int n, T *a, int lda, T *d, T *e, T *tau) {                           \
	LR_WORKSPACE(T, 0, LAPACKE_##P##sytrd_work(LAPACK_COL_MAJOR, 'L', n, a, lda, d, e, tau, work, lwork)); \
}

LR_SYTRD(lr_ssytrd, float, s)
LR_SYTRD(lr_dsytrd, double, d)

// LR_STERF defines lr_ssterf and lr_dsterf: all eigenvalues of T (d, e
// kept) in wall, ascending, by xSTERF.
#define LR_STERF(NAME, T, P)                                                           \
static int NAME(int n, const T *d, const T *e, T *wall) {                             \
	T *e2 = LR_ALLOC(T, n);                                                          \
	if (e2 == NULL) {                                                                \
		return LR_NOMEM;                                                             \
	}                                                                                \
	memcpy(wall, d, sizeof(T) * (size_t)n);                                          \
	memcpy(e2, e, sizeof(T) * (size_t)(n - 1));                                      \
	lapack_int info = LAPACKE_##P##sterf_work(n, wall, e2);                          \
	free(e2);                                                                        \
	return info;                                                                     \
}

LR_STERF(lr_ssterf, float, s)
LR_STERF(lr_dsterf, double, d)

// LR_QBLOCKS defines lr_sqblocks and lr_dqblocks: the triangular factors of
// Q's n − 1 reflectors (LR_SYTRD's, which xORMTR hands to xORMQR as the QR
// factor of a's rows 2…n) in blocks of LR_QNB, xLARFT on each, into t (one
// LR_QNB × LR_QNB factor per block). Formed once, they serve every
// concurrent LR_APPLYQ, where each xORMTR call would form them again (at
// n = 256 and 32 columns, half of its time).
#define LR_QNB 32
#define LR_QBLOCKS(NAME, T, P)                                                         \
static int NAME(int n, const T *a, int lda, const T *tau, T *t) {                     \
	int k = n - 1;                                                                   \
	for (int i = 0; i < k; i += LR_QNB) {                                            \
		int ib = k - i < LR_QNB ? k - i : LR_QNB;                                    \
		lapack_int info = LAPACKE_##P##larft_work(LAPACK_COL_MAJOR, 'F', 'C', k - i, ib, \
			a + 1 + i + (size_t)i * lda, lda, tau + i, t + (size_t)(i / LR_QNB) * LR_QNB * LR_QNB, LR_QNB); \
		if (info != 0) {                                                             \
			return info;                                                             \
		}                                                                            \
	}                                                                                \
	return 0;                                                                        \
}

LR_QBLOCKS(lr_sqblocks, float, s)
LR_QBLOCKS(lr_dqblocks, double, d)

// LR_APPLYQ defines lr_sapplyq and lr_dapplyq: z (n×m, column-major, stride
// n) ← Q·z, block by block from the last (xLARFB with LR_QBLOCKS's t), as
// xORMQR does. a and t are only read.
#define LR_APPLYQ(NAME, T, P)                                                          \
static int NAME(int n, int m, const T *a, int lda, const T *t, T *z) {                \
	int k = n - 1;                                                                   \
	if (k <= 0 || m == 0) {                                                          \
		return 0;                                                                    \
	}                                                                                \
	T *work = LR_ALLOC(T, (size_t)m * LR_QNB);                                       \
	if (work == NULL) {                                                              \
		return LR_NOMEM;                                                             \
	}                                                                                \
	lapack_int info = 0;                                                             \
	for (int i = (k - 1) / LR_QNB * LR_QNB; i >= 0 && info == 0; i -= LR_QNB) {     \
		int ib = k - i < LR_QNB ? k - i : LR_QNB;                                    \
		info = LAPACKE_##P##larfb_work(LAPACK_COL_MAJOR, 'L', 'N', 'F', 'C', k - i, m, ib, \
			a + 1 + i + (size_t)i * lda, lda, t + (size_t)(i / LR_QNB) * LR_QNB * LR_QNB, LR_QNB, \
			z + 1 + i, n, work, m);                                                  \
	}                                                                                \
	free(work);                                                                      \
	return info;                                                                     \
}

LR_APPLYQ(lr_sapplyq, float, s)
LR_APPLYQ(lr_dapplyq, double, d)

// LR_ORMTR defines lr_sormtr_cols and lr_dormtr_cols: z (n×m, column-major,
// stride n) ← Q·z for the Q of LR_SYTRD.
//
// xORMTR's workspace query answers m·NB, without the 65×64 block of
// reflector coefficients (LR_ORMQR_TSIZE) that the blocked xORMQL/xORMQR it
// calls keep in the same workspace; handed only m·NB, those fall back to
// the unblocked xORM2L/xORM2R, BLAS-2 code. On OpenBLAS 0.3.21, n = 256,
// m = 64, one thread, best of 50: 0.72 ms with the size asked for, 0.31 ms
// with the extra block.
#define LR_ORMQR_TSIZE (65 * 64)
#define LR_ORMTR(NAME, T, P)                                                           \
static int NAME(int n, int m, T *a, int lda, const T *tau, T *z) { \
	LR_WORKSPACE(T, LR_ORMQR_TSIZE, LAPACKE_##P##ormtr_work(LAPACK_COL_MAJOR, 'L', 'L', 'N', n, m, a, lda, tau, z, n, work, lwork)); \
}

LR_ORMTR(lr_sormtr_cols, float, s)
LR_ORMTR(lr_dormtr_cols, double, d)

// LR_STEIN defines lr_sstein_q and lr_dstein_q: the eigenvectors of T for
// the m ascending eigenvalues w by inverse iteration (xSTEIN, with T one
// unreduced block), then z ← Q·z (APPLYQ, with LR_QBLOCKS's t). Everything
// but z is only read, so concurrent callers share it.
#define LR_STEIN(NAME, T, P, APPLYQ)                                                   \
static int NAME(int n, const T *d, const T *e, int m, const T *w, const T *a, int lda, const T *t, T *z) { \
	lapack_int *iblock = LR_ALLOC(lapack_int, m), *ifail = LR_ALLOC(lapack_int, m);  \
	lapack_int *iwork = LR_ALLOC(lapack_int, n);                                      \
	T *work = LR_ALLOC(T, 5 * n);                                                    \
	lapack_int info = LR_NOMEM;                                                      \
	if (iblock != NULL && ifail != NULL && iwork != NULL && work != NULL) {          \
		lapack_int isplit = n;                                                       \
		for (int i = 0; i < m; i++) {                                                \
			iblock[i] = 1;                                                           \
		}                                                                            \
		info = LAPACKE_##P##stein_work(LAPACK_COL_MAJOR, n, d, e, m, w, iblock, &isplit, z, n, work, iwork, ifail); \
	}                                                                                \
	free(iblock); free(ifail); free(iwork); free(work);                              \
	if (info != 0) {                                                                 \
		return info;                                                                 \
	}                                                                                \
	return APPLYQ(n, m, a, lda, t, z);                                               \
}

LR_STEIN(lr_sstein_q, float, s, lr_sapplyq)
LR_STEIN(lr_dstein_q, double, d, lr_dapplyq)

// LR_STEDC defines lr_sstedc_q and lr_dstedc_q: every eigenpair of T by
// divide and conquer (xSTEDC on copies of d and e), then z ← Q·z for the m
// vectors il..il+m-1 and their eigenvalues in w.
#define LR_STEDC(NAME, T, P, ORMTR)                                                    \
static int NAME(int n, const T *d, const T *e, int il, int m, T *a, int lda, const T *tau, T *w, T *z) { \
	T *dc = LR_ALLOC(T, n), *ec = LR_ALLOC(T, n), *zt = LR_ALLOC(T, (size_t)n * n);  \
	T *work = NULL;                                                                  \
	lapack_int *iwork = NULL;                                                        \
	lapack_int info = LR_NOMEM;                                                      \
	T q;                                                                             \
	lapack_int iq;                                                                   \
	if (dc == NULL || ec == NULL || zt == NULL) {                                    \
		goto out;                                                                    \
	}                                                                                \
	memcpy(dc, d, sizeof(T) * (size_t)n);                                            \
	memcpy(ec, e, sizeof(T) * (size_t)(n - 1));                                      \
	info = LAPACKE_##P##stedc_work(LAPACK_COL_MAJOR, 'I', n, dc, ec, zt, n, &q, -1, &iq, -1); \
	if (info != 0) {                                                                 \
		goto out;                                                                    \
	}                                                                                \
	lapack_int lwork = lr_lwork(q);                                                  \
	work = LR_ALLOC(T, lwork);                                                       \
	iwork = LR_ALLOC(lapack_int, iq);                                                \
	info = LR_NOMEM;                                                                 \
	if (work == NULL || iwork == NULL) {                                             \
		goto out;                                                                    \
	}                                                                                \
	info = LAPACKE_##P##stedc_work(LAPACK_COL_MAJOR, 'I', n, dc, ec, zt, n, work, lwork, iwork, iq); \
	if (info == 0) {                                                                 \
		memcpy(z, zt + (size_t)(il - 1) * n, sizeof(T) * (size_t)n * m);             \
		memcpy(w, dc + il - 1, sizeof(T) * (size_t)m);                               \
		info = ORMTR(n, m, a, lda, tau, z);                                          \
	}                                                                                \
out:                                                                                 \
	free(dc); free(ec); free(zt); free(work); free(iwork);                           \
	return info;                                                                     \
}

LR_STEDC(lr_sstedc_q, float, s, lr_sormtr_cols)
LR_STEDC(lr_dstedc_q, double, d, lr_dormtr_cols)

// The QR wrappers run the LQ routines: see OpenBLAS.Dgeqrf.
static int lr_sgelqf(int m, int n, float *a, int lda, float *tau) {
	LR_WORKSPACE(float, 0, LAPACKE_sgelqf_work(LAPACK_COL_MAJOR, m, n, a, lda, tau, work, lwork));
}

static int lr_dgelqf(int m, int n, double *a, int lda, double *tau) {
	LR_WORKSPACE(double, 0, LAPACKE_dgelqf_work(LAPACK_COL_MAJOR, m, n, a, lda, tau, work, lwork));
}

static int lr_sorglq(int m, int n, int k, float *a, int lda, const float *tau) {
	LR_WORKSPACE(float, 0, LAPACKE_sorglq_work(LAPACK_COL_MAJOR, m, n, k, a, lda, tau, work, lwork));
}

static int lr_dorglq(int m, int n, int k, double *a, int lda, const double *tau) {
	LR_WORKSPACE(double, 0, LAPACKE_dorglq_work(LAPACK_COL_MAJOR, m, n, k, a, lda, tau, work, lwork));
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
	"math"
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
	if jobz == 'S' && o.splitSVD(n, m) {
		return gesddSplit(o, gesddSteps[float32]{
			gebrd: func(m, n int, a, d, e, tauq, taup []float32) C.int {
				return C.lr_sgebrd(C.int(m), C.int(n), f32(a), C.int(m), f32(d), f32(e), f32(tauq), f32(taup))
			},
			bdsdc: func(upper C.int, k int, d, e, u, vt []float32) C.int {
				return C.lr_sbdsdc(upper, C.int(k), f32(d), f32(e), f32(u), C.int(k), f32(vt), C.int(k))
			},
			orgbr: func(vect C.char, m, n, k int, a []float32, lda int, tau []float32) C.int {
				return C.lr_sorgbr(vect, C.int(m), C.int(n), C.int(k), f32(a), C.int(lda), f32(tau))
			},
		}, n, m, a, lda, s, vt, ldvt, u, ldu)
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
	if jobz == 'S' && o.splitSVD(n, m) {
		return gesddSplit(o, gesddSteps[float64]{
			gebrd: func(m, n int, a, d, e, tauq, taup []float64) C.int {
				return C.lr_dgebrd(C.int(m), C.int(n), f64(a), C.int(m), f64(d), f64(e), f64(tauq), f64(taup))
			},
			bdsdc: func(upper C.int, k int, d, e, u, vt []float64) C.int {
				return C.lr_dbdsdc(upper, C.int(k), f64(d), f64(e), f64(u), C.int(k), f64(vt), C.int(k))
			},
			orgbr: func(vect C.char, m, n, k int, a []float64, lda int, tau []float64) C.int {
				return C.lr_dorgbr(vect, C.int(m), C.int(n), C.int(k), f64(a), C.int(lda), f64(tau))
			},
		}, n, m, a, lda, s, vt, ldvt, u, ldu)
	}
	var info C.int
	o.run(float64(m)*float64(n)*float64(min(m, n)), func() {
		info = C.lr_dgesdd(jobz, C.int(n), C.int(m), f64(a), C.int(lda), f64(s), f64(vt), C.int(ldvt), f64(u), C.int(ldu))
	})
	return lapackOK(info)
}

// splitSVDMin and splitSVDMax bound the min(m, n) for which a thin SVD on
// two threads or more goes through gesddSplit rather than xGESDD. Median
// ratios of their times on square f32 matrices (OpenBLAS 0.3.21, 2 cores,
// 7 alternating runs; 3 from 2560): 1024 1.02, 1280 1.02, 1536 0.89, 2048
// 0.86–0.92, 2560 0.96; 4096 1.06–1.13. Below the range xBDSDC and xORMBR
// take too little time for the overlap to pay for forming Q and Pᵀ; above
// it xBDSDC's own GEMMs gain from the second thread (4096 in C: 2.4 s on
// two threads, 3.2 s on one beside xORGBR) and xORGBR on one thread takes
// longer than xBDSDC.
var splitSVDMin, splitSVDMax = 1536, 2560

// splitSVD reports whether the thin SVD of the column-major m×n view goes
// through gesddSplit: on two threads or more, min(m, n) in [splitSVDMin,
// splitSVDMax], and where xGESDD itself would bidiagonalise A directly,
// without a QR or LQ factorisation first (max(m, n) below its crossover
// 11/6·min(m, n)).
func (o OpenBLAS) splitSVD(m, n int) bool {
	k := min(m, n)
	work := float64(m) * float64(n) * float64(k)
	return k >= splitSVDMin && k <= splitSVDMax && max(m, n) < k*11/6 && gate.threadsFor(o.Threads(), work) >= 2
}

// gesddSteps are the C steps of gesddSplit for one precision.
type gesddSteps[T Float] struct {
	gebrd func(m, n int, a, d, e, tauq, taup []T) C.int   // lda = m
	bdsdc func(upper C.int, k int, d, e, u, vt []T) C.int // ldu = ldvt = k
	orgbr func(vect C.char, m, n, k int, a []T, lda int, tau []T) C.int
}

// gesddSplit computes what xGESDD with JOBZ = 'S' does on the column-major
// m×n a (stride lda, destroyed), A = U Σ Vᵀ with k = min(m, n), U m×k
// (stride ldu) and Vᵀ k×n (stride ldvt), in the same three stages, but
// with the third arranged to use two cores:
//
//  1. xGEBRD: A = Q B Pᵀ with B bidiagonal, on the whole budget.
//  2. xBDSDC: B = U_B Σ V_Bᵀ, and at the same time on a second thread
//     xORGBR forms Q and Pᵀ explicitly.
//  3. U = Q·U_B and Vᵀ = V_Bᵀ·Pᵀ by GEMM on the whole budget.
//
// xGESDD instead applies Q and Pᵀ to U_B and V_Bᵀ as reflectors (xORMBR)
// after xBDSDC, which runs on one core whatever the thread count. Forming
// Q and Pᵀ costs 8/3·k³ more multiply-adds, but on a core that xGESDD
// leaves idle, and a GEMM runs faster than xORMBR. On OpenBLAS 0.3.21, 2
// cores, k = 2048 in C: xBDSDC 0.45–0.58 s with xORMBR 0.47–0.68 s after
// it, against xBDSDC beside xORGBR 0.62–0.66 s and two GEMMs 0.23–0.26 s.
// Scratch: A's copy, three k×k matrices. The factors differ from xGESDD's
// by rounding, so a thin SVD in this range on one thread and on two agree
// to rounding, not bit for bit.
//
// References:
//
//	E. Anderson et al., LAPACK Users' Guide, 3rd ed., SIAM, 1999 (xGESDD,
//	xGEBRD, xBDSDC, xORGBR).
func gesddSplit[T Float](o OpenBLAS, c gesddSteps[T], m, n int, a []T, lda int, s, u []T, ldu int, vt []T, ldvt int) bool {
	k := min(m, n)
	one := OpenBLAS{threads: 1}
	// In huge pages, as xGESDD's copy of A in lr_sgesdd, and compact.
	ac, free := cScratch[T](m*n + 3*k*k)
	defer free()
	other, ub, vtb := ac[m*n:m*n+k*k], ac[m*n+k*k:m*n+2*k*k], ac[m*n+2*k*k:]
	ac = ac[:m*n]
	for j := range n {
		copy(ac[j*m:j*m+m], a[j*lda:j*lda+m])
	}
	d, e, tauq, taup := make([]T, k), make([]T, k), make([]T, k), make([]T, k)
	var info C.int
	o.run(float64(m)*float64(n)*float64(k), func() { info = c.gebrd(m, n, ac, d, e, tauq, taup) })
	if info != 0 {
		return lapackOK(info)
	}
	upper := C.int(0)
	if m >= n {
		upper = 1
	}
	var binfo, oinfo C.int
	done := make(chan struct{})
	go func() {
		defer close(done)
		one.run(0, func() { binfo = c.bdsdc(upper, k, d, e, ub, vtb) })
	}()
	// Q is m×k and Pᵀ is k×n; the k×k one of the two is formed in other
	// from a copy of its reflectors, the other in place.
	q, ldq, pt, ldp := ac, m, other, k
	if upper == 0 {
		q, ldq, pt, ldp = other, k, ac, m
	}
	one.run(0, func() {
		if upper != 0 {
			for j := range k {
				copy(other[j*k:j*k+k], ac[j*m:j*m+k])
			}
			oinfo = c.orgbr('P', k, k, m, other, k, taup)
			if oinfo == 0 {
				oinfo = c.orgbr('Q', m, k, k, ac, m, tauq)
			}
			return
		}
		copy(other, ac[:k*k])
		oinfo = c.orgbr('Q', k, k, n, other, k, tauq)
		if oinfo == 0 {
			oinfo = c.orgbr('P', k, n, k, ac, m, taup)
		}
	})
	<-done
	if !lapackOK(oinfo) || !lapackOK(binfo) {
		return false
	}
	// Column-major U = Q·U_B is row-major Uᵀ = U_Bᵀ·Qᵀ, and likewise Vᵀ.
	Gemm(o, blas.NoTrans, blas.NoTrans, k, m, k, 1, ub, k, q, ldq, 0, u, ldu)
	Gemm(o, blas.NoTrans, blas.NoTrans, n, k, k, 1, pt, ldp, vtb, k, 0, vt, ldvt)
	copy(s, d)
	return true
}

// cScratch returns n elements of C memory (lr_alloc: huge pages from
// 2 MiB) and the function that frees them.
func cScratch[T Float](n int) ([]T, func()) {
	var zero T
	p := C.lr_alloc(C.size_t(n) * C.size_t(unsafe.Sizeof(zero)))
	if p == nil {
		panic(errNoWorkspace)
	}
	return unsafe.Slice((*T)(p), n), func() { C.free(p) }
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
	return syevr(o, syevrSteps[float32]{
		sytrd: func(a []float32, d, e, tau []float32) C.int {
			return C.lr_ssytrd(C.int(n), f32(a), C.int(lda), f32(d), f32(e), f32(tau))
		},
		sterf: func(d, e, wall []float32) C.int {
			return C.lr_ssterf(C.int(n), f32(d), f32(e), f32(wall))
		},
		qblocks: func(a, tau, t []float32) C.int {
			return C.lr_sqblocks(C.int(n), f32(a), C.int(lda), f32(tau), f32(t))
		},
		stein: func(d, e, w, a, t, z []float32) C.int {
			return C.lr_sstein_q(C.int(n), f32(d), f32(e), C.int(len(w)), f32(w), f32(a), C.int(lda), f32(t), f32(z))
		},
		stedc: func(d, e []float32, il int, a, tau, w, z []float32) C.int {
			return C.lr_sstedc_q(C.int(n), f32(d), f32(e), C.int(il), C.int(len(w)), f32(a), C.int(lda), f32(tau), f32(w), f32(z))
		},
	}, n, il, iu, a, lda, w, z, ldz)
}

// Dsyevr works on the lower triangle of the column-major view, which is our
// upper triangle, in three steps:
//
//   - DSYTRD reduces it to tridiagonal T = QᵀAQ, on one thread below
//     threadedReductionMin (BLAS-2 work bound by memory and
//     synchronisation), and DSTERF finds all eigenvalues of T while DLARFT
//     forms the triangular factors of Q's blocks of reflectors beside it.
//   - DSTEIN finds the eigenvectors of T for the selected eigenvalues by
//     inverse iteration, and DLARFB applies Q's blocks to them, as DORMTR
//     would but without forming the factors again for each call. When the
//     selected eigenvalues have a gap wider than DSTEIN's
//     reorthogonalisation threshold near their middle (steinSplit), the
//     two halves are separate calls, which run at once on a budget of two
//     threads or more and share A and the factors, which they only read.
//     The split depends only on the eigenvalues, so the result is the same
//     on any budget.
//   - When T nearly splits into blocks, or DSTERF or DSTEIN fails, DSTEDC
//     (divide and conquer on all of T) and DORMTR of the selected vectors
//     take the second step's place.
//
// DSYEVR itself would take MRRR, or bisection (DSTEBZ) with inverse
// iteration, for a subset. On OpenBLAS 0.3.21, n = 256, m = 64, one
// thread: SSYTRD 1.0–1.3 ms, SSTEMR 2.9 ms, SSTEBZ 1.7 ms, SSTERF (all 256
// eigenvalues) 0.8 ms, SSTEIN 1.1–1.4 ms, SSTEDC 1.9–2.3 ms, SORMTR of the
// 64 vectors 0.6–0.9 ms; at n = 896, m = 256: SSYTRD 27–35, SSTEBZ 21,
// SSTERF 8, SSTEIN 17, SORMTR 12–15 ms (SORMTR before it had the
// workspace of its blocked path: see LR_ORMTR). With the factors formed
// once, applying Q to 32 of the vectors at n = 256 took 0.12 ms against
// 0.24 for SORMTR; in HOOI 256 → 64 (22 eigensolves) 131 against 137 ms,
// medians of 4 alternating runs.
//
// The eigenvectors come back as the columns of a column-major n×m matrix
// and are placed into the columns of z.
func (o OpenBLAS) Dsyevr(n, il, iu int, a []float64, lda int, w, z []float64, ldz int) bool {
	m := checkRange(n, il, iu)
	checkMat(n, n, lda, len(a))
	checkVec(m, len(w))
	checkMat(n, m, ldz, len(z))
	if n == 0 {
		return true
	}
	return syevr(o, syevrSteps[float64]{
		sytrd: func(a []float64, d, e, tau []float64) C.int {
			return C.lr_dsytrd(C.int(n), f64(a), C.int(lda), f64(d), f64(e), f64(tau))
		},
		sterf: func(d, e, wall []float64) C.int {
			return C.lr_dsterf(C.int(n), f64(d), f64(e), f64(wall))
		},
		qblocks: func(a, tau, t []float64) C.int {
			return C.lr_dqblocks(C.int(n), f64(a), C.int(lda), f64(tau), f64(t))
		},
		stein: func(d, e, w, a, t, z []float64) C.int {
			return C.lr_dstein_q(C.int(n), f64(d), f64(e), C.int(len(w)), f64(w), f64(a), C.int(lda), f64(t), f64(z))
		},
		stedc: func(d, e []float64, il int, a, tau, w, z []float64) C.int {
			return C.lr_dstedc_q(C.int(n), f64(d), f64(e), C.int(il), C.int(len(w)), f64(a), C.int(lda), f64(tau), f64(w), f64(z))
		},
	}, n, il, iu, a, lda, w, z, ldz)
}

// syevrSteps are the C steps of Syevr for one precision, bound to n and lda.
type syevrSteps[T Float] struct {
	sytrd   func(a []T, d, e, tau []T) C.int
	sterf   func(d, e, wall []T) C.int
	qblocks func(a, tau, t []T) C.int
	stein   func(d, e, w, a, t, z []T) C.int
	stedc   func(d, e []T, il int, a, tau, w, z []T) C.int
}

// syevr runs Dsyevr's steps; see there.
func syevr[T Float](o OpenBLAS, c syevrSteps[T], n, il, iu int, a []T, lda int, w, z []T, ldz int) bool {
	one := OpenBLAS{threads: 1}
	m := iu - il + 1
	d, e, tau, wall := make([]T, n), make([]T, n), make([]T, n), make([]T, n)
	var info C.int
	reduce := one
	if n >= threadedReductionMin {
		reduce = o
	}
	reduce.run(float64(n)*float64(n)*float64(n), func() { info = c.sytrd(a, d, e, tau) })
	if info != 0 {
		return lapackOK(info)
	}
	// Q's block factors for the back-transformation, beside xSTERF on a
	// budget of two threads or more, unless the reduction was threaded:
	// OpenBLAS's workers then spin for a while and take that core.
	t := make([]T, ((n-1+qnb-1)/qnb)*qnb*qnb)
	var tinfo C.int
	tdone := make(chan struct{})
	qblocks := func() {
		defer close(tdone)
		one.run(0, func() { tinfo = c.qblocks(a, tau, t) })
	}
	beside := o.Threads() >= 2 && reduce.Threads() == 1
	if beside {
		go qblocks()
	}
	one.run(0, func() { info = c.sterf(d, e, wall) })
	if !beside {
		qblocks()
	}
	<-tdone
	if info < 0 || tinfo != 0 {
		return lapackOK(min(info, tinfo))
	}
	zc := make([]T, n*m)
	sel := wall[il-1 : iu]
	split, ok := steinSplit(d, e[:n-1], sel)
	if info == 0 && ok {
		parts := [][2]int{{0, split}, {split, m}}
		if split == 0 {
			parts = parts[1:]
		}
		infos := make([]C.int, len(parts))
		solve := func(i int) {
			lo, hi := parts[i][0], parts[i][1]
			one.run(0, func() { infos[i] = c.stein(d, e, sel[lo:hi], a, t, zc[lo*n:hi*n]) })
		}
		if len(parts) == 2 && o.Threads() >= 2 {
			done := make(chan struct{})
			go func() {
				defer close(done)
				solve(1)
			}()
			solve(0)
			<-done
		} else {
			for i := range parts {
				solve(i)
			}
		}
		for _, inf := range infos {
			if inf < 0 {
				return lapackOK(inf)
			}
			ok = ok && inf == 0
		}
		if ok {
			copy(w, sel)
			placeColumns(n, m, z, ldz, zc)
			return true
		}
	}
	one.run(0, func() { info = c.stedc(d, e, il, a, tau, w[:m], zc) })
	ok = lapackOK(info)
	placeColumns(n, m, z, ldz, zc)
	return ok
}

// steinSplit returns where Syevr splits the m ascending eigenvalues w of
// the tridiagonal T (diagonal d, off-diagonal e) between two xSTEIN calls:
// the gap nearest the middle, within the middle half, that is wider than
// xSTEIN's reorthogonalisation threshold 10⁻³·‖T‖₁, so that no cluster of
// eigenvalues whose vectors xSTEIN orthogonalises against each other is
// cut. It returns 0 when there is no such gap or m < 2·steinMinPart, and
// ok = false when an off-diagonal entry is negligible by xSTEBZ's test:
// xSTEIN would then need T's blocks, which xSTERF does not give.
func steinSplit[T Float](d, e, w []T) (split int, ok bool) {
	var zero T
	ulp := 0x1p-52
	if _, f32 := any(zero).(float32); f32 {
		ulp = 0x1p-23
	}
	var norm float64
	for i, di := range d {
		v := math.Abs(float64(di))
		if i > 0 {
			v += math.Abs(float64(e[i-1]))
		}
		if i < len(e) {
			ei := float64(e[i])
			v += math.Abs(ei)
			if ei*ei <= math.Abs(float64(di)*float64(d[i+1]))*ulp*ulp+math.SmallestNonzeroFloat64 {
				return 0, false
			}
		}
		norm = max(norm, v)
	}
	m := len(w)
	if m < 2*steinMinPart {
		return 0, true
	}
	tol := 1e-3 * norm
	for off := 0; off <= m/4; off++ {
		for _, s := range [2]int{m/2 - off, m/2 + off} {
			if float64(w[s])-float64(w[s-1]) > tol {
				return s, true
			}
		}
	}
	return 0, true
}

// threadedReductionMin is the order from which Syevr's tridiagonal
// reduction takes the whole budget. SSYTRD on OpenBLAS 0.3.21, 2 cores,
// just after a threaded call (medians of 9): n = 256 1.5 ms on one thread
// or two; 512: 8.7 and 6.7 ms; 896: 35–37 and 26 ms; 1064: 61 and 40 ms.
// Below this order the gain does not pay for waking OpenBLAS's workers,
// which then spin beside the single-threaded steps that follow.
const threadedReductionMin = 768

// qnb is LR_QNB, the block size of Q's factors in Syevr.
const qnb = C.LR_QNB

// steinMinPart is the fewest eigenvectors worth an xSTEIN call of their own.
const steinMinPart = 8

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
