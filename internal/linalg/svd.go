package linalg

import (
	"context"
	"math"
	"sync"

	"gonum.org/v1/gonum/lapack"

	"github.com/lowrank/lowrank"
)

// Progress reports how far a long kernel has come. Kernels call their
// progress callback between passes over the data, never from inside a BLAS
// call, so a callback may be slow without stalling other threads.
type Progress struct {
	// Stage names the phase, e.g. "power", "krylov", "qb", "svd".
	Stage string `json:"stage"`
	// Iteration counts completed steps of the stage, up to MaxIterations
	// (0 when the stage has no fixed count).
	Iteration     int `json:"iteration"`
	MaxIterations int `json:"max_iterations"`
	// RelError is the current estimate of ‖A − Â‖_F / ‖A‖_F, NaN when the
	// stage does not know it.
	RelError float64 `json:"rel_error"`
	// Fraction is the estimated share of the work done, in [0, 1].
	Fraction float64 `json:"fraction"`
}

// SVDAlgorithm selects how TruncatedSVD computes its factors.
type SVDAlgorithm string

// The SVD algorithms. See TruncatedSVD for what SVDAuto picks.
const (
	SVDAuto           SVDAlgorithm = "auto"
	SVDFull           SVDAlgorithm = "full"            // xGESDD on all of A, then truncate
	SVDRandomized     SVDAlgorithm = "randomized"      // subspace iteration (Halko et al. 2011)
	SVDBlockKrylov    SVDAlgorithm = "block_krylov"    // block Krylov (Musco & Musco 2015)
	SVDFixedPrecision SVDAlgorithm = "fixed_precision" // blocked QB to an error target (Yu et al. 2018)
)

// Defaults of SVDOptions' zero values.
const (
	DefaultOversamples     = 10
	DefaultPowerIterations = 4  // randomized: q = 4 subspace iterations
	DefaultKrylovDepth     = 3  // block Krylov: at least q = 3 blocks beyond the first (see krylovShape)
	DefaultQBPower         = 1  // fixed precision: one power step per block
	DefaultQBBlock         = 32 // fixed precision: columns of the first block
	qbMaxBlock             = 256

	// autoFullMaxDim: below this min(m, n) a full SVD is cheap (a few ms
	// with LAPACK) and exact, so auto never randomizes.
	autoFullMaxDim = 256
	// autoRandomizedFraction: auto randomizes only while the sketch width
	// w = k + oversamples is at most this fraction of min(m, n). Block
	// Krylov builds a space of L ≈ 3.5k to 4w columns (krylovShape) at
	// about 2·2mn flops per column, plus a Rayleigh–Ritz step on them,
	// against ≈ 12·mn·min(m, n) for xGESDD (half of it at BLAS-2 speed); at
	// a quarter the space still fits in min(m, n), and on a flat spectrum
	// it needs all of it to come within ~0.3 % of the optimal error. For
	// error rules the same fraction caps the rank fixed precision may grow
	// to before auto gives up on it.
	autoRandomizedFraction = 0.25
)

// SVDOptions configures TruncatedSVD. The zero value of each field means
// its default.
type SVDOptions struct {
	// Rule chooses the rank (see RankRule).
	Rule RankRule
	// Algorithm is "auto" (or empty), "full", "randomized", "block_krylov"
	// or "fixed_precision".
	Algorithm SVDAlgorithm
	// Oversamples is the number of extra sketch columns p beyond the rank
	// (randomized and block Krylov); 0 means DefaultOversamples, negative
	// means none.
	Oversamples int
	// PowerIterations is q: subspace iterations (randomized), Krylov depth
	// (block Krylov) or power steps per block (fixed precision); 0 means the
	// algorithm's default, negative means none.
	PowerIterations int
	// BlockSize is the number of columns the fixed-precision algorithm adds
	// in its first step (later steps double it, up to 256); 0 means
	// DefaultQBBlock.
	BlockSize int
	// Seed fixes every random choice: equal seeds give bit-identical
	// factors on one backend and thread budget.
	Seed uint64
}

