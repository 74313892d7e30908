//go:build cgo && openblas

package linalg

/*
#cgo pkg-config: openblas lapacke
#cgo LDFLAGS: -lm
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
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

// lr_pad_ld returns the leading dimension, at least m, that xGEBRD's
// copy of an m-row column-major matrix of elements of the given size gets:
// columns a whole number of 64-byte lines apart, and an odd number of them.
// xGEBRD's GEMVs walk A's rows, touching one element per column; at a
// stride of a power of two (2048 float32s, 8 KiB) those all fall in the
// same few cache sets and evict each other. SGEBRD on OpenBLAS 0.3.21, 2
// threads, in C: 1024² 0.17 s at lda 1024, 0.11 s at 1040; 1536² 0.41
// against 0.34 s; 2048² 1.00–1.13 s against 0.76–0.95 s (lda 2056–2112);
// 2560² 2.09 against 1.92 s; 4096² 9.1 against 8.9 s.
static int lr_pad_ld(int m, size_t size) {
	size_t lines = ((size_t)m * size + 63) / 64;
	if (lines % 2 == 0) {
		lines++;
	}
	return (int)(lines * 64 / size);
}

// lr_gesdd_copy returns a copy of the column-major m×n a (stride lda) for
// xGESDD, with stride *ldc = lr_pad_ld(m), in huge-page memory when it
// spans 2 MiB or more; or NULL, with *ldc = lda, when lda is already that
// stride and A is small (the caller then works on a itself), or when
// memory is short. The huge pages are for xGESDD's bidiagonal reduction,
// which streams A at BLAS-2 speed once per column: on 2048², A in huge
// pages too took the SVD from 2.47 to 2.39 s (C, 9 runs), and the thin SVD
// benchmark from 1.01–1.10× to 0.92–1.07× the faster of SciPy and
// PyTorch, whose NumPy arrays are in huge pages.
static void *lr_gesdd_copy(const void *a, int m, int n, int lda, size_t size, int *ldc) {
	*ldc = lr_pad_ld(m, size);
	size_t bytes = (size_t)*ldc * n * size;
	if (*ldc == lda && bytes < ((size_t)2 << 20)) {
		return NULL;
	}
	char *c = lr_alloc(bytes);
	if (c == NULL) {
		*ldc = lda;
		return NULL;
	}
	for (int j = 0; j < n; j++) {
		memcpy(c + (size_t)j * *ldc * size, (const char *)a + (size_t)j * lda * size, (size_t)m * size);
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
		int ldc;
		float *ah = lr_gesdd_copy(a, m, n, lda, sizeof(float), &ldc);
		info = LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, jobz, m, n, ah != NULL ? ah : a, ldc, s, u, ldu, vt, ldvt, work, lwork, iwork);
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
		int ldc;
		double *ah = lr_gesdd_copy(a, m, n, lda, sizeof(double), &ldc);
		info = LAPACKE_dgesdd_work(LAPACK_COL_MAJOR, jobz, m, n, ah != NULL ? ah : a, ldc, s, u, ldu, vt, ldvt, work, lwork, iwork);
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

// The eigenpairs of the tridiagonal T that Syevr selects: the eigenvalues
// by bisection on Sturm counts (lr_stri_eigvals, lr_dtri_eigvals), the
// eigenvectors by inverse iteration (lr_stri_invit_q, lr_dtri_invit_q),
// both on T scaled by a power of two so that its largest entry lies in
// [1/2, 1): the scaling is exact, and no square or Gershgorin bound can
// overflow.
//
// Both run several shifts in the lanes of GCC's vector extensions, 32-byte
// vectors where the CPU has AVX2 (chosen at run time, as the build is for
// any x86-64) and 16-byte ones elsewhere. A lane carries its own shift
// through the same operations in the same order, so either width gives the
// same bits. xSTEBZ and xSTEIN, which they replace, take one shift at a
// time, and there each step waits for the division before it: at n = 256
// and the top 64 eigenpairs of a Gram matrix, one thread, xSTERF (all 256
// eigenvalues) took 0.80 ms and xSTEIN 1.37 ms; these take 0.11 and 0.18.
//
// Sturm count (Kahan's): the number of eigenvalues of T below σ is the
// number of negative q_i in q_1 = d_1 − σ, q_i = d_i − σ − e²_{i−1}/q_{i−1},
// with a q_i of magnitude below pivmin replaced by −pivmin. Bisection keeps
// for the eigenvalue λ_j an interval [lo, hi) with count(lo) < j ≤
// count(hi), from the Gershgorin bounds, and stops at a width of
// u·‖T‖ + 2·pivmin or 2u·|λ| (u the unit in the last place), or when the
// midpoint no longer differs from an end.
//
// Inverse iteration, as xSTEIN does it: factor T − λI = PLU (partial
// pivoting; U has two superdiagonals, pivots below u·‖T‖₁ raised to that
// size), start from a pseudo-random vector seeded by the eigenvalue's
// index, and repeat: scale the vector to ‖b‖₁ = n·‖T‖₁·max(u, |u_nn|),
// solve, orthogonalise against the earlier vectors of its cluster, and
// count the iteration as converged once ‖x‖∞ ≥ √(0.1/n). A vector is done
// after two more converged iterations if it belongs to a cluster, as in
// xSTEIN, and after one more if its eigenvalue is alone: its neighbours
// are then over 10⁻³·‖T‖₁ away and its shift within a few u·‖T‖, so each
// iteration shrinks their part of the vector by a factor below about
// 2·10³·u, and two leave it at round-off. A vector fails after 5
// iterations. A cluster is a run of eigenvalues less than 10⁻³·‖T‖₁ apart;
// its members' shifts are pushed at least 10·u·|λ| apart. The vectors of
// different clusters do not depend on one another, so the lanes take the
// first members of every cluster (and the eigenvalues alone) together,
// then the second members, and so on. Each lane stops when its own vector
// is done, so a vector does not depend on the lanes beside it. Each vector
// ends with unit 2-norm and its entry of largest magnitude positive.
//
// References:
//   W. Barth, R. S. Martin, J. H. Wilkinson. Calculation of the eigenvalues
//   of a symmetric tridiagonal matrix by the method of bisection. Numer.
//   Math. 9 (1967) 386–393.
//   J. W. Demmel, I. S. Dhillon, H. Ren. On the correctness of some
//   bisection-like parallel eigenvalue algorithms in floating point
//   arithmetic. Electron. Trans. Numer. Anal. 3 (1995) 116–149.
//   E. R. Jessup, I. C. F. Ipsen. Improving the accuracy of inverse
//   iteration. SIAM J. Sci. Stat. Comput. 13 (1992) 550–572.
//   LAPACK's xSTEBZ, xLAEBZ, xSTEIN, xLAGTF and xLAGTS.

#if defined(__x86_64__) || defined(__i386__)
#define LR_WIDE_BYTES 32
#define LR_WIDE_ATTR __attribute__((target("avx2")))
#define LR_CPU_WIDE() __builtin_cpu_supports("avx2")
#else
#define LR_WIDE_BYTES 16
#define LR_WIDE_ATTR
#define LR_CPU_WIDE() 0
#endif

// lr_tri_narrow, when set (by tests), keeps the 16-byte lanes;
// lr_tri_maxits is the number of inverse iterations before a vector fails
// (lowered by tests).
static int lr_tri_narrow, lr_tri_maxits = 5;

static int lr_tri_wide(void) {
	return !lr_tri_narrow && LR_CPU_WIDE();
}

static int lr_tri_set(int narrow, int maxits) {
	lr_tri_narrow = narrow;
	lr_tri_maxits = maxits;
	return lr_tri_wide();
}

#define LR_TRI_NV 8       // vectors of shifts per Sturm count pass
#define LR_ABS(V, M, v) ((V)((M)(v) & ~sign_))
#define LR_SEL(V, M, m, a, b) ((V)(((M)(a) & (m)) | ((M)(b) & ~(m))))

// One lane of inverse iteration: the shift x, the start vector's seed, the
// column j of z it fills (−1: padding), and the nc earlier vectors of its
// cluster, columns gp… of z, to orthogonalise against.
#define LR_TRI_LANE(P, T) \
typedef struct { T x; uint64_t seed; int j, gp, nc, extra; } P##tri_lane;

// LR_TRI_KERNELS(P, B, T, M, VB, SUF, ATTR, ULP) defines the lane kernels of
// one precision and vector width: P##tri_count##SUF, the Sturm counts at
// the LR_TRI_NV·VB/sizeof(T) shifts sig, and P##tri_batch##SUF, inverse
// iteration for VB/sizeof(T) lanes in the workspace wk (6n vectors and n
// scalars).
#define LR_TRI_KERNELS(P, B, T, M, VB, SUF, ATTR, ULP)                                   \
typedef T P##tv##SUF __attribute__((vector_size(VB)));                                \
typedef M P##tm##SUF __attribute__((vector_size(VB)));                                \
ATTR static void P##tri_count##SUF(int n, const T *d, const T *e2, T pivmin, const T *sig, int *cnt) { \
	typedef P##tv##SUF V;                                                             \
	typedef P##tm##SUF K;                                                             \
	enum { L = VB / sizeof(T) };                                                      \
	V zero = {0}, pv = zero + pivmin, npv = zero - pivmin;                            \
	V s[LR_TRI_NV], q[LR_TRI_NV];                                                     \
	K c[LR_TRI_NV];                                                                   \
	for (int v = 0; v < LR_TRI_NV; v++) {                                             \
		memcpy(&s[v], sig + v * L, sizeof(V));                                       \
		q[v] = d[0] - s[v];                                                          \
		K tiny = (q[v] < pv) & (q[v] > npv);                                         \
		q[v] = (V)(((K)npv & tiny) | ((K)q[v] & ~tiny));                             \
		c[v] = q[v] < zero;                                                          \
	}                                                                                 \
	for (int i = 1; i < n; i++) {                                                     \
		T di = d[i], ei = e2[i - 1];                                                 \
		for (int v = 0; v < LR_TRI_NV; v++) {                                         \
			q[v] = (di - s[v]) - ei / q[v];                                          \
			K tiny = (q[v] < pv) & (q[v] > npv);                                     \
			q[v] = (V)(((K)npv & tiny) | ((K)q[v] & ~tiny));                         \
			c[v] += q[v] < zero;                                                      \
		}                                                                             \
	}                                                                                 \
	for (int v = 0; v < LR_TRI_NV; v++) {                                             \
		for (int k = 0; k < L; k++) {                                                 \
			cnt[v * L + k] = (int)-c[v][k];                                          \
		}                                                                             \
	}                                                                                 \
}                                                                                     \
ATTR static int P##tri_batch##SUF(int n, const T *d, const T *e, T onenrm, const P##tri_lane *ln, \
		void *wk, T *z, int ldz) {                                                    \
	typedef P##tv##SUF V;                                                             \
	typedef P##tm##SUF K;                                                             \
	enum { L = VB / sizeof(T) };                                                      \
	V *r = wk, *u1 = r + n, *u2 = u1 + n, *l = u2 + n, *b = l + n;                    \
	K *piv = (K *)(b + n);                                                            \
	T *tmp = (T *)(piv + n);                                                          \
	V zero = {0}, one = zero + 1, tol = zero + ULP * onenrm, x;                       \
	K sign_ = (K)zero | (M)((uint64_t)1 << (8 * sizeof(T) - 1));                     \
	for (int k = 0; k < L; k++) {                                                     \
		x[k] = ln[k].x;                                                              \
	}                                                                                 \
	V ak = d[0] - x, bk = zero + (n > 1 ? e[0] : 0);                                  \
	for (int k = 0; k < n - 1; k++) {                                                 \
		V ck = zero + e[k], an = d[k + 1] - x, bn = zero + (k + 1 < n - 1 ? e[k + 1] : 0); \
		K p = LR_ABS(V, K, ak) < LR_ABS(V, K, ck);                                    \
		V num = LR_SEL(V, K, p, ak, ck), den = LR_SEL(V, K, p, ck, ak);              \
		K dz = den == zero;                                                          \
		V lk = (V)((K)(num / LR_SEL(V, K, dz, one, den)) & ~dz);                     \
		r[k] = den;                                                                  \
		u1[k] = LR_SEL(V, K, p, an, bk);                                             \
		u2[k] = (V)((K)bn & p);                                                      \
		l[k] = lk;                                                                   \
		piv[k] = p;                                                                  \
		ak = LR_SEL(V, K, p, bk, an) - lk * u1[k];                                   \
		bk = LR_SEL(V, K, p, zero - lk * bn, bn);                                    \
	}                                                                                 \
	r[n - 1] = ak;                                                                    \
	V unn = LR_ABS(V, K, ak);                                                         \
	unn = LR_SEL(V, K, unn < zero + ULP, zero + ULP, unn);                            \
	for (int k = 0; k < n; k++) {                                                     \
		K small = LR_ABS(V, K, r[k]) < tol;                                          \
		r[k] = one / LR_SEL(V, K, small, (V)((K)tol | ((K)r[k] & sign_)), r[k]);     \
	}                                                                                 \
	for (int k = 0; k < L; k++) {                                                     \
		uint64_t s = ln[k].seed;                                                     \
		for (int i = 0; i < n; i++) {                                                \
			b[i][k] = P##tri_uniform(&s);                                            \
		}                                                                             \
	}                                                                                 \
	const T conv = sqrt((T)0.1 / n);                                                  \
	int chk[L];                                                                       \
	for (int k = 0; k < L; k++) {                                                     \
		chk[k] = ln[k].j < 0 ? -1 : 0;                                               \
	}                                                                                 \
	for (int its = 1;; its++) {                                                       \
		if (its > lr_tri_maxits) {                                                   \
			return 1;                                                                \
		}                                                                             \
		V asum = zero;                                                               \
		for (int i = 0; i < n; i++) {                                                \
			asum += LR_ABS(V, K, b[i]);                                              \
		}                                                                             \
		V scl = (n * onenrm) * unn / asum;                                           \
		for (int i = 0; i < n; i++) {                                                \
			b[i] *= scl;                                                             \
		}                                                                             \
		for (int k = 0; k < n - 1; k++) {                                            \
			V lo = LR_SEL(V, K, piv[k], b[k + 1], b[k]);                             \
			b[k + 1] = LR_SEL(V, K, piv[k], b[k], b[k + 1]) - l[k] * lo;             \
			b[k] = lo;                                                               \
		}                                                                             \
		b[n - 1] *= r[n - 1];                                                        \
		if (n > 1) {                                                                 \
			b[n - 2] = (b[n - 2] - u1[n - 2] * b[n - 1]) * r[n - 2];                 \
		}                                                                             \
		for (int k = n - 3; k >= 0; k--) {                                           \
			b[k] = (b[k] - u1[k] * b[k + 1] - u2[k] * b[k + 2]) * r[k];              \
		}                                                                             \
		for (int k = 0; k < L; k++) {                                                \
			if (ln[k].nc == 0) {                                                     \
				continue;                                                            \
			}                                                                         \
			for (int i = 0; i < n; i++) {                                            \
				tmp[i] = b[i][k];                                                    \
			}                                                                         \
			for (int c = 0; c < ln[k].nc; c++) {                                     \
				const T *q = z + (size_t)(ln[k].gp + c) * ldz;                       \
				cblas_##B##axpy(n, -cblas_##B##dot(n, q, 1, tmp, 1), q, 1, tmp, 1);   \
			}                                                                         \
			for (int i = 0; i < n; i++) {                                            \
				b[i][k] = tmp[i];                                                    \
			}                                                                         \
		}                                                                             \
		V nrm = zero;                                                                \
		K bad = (K)zero;                                                             \
		for (int i = 0; i < n; i++) {                                                \
			V a = LR_ABS(V, K, b[i]);                                                \
			bad |= ~(a < zero + (T)INFINITY);                                         \
			nrm = LR_SEL(V, K, a > nrm, a, nrm);                                     \
		}                                                                             \
		int done = 1;                                                                \
		for (int k = 0; k < L; k++) {                                                \
			if (chk[k] < 0) {                                                        \
				continue;                                                            \
			}                                                                         \
			if (bad[k]) {                                                            \
				return 1;                                                            \
			}                                                                         \
			chk[k] += nrm[k] >= conv;                                                \
			if (chk[k] <= ln[k].extra) {                                             \
				done = 0;                                                            \
				continue;                                                            \
			}                                                                         \
			T ss = 0, big = 0;                                                       \
			int at = 0;                                                              \
			for (int i = 0; i < n; i++) {                                            \
				T v = b[i][k];                                                       \
				ss += v * v;                                                         \
				if (fabs(v) > big) {                                                 \
					big = fabs(v);                                                   \
					at = i;                                                          \
				}                                                                     \
			}                                                                         \
			T sc = b[at][k] < 0 ? -1 / sqrt(ss) : 1 / sqrt(ss);                      \
			T *zc = z + (size_t)ln[k].j * ldz;                                       \
			for (int i = 0; i < n; i++) {                                            \
				zc[i] = b[i][k] * sc;                                                \
			}                                                                         \
			chk[k] = -1;                                                             \
		}                                                                             \
		if (done) {                                                                  \
			break;                                                                   \
		}                                                                             \
	}                                                                                 \
	return 0;                                                                         \
}

// LR_TRI(P, B, T, M, ULP, SAFMIN) defines, for one precision (P prefixes
// our names and B BLAS's; M is the integer as wide as T):
//   - P##tri_eigvals(n, d, e, il, iu, w): eigenvalues il…iu (1-based) of T,
//     ascending, into w.
//   - P##tri_invit_q(n, d, e, m, w, gidx, a, lda, t, z): the eigenvectors of
//     T for the m ascending eigenvalues w, of which w[0] is eigenvalue number
//     gidx (the indices seed the start vectors, so a vector does not depend
//     on how the selection is split between calls), into z (n×m,
//     column-major, stride n); then z ← Q·z (P##applyq with LR_QBLOCKS's t).
//     Everything but z is only read, so concurrent callers share it. It
//     returns > 0 when a vector fails to converge.
#define LR_TRI(P, B, T, M, ULP, SAFMIN)                                                   \
static T P##tri_uniform(uint64_t *s) {                                                \
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;                         \
	uint64_t x = *s;                                                                  \
	x ^= x >> 33;                                                                     \
	x *= 0xff51afd7ed558ccdULL;                                                       \
	x ^= x >> 33;                                                                     \
	return (T)((double)(x >> 11) * 0x1p-52 - 1.0);                                    \
}                                                                                     \
LR_TRI_LANE(P, T)                                                                     \
LR_TRI_KERNELS(P, B, T, M, LR_WIDE_BYTES, _wide, LR_WIDE_ATTR, ULP)                      \
LR_TRI_KERNELS(P, B, T, M, 16, _narrow, , ULP)                                           \
static T P##tri_scale(int n, const T *d, const T *e, T *ds, T *es) {                   \
	T big = 0;                                                                        \
	for (int i = 0; i < n; i++) {                                                     \
		big = fmax(big, fabs(d[i]));                                                 \
		if (i < n - 1) {                                                             \
			big = fmax(big, fabs(e[i]));                                             \
		}                                                                             \
	}                                                                                 \
	int ex = 0;                                                                       \
	if (big > 0) {                                                                    \
		frexp(big, &ex);                                                             \
	}                                                                                 \
	for (int i = 0; i < n; i++) {                                                     \
		ds[i] = ldexp(d[i], -ex);                                                    \
		es[i] = i < n - 1 ? ldexp(e[i], -ex) : 0;                                    \
	}                                                                                 \
	return ldexp(1, -ex);                                                             \
}                                                                                     \
static T P##tri_onenorm(int n, const T *d, const T *e) {                               \
	T nrm = 0;                                                                        \
	for (int i = 0; i < n; i++) {                                                     \
		nrm = fmax(nrm, fabs(d[i]) + (i > 0 ? fabs(e[i - 1]) : 0) + (i < n - 1 ? fabs(e[i]) : 0)); \
	}                                                                                 \
	return nrm;                                                                       \
}                                                                                     \
static int P##tri_eigvals(int n, const T *d0, const T *e0, int il, int iu, T *w) {     \
	int wide = lr_tri_wide();                                                         \
	int g = LR_TRI_NV * (wide ? LR_WIDE_BYTES : 16) / (int)sizeof(T);                 \
	int m = iu - il + 1;                                                              \
	T *d = LR_ALLOC(T, 3 * (size_t)n + 2 * (size_t)m + g);                            \
	int *act = LR_ALLOC(int, (size_t)m + 2 * (size_t)g);                              \
	if (d == NULL || act == NULL) {                                                   \
		free(d);                                                                     \
		free(act);                                                                   \
		return LR_NOMEM;                                                             \
	}                                                                                 \
	T *e = d + n, *e2 = e + n, *lo = e2 + n, *hi = lo + m, *sig = hi + m;              \
	int *cnt = act + m, *who = cnt + g;                                               \
	T scale = P##tri_scale(n, d0, e0, d, e);                                          \
	T gl = d[0], gu = d[0];                                                           \
	for (int i = 0; i < n; i++) {                                                     \
		T r = (i > 0 ? fabs(e[i - 1]) : 0) + (i < n - 1 ? fabs(e[i]) : 0);            \
		gl = fmin(gl, d[i] - r);                                                     \
		gu = fmax(gu, d[i] + r);                                                     \
		e2[i] = e[i] * e[i];                                                         \
	}                                                                                 \
	T tnorm = fmax(fabs(gl), fabs(gu)), pivmin = SAFMIN;                              \
	gl -= (T)2.1 * ULP * tnorm * n + 4 * pivmin;                                      \
	gu += (T)2.1 * ULP * tnorm * n + 4 * pivmin;                                      \
	T atol = ULP * tnorm + 2 * pivmin;                                                \
	for (int j = 0; j < m; j++) {                                                     \
		lo[j] = gl;                                                                  \
		hi[j] = gu;                                                                  \
	}                                                                                 \
	for (;;) {                                                                        \
		int na = 0;                                                                  \
		for (int j = 0; j < m; j++) {                                                \
			T width = hi[j] - lo[j], mid = lo[j] + width / 2;                        \
			if (width > atol && width > 2 * ULP * fmax(fabs(lo[j]), fabs(hi[j])) && mid != lo[j] && mid != hi[j]) { \
				act[na++] = j;                                                       \
			}                                                                         \
		}                                                                             \
		if (na == 0) {                                                               \
			break;                                                                   \
		}                                                                             \
		for (int at = 0; at < na; at += g) {                                         \
			int k = 0;                                                               \
			for (; k < g && at + k < na; k++) {                                      \
				who[k] = act[at + k];                                                \
				sig[k] = lo[who[k]] + (hi[who[k]] - lo[who[k]]) / 2;                 \
			}                                                                         \
			for (int r = k; r < g; r++) {                                            \
				sig[r] = sig[0];                                                     \
			}                                                                         \
			if (wide) {                                                              \
				P##tri_count_wide(n, d, e2, pivmin, sig, cnt);                       \
			} else {                                                                 \
				P##tri_count_narrow(n, d, e2, pivmin, sig, cnt);                     \
			}                                                                         \
			for (int r = 0; r < k; r++) {                                            \
				if (cnt[r] >= il + who[r]) {                                         \
					hi[who[r]] = sig[r];                                             \
				} else {                                                             \
					lo[who[r]] = sig[r];                                             \
				}                                                                     \
			}                                                                         \
		}                                                                             \
	}                                                                                 \
	for (int j = 0; j < m; j++) {                                                     \
		w[j] = (lo[j] + (hi[j] - lo[j]) / 2) / scale;                                \
		for (int i = j; i > 0 && w[i] < w[i - 1]; i--) {                              \
			T t_ = w[i];                                                             \
			w[i] = w[i - 1];                                                         \
			w[i - 1] = t_;                                                           \
		}                                                                             \
	}                                                                                 \
	free(d);                                                                          \
	free(act);                                                                        \
	return 0;                                                                         \
}                                                                                     \
static int P##tri_invit_q(int n, const T *d0, const T *e0, int m, const T *w0, int gidx, \
		const T *a, int lda, const T *t, T *z) {                                      \
	int wide = lr_tri_wide();                                                         \
	int lanes = (wide ? LR_WIDE_BYTES : 16) / (int)sizeof(T);                         \
	T *d = LR_ALLOC(T, 2 * (size_t)n + m);                                            \
	P##tri_lane *ln = LR_ALLOC(P##tri_lane, (size_t)m + lanes);                       \
	void *wk = NULL;                                                                  \
	if (d == NULL || ln == NULL || posix_memalign(&wk, 32, (6 * (size_t)LR_WIDE_BYTES + sizeof(T)) * (size_t)n) != 0) { \
		free(d);                                                                     \
		free(ln);                                                                    \
		return LR_NOMEM;                                                             \
	}                                                                                 \
	T *e = d + n, *w = e + n;                                                         \
	T scale = P##tri_scale(n, d0, e0, d, e);                                          \
	for (int j = 0; j < m; j++) {                                                     \
		w[j] = w0[j] * scale;                                                        \
	}                                                                                 \
	T onenrm = P##tri_onenorm(n, d, e), ortol = (T)1e-3 * onenrm;                     \
	if (onenrm == 0) {                                                                \
		onenrm = 1;                                                                  \
	}                                                                                 \
	int gp = 0, waves = 0;                                                            \
	T prev = 0;                                                                       \
	for (int j = 0; j < m; j++) {                                                     \
		T x = w[j];                                                                  \
		if (j == 0 || w[j] - w[j - 1] > ortol) {                                     \
			gp = j;                                                                  \
		} else if (x - prev < 10 * ULP * fabs(x)) {                                  \
			x = prev + 10 * ULP * fabs(x);                                           \
		}                                                                             \
		prev = x;                                                                    \
		int alone = j == gp && (j == m - 1 || w[j + 1] - w[j] > ortol);              \
		ln[j] = (P##tri_lane){x, 0x9e3779b97f4a7c15ULL * (uint64_t)(gidx + j), j, gp, j - gp, alone ? 1 : 2}; \
		waves = j - gp + 1 > waves ? j - gp + 1 : waves;                             \
	}                                                                                 \
	int info = 0;                                                                     \
	P##tri_lane grp[32];                                                              \
	for (int v = 0; v < waves && info == 0; v++) {                                    \
		int ng = 0;                                                                  \
		for (int j = 0; j <= m && info == 0; j++) {                                  \
			if (j < m && ln[j].nc == v) {                                            \
				grp[ng++] = ln[j];                                                   \
			}                                                                         \
			if (ng == lanes || (j == m && ng > 0)) {                                 \
				for (int k = ng; k < lanes; k++) {                                   \
					grp[k] = grp[0];                                                 \
					grp[k].j = -1;                                                   \
					grp[k].nc = 0;                                                   \
				}                                                                     \
				int bad = wide ? P##tri_batch_wide(n, d, e, onenrm, grp, wk, z, n)   \
				               : P##tri_batch_narrow(n, d, e, onenrm, grp, wk, z, n); \
				info = bad ? grp[0].j + 1 : 0;                                       \
				ng = 0;                                                              \
			}                                                                         \
		}                                                                             \
	}                                                                                 \
	free(d);                                                                          \
	free(ln);                                                                         \
	free(wk);                                                                         \
	if (info != 0) {                                                                  \
		return info;                                                                 \
	}                                                                                 \
	return P##applyq(n, m, a, lda, t, z);                                            \
}

LR_TRI(lr_s, s, float, int32_t, 0x1p-23f, FLT_MIN)
LR_TRI(lr_d, d, double, int64_t, 0x1p-52, DBL_MIN)

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
			gebrd: func(m, n int, a []float32, lda int, d, e, tauq, taup []float32) C.int {
				return C.lr_sgebrd(C.int(m), C.int(n), f32(a), C.int(lda), f32(d), f32(e), f32(tauq), f32(taup))
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
			gebrd: func(m, n int, a []float64, lda int, d, e, tauq, taup []float64) C.int {
				return C.lr_dgebrd(C.int(m), C.int(n), f64(a), C.int(lda), f64(d), f64(e), f64(tauq), f64(taup))
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
	gebrd func(m, n int, a []T, lda int, d, e, tauq, taup []T) C.int
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
	// In huge pages and at lr_pad_ld's stride, as xGESDD's copy of A in
	// lr_sgesdd.
	var zero T
	ldac := int(C.lr_pad_ld(C.int(m), C.size_t(unsafe.Sizeof(zero))))
	ac, free := cScratch[T](ldac*n + 3*k*k)
	defer free()
	other, ub, vtb := ac[ldac*n:ldac*n+k*k], ac[ldac*n+k*k:ldac*n+2*k*k], ac[ldac*n+2*k*k:]
	ac = ac[:ldac*n]
	for j := range n {
		copy(ac[j*ldac:j*ldac+m], a[j*lda:j*lda+m])
	}
	d, e, tauq, taup := make([]T, k), make([]T, k), make([]T, k), make([]T, k)
	var info C.int
	o.run(float64(m)*float64(n)*float64(k), func() { info = c.gebrd(m, n, ac, ldac, d, e, tauq, taup) })
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
	q, ldq, pt, ldp := ac, ldac, other, k
	if upper == 0 {
		q, ldq, pt, ldp = other, k, ac, ldac
	}
	one.run(0, func() {
		if upper != 0 {
			for j := range k {
				copy(other[j*k:j*k+k], ac[j*ldac:j*ldac+k])
			}
			oinfo = c.orgbr('P', k, k, m, other, k, taup)
			if oinfo == 0 {
				oinfo = c.orgbr('Q', m, k, k, ac, ldac, tauq)
			}
			return
		}
		for j := range k {
			copy(other[j*k:j*k+k], ac[j*ldac:j*ldac+k])
		}
		oinfo = c.orgbr('Q', k, k, n, other, k, tauq)
		if oinfo == 0 {
			oinfo = c.orgbr('P', k, n, k, ac, ldac, taup)
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
		eigvals: func(d, e []float32, il, iu int, w []float32) C.int {
			return C.lr_stri_eigvals(C.int(n), f32(d), f32(e), C.int(il), C.int(iu), f32(w))
		},
		qblocks: func(a, tau, t []float32) C.int {
			return C.lr_sqblocks(C.int(n), f32(a), C.int(lda), f32(tau), f32(t))
		},
		invit: func(d, e, w []float32, gidx int, a, t, z []float32) C.int {
			return C.lr_stri_invit_q(C.int(n), f32(d), f32(e), C.int(len(w)), f32(w), C.int(gidx), f32(a), C.int(lda), f32(t), f32(z))
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
//     synchronisation), and bisection finds the selected eigenvalues of T
//     (LR_TRI) while DLARFT forms the triangular factors of Q's blocks of
//     reflectors beside it.
//   - Inverse iteration (LR_TRI) finds the eigenvectors of T, and DLARFB
//     applies Q's blocks to them, as DORMTR would but without forming the
//     factors again for each call. When the selected eigenvalues have a
//     gap wider than the clustering threshold 10⁻³·‖T‖₁ near their middle
//     (invitSplit), the two halves are separate calls, which run at once on
//     a budget of two threads or more and share A and the factors, which
//     they only read. A vector depends only on T, its eigenvalue and that
//     eigenvalue's index, so the result is the same on any budget.
//   - When inverse iteration fails, DSTEDC (divide and conquer on all of
//     T) and DORMTR of the selected vectors take the second step's place.
//
// DSYEVR itself would take MRRR, or bisection (DSTEBZ) with inverse
// iteration (DSTEIN), for a subset. On OpenBLAS 0.3.21, n = 256, m = 64,
// one thread: SSYTRD 1.0–1.5 ms, SSTEMR 2.9 ms, SSTEBZ 1.7 ms, SSTERF (all
// 256 eigenvalues) 0.8 ms, SSTEIN 1.1–1.4 ms, SSTEDC 1.9–2.3 ms, SORMTR of
// the 64 vectors 0.6–0.9 ms, and LR_TRI's bisection 0.11 ms and inverse
// iteration 0.18 ms; at n = 896, m = 256: SSYTRD 27–35, SSTEBZ 21, SSTERF
// 8, SSTEIN 17, SORMTR 12–15 ms (SORMTR before it had the workspace of its
// blocked path: see LR_ORMTR), LR_TRI's bisection 1.0 and inverse
// iteration 3.1 ms. With the factors formed once, applying Q to 32 of
// the vectors at n = 256 took 0.12 ms against 0.24 for SORMTR; in HOOI
// 256 → 64 (22 eigensolves) 131 against 137 ms, medians of 4 alternating
// runs.
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
		eigvals: func(d, e []float64, il, iu int, w []float64) C.int {
			return C.lr_dtri_eigvals(C.int(n), f64(d), f64(e), C.int(il), C.int(iu), f64(w))
		},
		qblocks: func(a, tau, t []float64) C.int {
			return C.lr_dqblocks(C.int(n), f64(a), C.int(lda), f64(tau), f64(t))
		},
		invit: func(d, e, w []float64, gidx int, a, t, z []float64) C.int {
			return C.lr_dtri_invit_q(C.int(n), f64(d), f64(e), C.int(len(w)), f64(w), C.int(gidx), f64(a), C.int(lda), f64(t), f64(z))
		},
		stedc: func(d, e []float64, il int, a, tau, w, z []float64) C.int {
			return C.lr_dstedc_q(C.int(n), f64(d), f64(e), C.int(il), C.int(len(w)), f64(a), C.int(lda), f64(tau), f64(w), f64(z))
		},
	}, n, il, iu, a, lda, w, z, ldz)
}

// syevrSteps are the C steps of Syevr for one precision, bound to n and lda.
type syevrSteps[T Float] struct {
	sytrd   func(a []T, d, e, tau []T) C.int
	eigvals func(d, e []T, il, iu int, w []T) C.int
	qblocks func(a, tau, t []T) C.int
	invit   func(d, e, w []T, gidx int, a, t, z []T) C.int
	stedc   func(d, e []T, il int, a, tau, w, z []T) C.int
}

// syevr runs Dsyevr's steps; see there.
func syevr[T Float](o OpenBLAS, c syevrSteps[T], n, il, iu int, a []T, lda int, w, z []T, ldz int) bool {
	one := OpenBLAS{threads: 1}
	m := iu - il + 1
	d, e, tau := make([]T, n), make([]T, n), make([]T, n)
	var info C.int
	reduce := one
	if n >= threadedReductionMin {
		reduce = o
	}
	reduce.run(float64(n)*float64(n)*float64(n), func() { info = c.sytrd(a, d, e, tau) })
	if info != 0 {
		return lapackOK(info)
	}
	// Q's block factors for the back-transformation, beside the bisection
	// on a budget of two threads or more, unless the reduction was
	// threaded: OpenBLAS's workers then spin for a while and take that
	// core.
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
	sel := make([]T, m)
	one.run(0, func() { info = c.eigvals(d, e, il, iu, sel) })
	if !beside {
		qblocks()
	}
	<-tdone
	if info != 0 || tinfo != 0 {
		return lapackOK(min(info, tinfo))
	}
	zc := make([]T, n*m)
	parts := [][2]int{{0, m}}
	if split := invitSplit(d, e[:n-1], sel); split > 0 {
		parts = [][2]int{{0, split}, {split, m}}
	}
	infos := make([]C.int, len(parts))
	solve := func(i int) {
		lo, hi := parts[i][0], parts[i][1]
		one.run(0, func() { infos[i] = c.invit(d, e, sel[lo:hi], il+lo, a, t, zc[lo*n:hi*n]) })
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
	ok := true
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
	one.run(0, func() { info = c.stedc(d, e, il, a, tau, w[:m], zc) })
	ok = lapackOK(info)
	placeColumns(n, m, z, ldz, zc)
	return ok
}

// invitSplit returns where Syevr splits the m ascending eigenvalues w of
// the tridiagonal T (diagonal d, off-diagonal e) between two inverse
// iteration calls: the gap nearest the middle, within the middle half,
// that is wider than LR_TRI's clustering threshold 10⁻³·‖T‖₁, so that no
// cluster of eigenvalues whose vectors are orthogonalised against each
// other is cut. It returns 0 when there is no such gap or m <
// 2·invitMinPart.
func invitSplit[T Float](d, e, w []T) int {
	m := len(w)
	if m < 2*invitMinPart {
		return 0
	}
	var norm float64
	for i, di := range d {
		v := math.Abs(float64(di))
		if i > 0 {
			v += math.Abs(float64(e[i-1]))
		}
		if i < len(e) {
			v += math.Abs(float64(e[i]))
		}
		norm = max(norm, v)
	}
	tol := 1e-3 * norm
	for off := 0; off <= m/4; off++ {
		for _, s := range [2]int{m/2 - off, m/2 + off} {
			if float64(w[s])-float64(w[s-1]) > tol {
				return s
			}
		}
	}
	return 0
}

// setTridiagTest makes LR_TRI take its 16-byte lanes (narrow) and give up
// on a vector after maxits iterations, for tests, and reports whether it
// now takes 32-byte lanes; setTridiagTest(false, 5) restores the defaults.
// Not safe beside running eigensolves.
func setTridiagTest(narrow bool, maxits int) (wide bool) {
	n := C.int(0)
	if narrow {
		n = 1
	}
	return C.lr_tri_set(n, C.int(maxits)) != 0
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

// invitMinPart is the fewest eigenvectors worth an inverse iteration call
// of their own.
const invitMinPart = 8

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