// Validate reports the first option out of range as an EINVALID
// *lowrank.Error naming it.
func (o SVDOptions) Validate() error {
	if err := o.Rule.Validate(); err != nil {
		return err
	}
	switch o.Algorithm {
	case "", SVDAuto, SVDFull, SVDRandomized, SVDBlockKrylov, SVDFixedPrecision:
	default:
		return lowrank.Errorf(lowrank.EINVALID, "algorithm", "unknown algorithm %q (want auto, full, randomized, block_krylov or fixed_precision)", o.Algorithm)
	}
	if o.PowerIterations > 100 {
		return lowrank.Errorf(lowrank.EINVALID, "power_iterations", "must be ≤ 100, got %d", o.PowerIterations)
	}
	if o.BlockSize < 0 {
		return lowrank.Errorf(lowrank.EINVALID, "block_size", "must be ≥ 1, got %d", o.BlockSize)
	}
	return nil
}

// SVDResult is a truncated singular value decomposition
//
//	A ≈ U * diag(S) * Vt
//
// of an M×N matrix A at rank K = Choice.Rank. U is M×K (stride K) with
// orthonormal columns, S holds K singular values in decreasing order and Vt
// is K×N (stride N) with orthonormal rows.
//
// Signs are fixed so that the entry of largest magnitude in each column of
// U is positive (the first one on ties), with the matching row of Vt
// flipped; repeated runs and different algorithms then agree up to
// rounding.
type SVDResult[T Float] struct {
	M, N, K int
	U       []T
	S       []T
	Vt      []T
	// Choice is the rank rule's outcome: rank, retained energy, relative
	// error and parameter counts (M·K + K + K·N against M·N).
	Choice RankChoice
	// Algorithm is the algorithm that ran ("auto" resolved).
	Algorithm SVDAlgorithm
	// EstimatedError is ‖A − U·diag(S)·Vt‖_F / ‖A‖_F computed as
	// sqrt(‖A‖_F² − Σ S²)/‖A‖_F with ‖A‖_F exact. It is exact for SVDFull;
	// for the randomized algorithms it is exact up to the rounding in the
	// orthonormal basis (U·diag(S)·Vt is the projection QQᵀA truncated).
	EstimatedError float64
	// Passes counts the products of A (or Aᵀ) with a block of vectors.
	Passes int
}

// TruncatedSVD computes a rank-k approximation A ≈ U·diag(S)·Vt of the m×n
// matrix a (stride lda), with k chosen by opts.Rule. a is not modified.
//
// The algorithms:
//   - full: xGESDD on a copy of A, then truncation; exact.
//   - randomized: subspace iteration with q = PowerIterations steps and
//     l = k + Oversamples columns, re-orthonormalised at every half step
//     (HMT 2011, Alg. 4.4) by Cholesky QR, falling back to Householder
//     QR for ill-conditioned blocks (see orthonormalize). With
//     an energy or rel_error rule, whose rank depends on the spectrum, it
//     runs fixed_precision.
//   - block_krylov: keeps every block of the Krylov space
//     [AΩ, (AAᵀ)AΩ, …, (AAᵀ)^q AΩ] (Musco & Musco 2015), orthogonal to the
//     earlier blocks, so it reaches the accuracy subspace iteration needs
//     q ≈ 7 for in fewer passes over A. QᵀA comes for free from the
//     products with Aᵀ already made. The block is k + oversamples columns,
//     halved for large ranks, and the space about 3.5k columns (see
//     krylovShape).
//   - fixed_precision: randQB_EI (Yu, Gu & Li 2018): grows an orthonormal Q
//     and B = QᵀA by blocks (BlockSize columns, doubling) until
//     ‖A‖_F² − ‖B‖_F² ≤ target²·‖A‖_F², then an SVD of B; the rank rule
//     is applied to B's singular values. Rank and compression rules need no
//     spectrum and run randomized instead.
//   - auto: full when min(m, n) ≤ 256. Otherwise, for rank and
//     compression rules, block_krylov when w = k + oversamples ≤
//     min(m, n)/4 (so its Krylov space fits) and full above; for energy and
//     rel_error rules, fixed_precision with the rank capped at
//     min(m, n)/4, falling back to full when the target needs more (the
//     work spent is then lost: with P = 1, about 2mn·min(m, n) flops,
//     a sixth of xGESDD's).
//
// ‖A‖_F² is computed exactly from A, so energy and rel_error rules are
// exact for the singular values captured, and Choice reports the true
// retained energy of the returned factors.
//
// Input with NaN or Inf, an empty dimension or a rank out of range gives an
// EINVALID *lowrank.Error. ctx is checked between passes over A; a
// canceled ctx gives an ECANCELED *lowrank.Error wrapping ctx.Err(). A full
// SVD is one LAPACK call and cannot be interrupted inside it. progress may
// be nil.
//
// References:
//   - N. Halko, P.-G. Martinsson, J. A. Tropp, Finding structure with
//     randomness: probabilistic algorithms for constructing approximate
//     matrix decompositions, SIAM Review 53(2), 2011.
//   - C. Musco, C. Musco, Randomized block Krylov methods for stronger and
//     faster approximate singular value decomposition, NeurIPS 2015.
//   - W. Yu, Y. Gu, Y. Li, Efficient randomized algorithms for the fixed-
//     precision low-rank matrix approximation, SIAM J. Matrix Anal. Appl.
//     39(3), 2018.
func TruncatedSVD[T Float](ctx context.Context, b Backend, m, n int, a []T, lda int, opts SVDOptions, progress func(Progress)) (*SVDResult[T], error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	normSq, err := checkMatrix(b, m, n, a, lda)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, canceled(err)
	}
	p := min(m, n)
	s := &svdRun[T]{ctx: ctx, b: b, m: m, n: n, a: a, lda: lda, opts: opts, normSq: normSq, progress: progress}
	errorRule := opts.Rule.Energy > 0 || opts.Rule.RelError > 0
	alg := opts.Algorithm
	if alg == "" {
		alg = SVDAuto
	}
	if (alg == SVDRandomized || alg == SVDBlockKrylov) && errorRule {
		alg = SVDFixedPrecision
	}
	if alg == SVDFixedPrecision && !errorRule {
		alg = SVDRandomized
	}
	if alg == SVDAuto {
		switch {
		case p <= autoFullMaxDim:
			alg = SVDFull
		case errorRule:
			res, err := s.fixedPrecision(max(1, int(autoRandomizedFraction*float64(p))))
			if err != errTargetMissed {
				return res, err
			}
			alg = SVDFull
		default:
			k, err := s.rankUpFront()
			if err != nil {
				return nil, err
			}
			if float64(k+s.oversamples()) <= autoRandomizedFraction*float64(p) {
				alg = SVDBlockKrylov
			} else {
				alg = SVDFull
			}
		}
	}
	switch alg {
	case SVDFull:
		return s.full()
	case SVDFixedPrecision:
		return s.fixedPrecision(p)
	default:
		k, err := s.rankUpFront()
		if err != nil {
			return nil, err
		}
		if alg == SVDBlockKrylov {
			return s.blockKrylov(k)
		}
		return s.randomized(k)
	}
}

// svdRun carries one TruncatedSVD call's inputs between its algorithms.
type svdRun[T Float] struct {
	ctx      context.Context
	b        Backend
	m, n     int
	a        []T
	lda      int
	opts     SVDOptions
	normSq   float64 // ‖A‖_F², exact
	progress func(Progress)
	passes   int
}

func (s *svdRun[T]) report(p Progress) {
	if s.progress != nil {
		s.progress(p)
	}
}

func (s *svdRun[T]) oversamples() int {
	switch {
	case s.opts.Oversamples == 0:
		return DefaultOversamples
	case s.opts.Oversamples < 0:
		return 0
	}
	return s.opts.Oversamples
}

func (s *svdRun[T]) power(def int) int {
	switch {
	case s.opts.PowerIterations == 0:
		return def
	case s.opts.PowerIterations < 0:
		return 0
	}
	return s.opts.PowerIterations
}

func (s *svdRun[T]) paramsOf(k int) int64 { return svdParams(s.m, s.n, k) }

func svdParams(m, n, k int) int64 { return int64(m)*int64(k) + int64(k) + int64(k)*int64(n) }

// rankUpFront applies a rank or compression rule, which need no spectrum,
// before any work is done.
func (s *svdRun[T]) rankUpFront() (int, error) {
	p := min(s.m, s.n)
	zeros := make([]float64, p) // only the length matters to these rules
	ch, err := s.opts.Rule.Choose(zeros, s.normSq, p, s.paramsOf, int64(s.m)*int64(s.n))
	return ch.Rank, err
}

// finish truncates the factors u (m×ldu), sv and vt (ldvt... stride n) to
// rank k, fixes the signs and fills the rank statistics.
func (s *svdRun[T]) finish(alg SVDAlgorithm, k int, u []T, ldu int, sv []T, vt []T) *SVDResult[T] {
	m, n := s.m, s.n
	r := &SVDResult[T]{M: m, N: n, K: k, Algorithm: alg, Passes: s.passes}
	// Reuse the buffers when they already have the final shape (the thin
	// SVD at full rank, the randomized algorithms), copy otherwise.
	if ldu == k {
		r.U = u[: m*k : m*k]
	} else {
		r.U = make([]T, m*k)
		for i := range m {
			copy(r.U[i*k:i*k+k], u[i*ldu:i*ldu+k])
		}
	}
	s.setSV(r, sv, vt)
	fixSigns(m, n, k, r.U, r.Vt)
	s.setChoice(r, sv)
	return r
}

// finishRows is finish for U given as its k×m transpose ut (stride m):
// the signs are fixed on ut's rows, which are contiguous, and U is
// written out transposed.
func (s *svdRun[T]) finishRows(alg SVDAlgorithm, k int, ut []T, sv []T, vt []T) *SVDResult[T] {
	m, n := s.m, s.n
	r := &SVDResult[T]{M: m, N: n, K: k, Algorithm: alg, Passes: s.passes}
	s.setSV(r, sv, vt)
	sign := make([]T, k)
	for j := range k {
		sign[j] = 1
		if firstMaxAbsNegative(ut[j*m : (j+1)*m]) {
			sign[j] = -1
			row := r.Vt[j*n : (j+1)*n]
			for i, v := range row {
				row[i] = -v
			}
		}
	}
	r.U = make([]T, m*k)
	const tile = 64 // a tile of ut and of U stay in L1 while it is transposed
	for i0 := 0; i0 < m; i0 += tile {
		for j0 := 0; j0 < k; j0 += tile {
			for j := j0; j < min(j0+tile, k); j++ {
				sg := sign[j]
				for i, v := range ut[j*m+i0 : j*m+min(i0+tile, m)] {
					r.U[(i0+i)*k+j] = sg * v
				}
			}
		}
	}
	s.setChoice(r, sv)
	return r
}

// setSV sets r's S and Vt to sv and vt truncated to r.K, sharing them when
// they have that length already.
func (s *svdRun[T]) setSV(r *SVDResult[T], sv, vt []T) {
	k, n := r.K, s.n
	r.S = sv[:k:k]
	r.Vt = vt[: k*n : k*n]
	if len(sv) != k {
		r.S = append([]T(nil), sv[:k]...)
	}
	if len(vt) != k*n {
		r.Vt = append([]T(nil), vt[:k*n]...)
	}
}

// setChoice fills r's rank statistics from the singular values sv.
func (s *svdRun[T]) setChoice(r *SVDResult[T], sv []T) {
	k, m, n := r.K, s.m, s.n
	// Every σ the algorithm found, so that the discarded ones count as
	// such rather than as ‖A‖_F² less the kept ones.
	sig := toFloat64(sv)
	ch, _ := RankRule{Rank: max(k, 1)}.Choose(sig, s.normSq, max(k, 1), s.paramsOf, int64(m)*int64(n))
	r.Choice = ch
	r.EstimatedError = ch.RelError
}

// full computes the thin SVD of all of A with xGESDD and truncates it.
func (s *svdRun[T]) full() (*SVDResult[T], error) {
	m, n := s.m, s.n
	p := min(m, n)
	u, sv, vt, err := thinSVD(s.b, m, n, s.a, s.lda)
	if err != nil {
		return nil, err
	}
	s.passes = 1
	// With every σ known, ‖A‖_F² is taken as Σσᵢ², summed as Choose sums
	// them: then nothing is left beyond the σ for round-off to report as
	// error (‖A‖_F² − Σσᵢ² of order u·‖A‖_F² would read as an error of
	// order √u at full rank).
	s.normSq = 0
	for _, v := range sv {
		s.normSq += float64(v) * float64(v)
	}
	ch, err := s.choose(sv, p)
	if err != nil {
		return nil, err
	}
	s.report(Progress{Stage: "svd", Iteration: 1, MaxIterations: 1, RelError: ch.RelError, Fraction: 1})
	return s.finish(SVDFull, ch.Rank, u, p, sv, vt), nil
}

// choose applies the rule to singular values sv with ranks up to maxRank.
func (s *svdRun[T]) choose(sv []T, maxRank int) (RankChoice, error) {
	sig := toFloat64(sv)
	return s.opts.Rule.Choose(sig, s.normSq, maxRank, s.paramsOf, int64(s.m)*int64(s.n))
}

// thinSVD returns U (m×p), σ (p) and Vᵀ (p×n), p = min(m, n), of the m×n a,
// which it does not modify.
func thinSVD[T Float](b Backend, m, n int, a []T, lda int) (u, sv, vt []T, err error) {
	p := min(m, n)
	work := make([]T, m*n)
	for i := range m {
		copy(work[i*n:i*n+n], a[i*lda:i*lda+n])
	}
	u = make([]T, m*p)
	sv = make([]T, p)
	vt = make([]T, p*n)
	if !Gesdd(b, lapack.SVDStore, m, n, work, n, sv, u, p, vt, n) {
		return nil, nil, nil, &lowrank.Error{Code: lowrank.EINTERNAL, Field: "tensor", Message: "the SVD did not converge"}
	}
	return u, sv, vt, nil
}

// SVD computes the thin singular value decomposition A = U·diag(S)·Vt of the
// m×n a (stride lda), which is not modified: with p = min(m, n), U is m×p,
// S has p values in decreasing order and Vt is p×n. Signs follow
// SVDResult's convention; Choice reports rank p.
func SVD[T Float](b Backend, m, n int, a []T, lda int) (*SVDResult[T], error) {
	return TruncatedSVD(context.Background(), b, m, n, a, lda, SVDOptions{Rule: RankRule{Rank: max(1, min(m, n))}, Algorithm: SVDFull}, nil)
}

// FullSVD computes A = U·Σ·Vt with square factors: U is m×m, Vt is n×n
// (both stride = their width) and s has min(m, n) values in decreasing
// order. a is not modified. Signs are those LAPACK returns.
func FullSVD[T Float](b Backend, m, n int, a []T, lda int) (u, s, vt []T, err error) {
	if _, err := checkMatrix(b, m, n, a, lda); err != nil {
		return nil, nil, nil, err
	}
	work := make([]T, m*n)
	for i := range m {
		copy(work[i*n:i*n+n], a[i*lda:i*lda+n])
	}
	u, s, vt = make([]T, m*m), make([]T, min(m, n)), make([]T, n*n)
	if !Gesdd(b, lapack.SVDAll, m, n, work, n, s, u, m, vt, n) {
		return nil, nil, nil, &lowrank.Error{Code: lowrank.EINTERNAL, Field: "tensor", Message: "the SVD did not converge"}
	}
	return u, s, vt, nil
}

// checkMatrix validates the shape of a and returns ‖A‖_F² in float64, or an
// EINVALID error when A has an empty dimension or a NaN or Inf entry. The
// scan is split over b.Threads() goroutines.
func checkMatrix[T Float](b Backend, m, n int, a []T, lda int) (float64, error) {
	if m <= 0 || n <= 0 {
		return 0, lowrank.Errorf(lowrank.EINVALID, "tensor", "the matrix is %d×%d; both dimensions must be ≥ 1", m, n)
	}
	if lda < n {
		return 0, lowrank.Errorf(lowrank.EINVALID, "tensor", "stride %d is less than the %d columns", lda, n)
	}
	if len(a) < (m-1)*lda+n {
		return 0, lowrank.Errorf(lowrank.EINVALID, "tensor", "%d elements do not hold a %d×%d matrix with stride %d", len(a), m, n, lda)
	}
	workers := min(b.Threads(), max(1, m*n/(1<<18)), m)
	sums := make([]float64, workers)
	bad := make([]bool, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sum float64
			for i := w * m / workers; i < (w+1)*m/workers; i++ {
				sum += SumSquares(a[i*lda : i*lda+n])
			}
			// Inf or NaN anywhere makes the sum non-finite, so one check
			// at the end covers every entry.
			sums[w], bad[w] = sum, math.IsNaN(sum) || math.IsInf(sum, 0)
		}()
	}
	wg.Wait()
	var total float64
	for w := range workers {
		if bad[w] {
			return 0, lowrank.Errorf(lowrank.EINVALID, "tensor", "the matrix holds NaN or Inf")
		}
		total += sums[w]
	}
	return total, nil
}

// fixSigns makes the entry of largest magnitude in each column of u (m×k,
// stride k) positive, flipping the matching row of vt (k×n, stride n). Ties
// go to the first such entry. u is read and written row by row: walking it
// a column at a time strides k elements per access, and at k in the
// thousands that costs a cache and TLB miss per element, a tenth of a
// second at 2048×2048.
func fixSigns[T Float](m, n, k int, u, vt []T) {
	if k == 0 {
		return
	}
	// The largest and smallest entry of each column (hi ≥ 0 ≥ lo).
	hi, lo := make([]T, k), make([]T, k)
	for i := range m {
		for j, v := range u[i*k : i*k+k] {
			if v > hi[j] {
				hi[j] = v
			} else if v < lo[j] {
				lo[j] = v
			}
		}
	}
	neg := make([]bool, k)
	flips := false
	for j := range k {
		neg[j] = -lo[j] > hi[j]
		if -lo[j] == hi[j] && hi[j] != 0 { // a tie: which comes first
			for i := range m {
				if v := u[i*k+j]; v == hi[j] || v == lo[j] {
					neg[j] = v < 0
					break
				}
			}
		}
		flips = flips || neg[j]
	}
	if !flips {
		return
	}
	for i := range m {
		row := u[i*k : i*k+k]
		for j, f := range neg {
			if f {
				row[j] = -row[j]
			}
		}
	}
	for j, f := range neg {
		if f {
			for i, v := range vt[j*n : j*n+n] {
				vt[j*n+i] = -v
			}
		}
	}
}

// firstMaxAbsNegative reports whether the first entry of largest magnitude
// in x is negative. It tracks the largest and the smallest entry rather
// than |x|, which ran 4× faster here, and looks for the first only on a
// tie.
func firstMaxAbsNegative[T Float](x []T) bool {
	var hi, lo T // hi ≥ 0 ≥ lo
	for _, v := range x {
		if v > hi {
			hi = v
		} else if v < lo {
			lo = v
		}
	}
	if -lo != hi {
		return -lo > hi
	}
	for _, v := range x {
		if v == hi {
			return false
		}
		if v == lo {
			return true
		}
	}
	return false
}

func canceled(err error) error {
	return &lowrank.Error{Code: lowrank.ECANCELED, Message: "canceled", Err: err}
}

// orthonormalize replaces the m×l y (stride l, m ≥ l) by an orthonormal
// basis of its columns (Householder QR: xGEQRF then xORGQR). tau has length
// ≥ l.
func orthonormalize[T Float](b Backend, m, l int, y []T, tau []T) {
	Geqrf(b, m, l, y, l, tau)
	Orgqr(b, m, l, l, y, l, tau)
}
