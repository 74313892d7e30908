package linalg

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/lapack"
	lapackgo "gonum.org/v1/gonum/lapack/gonum"

	"github.com/lowrank/lowrank"
)

// errTargetMissed tells auto that fixed precision hit its rank cap before
// its error target, so a full SVD is the better choice.
var errTargetMissed = errors.New("linalg: fixed-precision target not met within the rank cap")

// errSketchEig: the eigensolver failed on a sketch's Gram matrix.
var errSketchEig = &lowrank.Error{Code: lowrank.EINTERNAL, Field: "tensor", Message: "the eigensolver did not converge on the sketch"}

// pcgStream is the second PCG word; the first is the user's seed. Any
// constant works; it only has to stay fixed so seeds keep their meaning.
const pcgStream = 0x9e3779b97f4a7c15

// gaussian returns r×c standard normal entries drawn in row-major order.
func gaussian[T Float](rng *rand.Rand, r, c int) []T {
	g := make([]T, r*c)
	for i := range g {
		g[i] = T(rng.NormFloat64())
	}
	return g
}

// randomized runs subspace iteration (HMT 2011, Alg. 4.4) at rank k.
//
// With l = k + p and Ω n×l Gaussian:
//
//	Q = orth(AΩ); q times: Q = orth(A·orth(AᵀQ));  B = QᵀA (l×n)
//
// then B = Ũ Σ Vᵀ and U = QŨ. Passes over A: 2q + 2.
func (s *svdRun[T]) randomized(k int) (*SVDResult[T], error) {
	b, m, n, a, lda := s.b, s.m, s.n, s.a, s.lda
	l := min(min(m, n), k+s.oversamples())
	q := s.power(DefaultPowerIterations)
	rng := rand.New(rand.NewPCG(s.opts.Seed, pcgStream))
	omega := gaussian[T](rng, n, l)
	ws := newOrthWork[T](l)
	y := make([]T, m*l)
	z := make([]T, n*l)
	Gemm(b, blas.NoTrans, blas.NoTrans, m, l, n, 1, a, lda, omega, l, 0, y, l)
	s.passes++
	ws.orthonormalize(b, m, l, y, 2)
	for it := range q {
		if err := s.ctx.Err(); err != nil {
			return nil, canceled(err)
		}
		Gemm(b, blas.Trans, blas.NoTrans, n, l, m, 1, a, lda, y, l, 0, z, l)
		ws.orthonormalize(b, n, l, z, 1)
		Gemm(b, blas.NoTrans, blas.NoTrans, m, l, n, 1, a, lda, z, l, 0, y, l)
		// The last basis must be orthonormal to rounding: B = QᵀA and the
		// error estimate rely on it.
		passes := 1
		if it == q-1 {
			passes = 2
		}
		ws.orthonormalize(b, m, l, y, passes)
		s.passes += 2
		s.report(Progress{Stage: "power", Iteration: it + 1, MaxIterations: q, RelError: math.NaN(), Fraction: float64(it+1) / float64(q+1)})
	}
	if err := s.ctx.Err(); err != nil {
		return nil, canceled(err)
	}
	bm := make([]T, l*n)
	Gemm(b, blas.Trans, blas.NoTrans, l, n, m, 1, y, l, a, lda, 0, bm, n)
	s.passes++
	return s.fromQB(SVDRandomized, k, y, 0, false, l, bm)
}

// blockKrylov builds the block Krylov space of Musco & Musco (2015),
//
//	K = [AΩ, (AAᵀ)AΩ, …, (AAᵀ)^q AΩ],   Ω n×l Gaussian, l = k + p,
//
// one block at a time: Q₀ = orth(AΩ), Bᵢ = QᵢᵀA, Qᵢ₊₁ = orth((I − QQᵀ)·A·orth(Bᵢᵀ)),
// where Q holds the blocks so far. Each Qᵢ is orthogonal to the earlier
// ones, so the stacked Bᵢ are exactly QᵀA and the Rayleigh–Ritz step needs
// no further pass. Passes over A: 2q + 2, against 2q' + 2 for subspace
// iteration that needs q' ≈ 2q for the same Frobenius error on a flat
// spectrum. The projection (I − QQᵀ) leans on the same recurrence: see
// krylovProject.
//
// G = BBᵀ = QᵀAAᵀQ, the Rayleigh–Ritz matrix, is block tridiagonal: by
// construction AAᵀQⱼ lies in span(Q₀ … Qⱼ₊₁), so QᵢᵀAAᵀQⱼ = 0 for
// |i − j| > 1, and with Q orthonormal to rounding those blocks are rounding
// noise of the size that computing them would add. sketchSVD forms only the
// others: at q = 6, 9.5·l²·n multiply-adds against L²·n/2 = 24.5·l²·n.
// (TestRandomizedExactLowRank fails at 10⁻¹² when blocks it needs are
// left out.)
//
// Every block is kept as rows (Qᵢᵀ l×m, Bᵢ l×n), so each product with A is
// a GEMM whose long operand is A as stored and whose result is already in
// place: Qᵢᵀ lands in its rows of Qᵀ, and Bᵢᵀ needs no transpose to become
// the next right-hand side. On OpenBLAS 0.3.21 (2 threads, m = n = 4096,
// l = 128) Zᵀ·Aᵀ ran at 107–111 GFLOP/s against 94–96 for A·Z, and
// Yᵀ·A at 115–122.
func (s *svdRun[T]) blockKrylov(k int) (*SVDResult[T], error) {
	b, m, n, a, lda := s.b, s.m, s.n, s.a, s.lda
	l, q := s.krylovShape(k)
	L := (q + 1) * l
	rng := rand.New(rand.NewPCG(s.opts.Seed, pcgStream))
	omegaT := gaussian[T](rng, l, n)
	ws := newOrthWork[T](l)
	qt := make([]T, L*m) // Qᵀ, one basis vector per row
	bm := make([]T, L*n) // B = QᵀA
	zt := make([]T, l*n)
	proj := make([]T, L*l)
	probe := newRowProbe[T](rng, krylovProbes, m, l)
	Gemm(b, blas.NoTrans, blas.Trans, l, m, n, 1, omegaT, n, a, lda, 0, qt, m)
	s.passes++
	ws.orthonormalizeRows(b, l, m, qt, 2)
	for it := 0; ; it++ {
		// Bᵢ = QᵢᵀA, in its rows of B.
		K := it * l
		Gemm(b, blas.NoTrans, blas.NoTrans, l, n, m, 1, qt[K*m:], m, a, lda, 0, bm[K*n:], n)
		s.passes++
		if it == q {
			break
		}
		if err := s.ctx.Err(); err != nil {
			return nil, canceled(err)
		}
		K += l
		copy(zt, bm[(K-l)*n:K*n])
		ws.orthonormalizeRows(b, l, n, zt, 1)
		yt := qt[K*m : (K+l)*m]
		Gemm(b, blas.NoTrans, blas.Trans, l, m, n, 1, zt, n, a, lda, 0, yt, m)
		s.passes++
		probe.fold(b, qt, K-2*l)
		if shrink, _ := krylovProject(b, m, l, K, yt, qt, proj, probe); shrink > reorthShrink {
			// Orthonormalizing scaled the component left along Q up
			// with the columns: project once more.
			ws.orthonormalizeRows(b, l, m, yt, 1)
			projectOut(b, m, l, K, yt, qt, proj, true)
		}
		ws.orthonormalizeRows(b, l, m, yt, 2)
		s.report(Progress{Stage: "krylov", Iteration: it + 1, MaxIterations: q, RelError: math.NaN(), Fraction: float64(it+1) / float64(q+1)})
	}
	if err := s.ctx.Err(); err != nil {
		return nil, canceled(err)
	}
	return s.fromQB(SVDBlockKrylov, k, qt, l, true, L, bm)
}

// projectOut replaces the m×l y by (I − QQᵀ)y for the K orthonormal rows
// of qt (Qᵀ, K×m) or, with rows, y given as its l×m transpose by
// yᵀ(I − QQᵀ), repeating the projection while it removes most of y: one
// classical Gram–Schmidt pass leaves a component along Q of order
// ε·‖y‖/‖(I − QQᵀ)y‖, and a second pass brings it to ε ("twice is
// enough", Giraud et al. 2005). proj is K×l workspace. It returns the
// largest factor by which a column shrank.
func projectOut[T Float](b Backend, m, l, K int, y, qt, proj []T, rows bool) (shrink float64) {
	if K == 0 {
		return 1
	}
	norms := func() []float64 {
		if rows {
			return rowNormsSq(l, m, y)
		}
		return colNormsSq(m, l, y)
	}
	first := norms()
	before := first
	for range 2 {
		if rows { // y·Q (l×K), then y −= (y·Q)·Qᵀ
			Gemm(b, blas.NoTrans, blas.Trans, l, K, m, 1, y, m, qt, m, 0, proj, K)
			Gemm(b, blas.NoTrans, blas.NoTrans, l, m, K, -1, proj, K, qt, m, 1, y, m)
		} else { // Qᵀ·y (K×l), then y −= Q·(Qᵀ·y)
			Gemm(b, blas.NoTrans, blas.NoTrans, K, l, m, 1, qt, m, y, l, 0, proj, l)
			Gemm(b, blas.Trans, blas.NoTrans, m, l, K, -1, qt, m, proj, l, 1, y, l)
		}
		after := norms()
		again := false
		for j := range l {
			if after[j] < 0.5*before[j] {
				again = true
				break
			}
		}
		before = after
		if !again {
			break
		}
	}
	return maxShrink(first, before)
}

// maxShrink returns the largest √(before/after) over the columns.
func maxShrink(before, after []float64) float64 {
	s := 1.0
	for j, v := range before {
		s = max(s, math.Sqrt(v/after[j]))
	}
	return s
}

// krylovProject is projectOut (rows) for block Krylov's yᵀ = Zᵢ·Aᵀ,
// y = A·orth(Bᵢᵀ) = AAᵀQᵢ·R⁻¹, at a fraction of its cost. In exact
// arithmetic y has components along the last two blocks Qᵢ₋₁, Qᵢ only
// (the block Lanczos recurrence: QⱼᵀAAᵀQᵢ = 0 for j < i − 1), so it makes
// one classical Gram–Schmidt pass against those 2l rows, and stops there
// when two checks hold:
//
//   - no row shrank by more than krylovOneShrink: the pass leaves a
//     component along those rows of about u·‖y‖/‖y′‖ relative to the new
//     norm ‖y′‖, a small multiple of the u that a second pass would leave;
//   - the rows' component along the older K − 2l rows, rounding while the
//     basis stays orthogonal, is: probe estimates it from p random
//     combinations of those rows, at 2·l·m·p multiply-adds against the
//     2·l·m·(K − 2l) of computing it.
//
// Otherwise it finishes with projectOut's full passes. On a 4096² Gaussian
// at rank 256 (l = 128) the rows kept 38–42 % of their norm and the older
// components were 1–2u each, so every block stopped after the one pass;
// with σᵢ = 1/i the older components grow to 10⁻³–10⁻² as Ritz values
// converge, and the full passes remove them. It returns the largest
// factor by which a row shrank and whether the full passes ran.
func krylovProject[T Float](b Backend, m, l, K int, yt, qt, proj []T, probe *rowProbe[T]) (shrink float64, full bool) {
	k0 := max(0, K-2*l)
	first := rowNormsSq(l, m, yt)
	Gemm(b, blas.NoTrans, blas.Trans, l, K-k0, m, 1, yt, m, qt[k0*m:], m, 0, proj, K-k0)
	Gemm(b, blas.NoTrans, blas.NoTrans, l, m, K-k0, -1, proj, K-k0, qt[k0*m:], m, 1, yt, m)
	after := rowNormsSq(l, m, yt)
	for j := range l {
		if !(after[j]*krylovOneShrink*krylovOneShrink >= first[j]) {
			full = true
			break
		}
	}
	if !full && !probe.negligible(b, l, yt, after) {
		full = true
	}
	if !full {
		return maxShrink(first, after), false
	}
	projectOut(b, m, l, K, yt, qt, proj, true)
	return maxShrink(first, rowNormsSq(l, m, yt)), true
}

// krylovOneShrink: see krylovProject.
const krylovOneShrink = 4

// krylovProbes is the number p of random combinations of the older basis
// rows that krylovProject's check uses. The estimate of a row's squared
// component is χ²ₚ/p times it: at p = 8 the estimated norm falls below a
// tenth of the true one with probability 10⁻⁷.
const krylovProbes = 8

// rowProbe holds s = ΩᵀQₒᵀ (p×m) for the first rows of Qᵀ folded in so
// far, Qₒᵀ, and Ω with independent standard normal entries, one row of Ω
// drawn per basis row as it is folded in. For any y,
// E‖y·sᵀ‖² = p·‖y·Qₒᵀ‖²: p random combinations estimate y's component
// along those rows without forming its coefficients.
type rowProbe[T Float] struct {
	rng     *rand.Rand
	p, m, n int // n rows folded in
	s, e    []T // s p×m; e l×p workspace
}

func newRowProbe[T Float](rng *rand.Rand, p, m, l int) *rowProbe[T] {
	return &rowProbe[T]{rng: rng, p: p, m: m, s: make([]T, p*m), e: make([]T, l*p)}
}

// fold adds the rows of qt (stride m) up to row upto that are not in s yet.
func (r *rowProbe[T]) fold(b Backend, qt []T, upto int) {
	c := upto - r.n
	if c <= 0 {
		return
	}
	w := gaussian[T](r.rng, r.p, c)
	Gemm(b, blas.NoTrans, blas.NoTrans, r.p, r.m, c, 1, w, c, qt[r.n*r.m:], r.m, 1, r.s, r.m)
	r.n = upto
}

// negligible reports whether, for each of the l rows yⱼ of yt, the
// estimated root mean square of its n coefficients along the folded rows,
// ‖yⱼ·sᵀ‖/√(p·n), is at most oldRowsTol·u·‖yⱼ‖, ‖yⱼ‖² = norms[j].
func (r *rowProbe[T]) negligible(b Backend, l int, yt []T, norms []float64) bool {
	if r.n == 0 {
		return true
	}
	e := r.e[:l*r.p]
	Gemm(b, blas.NoTrans, blas.Trans, l, r.p, r.m, 1, yt, r.m, r.s, r.m, 0, e, r.p)
	tol := oldRowsTol * Roundoff[T]()
	lim := tol * tol * float64(r.p*r.n)
	for j := range l {
		ss := SumSquares(e[j*r.p : (j+1)*r.p])
		if !(ss <= lim*norms[j]) {
			return false
		}
	}
	return true
}

// oldRowsTol bounds the root mean square of a row's coefficients along
// the older basis rows that rowProbe.negligible accepts, in units of u and
// the row's norm. On a flat spectrum they are 1–2u each; with converging
// Ritz values 10⁻³ and more, which must be subtracted.
const oldRowsTol = 16

// Roundoff is the unit round-off u of T: 2⁻²⁴ for float32, 2⁻⁵³ for
// float64.
func Roundoff[T Float]() float64 {
	var z T
	if _, ok := any(z).(float32); ok {
		return 0x1p-24
	}
	return 0x1p-53
}

// reorthShrink bounds how much projectOut may shrink a column before block
// Krylov projects the block again after orthonormalizing it. A column cut
// by a factor s keeps a component along Q of about u·s of its new norm, and
// orthonormalizing leaves it there; past s = 100 that loses more than two
// digits, which happens when a block lies in span(Q) to rounding (a matrix
// of rank below L).
const reorthShrink = 100

func rowNormsSq[T Float](l, m int, yt []T) []float64 {
	ns := make([]float64, l)
	for j := range l {
		ns[j] = SumSquares(yt[j*m : (j+1)*m])
	}
	return ns
}

func colNormsSq[T Float](m, l int, y []T) []float64 {
	ns := make([]float64, l)
	for i := range m {
		for j, v := range y[i*l : i*l+l] {
			ns[j] += float64(v) * float64(v)
		}
	}
	return ns
}

// transposeInto writes the transpose of the r×c src (stride lds) to dst
// (c×r, stride ldd).
func transposeInto[T Float](r, c int, src []T, lds int, dst []T, ldd int) {
	for i := range r {
		for j, v := range src[i*lds : i*lds+c] {
			dst[j*ldd+i] = v
		}
	}
}

// fixedPrecision runs randQB_EI (Yu, Gu & Li 2018, Alg. 2): it grows
// Q (m×K, orthonormal) and B = QᵀA (K×n) by blocks until the error
// indicator
//
//	E = ‖A‖_F² − ‖B‖_F² = ‖A − QB‖_F²
//
// drops to target²·‖A‖_F², or K reaches rankCap. E is updated per block
// with ‖Bᵢ‖_F² and ‖A‖_F² is exact, so no extra pass is needed to check the
// error. Each block is
//
//	Qᵢ = orth((I − QQᵀ)AΩᵢ)
//	P times: Q̂ᵢ = orth(Aᵀ(I − QQᵀ)Qᵢ),  Qᵢ = orth((I − QQᵀ)AQ̂ᵢ)
//	Qᵢ = orth((I − QQᵀ)Qᵢ),  Bᵢ = QᵢᵀA
//
// where the projections are applied to products already made:
// (I − QQᵀ)AX = AX − Q(Qᵀ·AX) and Aᵀ(I − QQᵀ)Y = AᵀY − Bᵀ(QᵀY).
//
// Block widths start at BlockSize and double up to qbMaxBlock.
//
// The rank rule then picks k from B's singular values. With rankCap below
// min(m, n), missing the target returns errTargetMissed.
func (s *svdRun[T]) fixedPrecision(rankCap int) (*SVDResult[T], error) {
	b, m, n, a, lda := s.b, s.m, s.n, s.a, s.lda
	p := min(m, n)
	tol := s.opts.Rule.RelError
	if s.opts.Rule.Energy > 0 {
		tol = math.Sqrt(max(0, 1-s.opts.Rule.Energy))
	}
	target := tol * tol * s.normSq
	bs := s.opts.BlockSize
	if bs == 0 {
		bs = DefaultQBBlock
	}
	bs = min(bs, rankCap)
	// Blocks double from bs up to maxBlock columns: a target far beyond bs
	// is then reached in a few blocks (each costs 2P + 2 passes over A
	// whatever its width), while overshooting the needed rank costs at
	// most about the work of the last block.
	maxBlock := min(max(bs, qbMaxBlock), rankCap)
	P := s.power(DefaultQBPower)
	rng := rand.New(rand.NewPCG(s.opts.Seed, pcgStream))
	ws := newOrthWork[T](maxBlock)
	var qt, bm []T // Qᵀ (K×m) and B (K×n)
	y := make([]T, m*maxBlock)
	z := make([]T, n*maxBlock)
	proj := make([]T, rankCap*maxBlock)
	E := s.normSq
	K := 0
	// At least one block, so that a zero A still gets (zero) factors.
	for step := 1; K < rankCap && (K == 0 || E > target); step++ {
		if err := s.ctx.Err(); err != nil {
			return nil, canceled(err)
		}
		c := min(bs<<min(step-1, 30), maxBlock, rankCap-K)
		omega := gaussian[T](rng, n, c)
		Gemm(b, blas.NoTrans, blas.NoTrans, m, c, n, 1, a, lda, omega, c, 0, y, c)
		s.passes++
		s.deflate(c, K, qt, bm, y, nil, proj)
		ws.orthonormalize(b, m, c, y, 1)
		for range P {
			Gemm(b, blas.Trans, blas.NoTrans, n, c, m, 1, a, lda, y, c, 0, z, c)
			s.deflate(c, K, qt, bm, y, z, proj)
			ws.orthonormalize(b, n, c, z, 1)
			Gemm(b, blas.NoTrans, blas.NoTrans, m, c, n, 1, a, lda, z, c, 0, y, c)
			s.deflate(c, K, qt, bm, y, nil, proj)
			ws.orthonormalize(b, m, c, y, 1)
			s.passes += 2
		}
		projectOut(b, m, c, K, y, qt, proj, false)
		ws.orthonormalize(b, m, c, y, 2)
		qt = append(qt, make([]T, c*m)...)
		transposeInto(m, c, y, c, qt[K*m:], m)
		bm = append(bm, make([]T, c*n)...)
		bi := bm[K*n:]
		Gemm(b, blas.Trans, blas.NoTrans, c, n, m, 1, y, c, a, lda, 0, bi, n)
		s.passes++
		E -= SumSquares(bi)
		K += c
		rel := math.Sqrt(max(E, 0) / max(s.normSq, math.SmallestNonzeroFloat64))
		frac := float64(K) / float64(rankCap)
		if target > 0 && E > 0 {
			frac = max(frac, min(1, math.Log(s.normSq/E)/math.Log(s.normSq/target)))
		}
		s.report(Progress{Stage: "qb", Iteration: step, RelError: rel, Fraction: min(frac, 1)})
	}
	if E > target && rankCap < p {
		return nil, errTargetMissed
	}
	if err := s.ctx.Err(); err != nil {
		return nil, canceled(err)
	}
	return s.fromQB(SVDFixedPrecision, -1, qt, 0, true, K, bm)
}

// deflate makes the new block of randQB_EI ignore what Q already
// captures, without another pass over A. For the m×c y = AX it applies
// y −= Q(Qᵀy), which equals Q(BX) since QᵀA = B; for the n×c z = AᵀY it
// applies z −= Bᵀ(QᵀY) = Aᵀ·QQᵀY, so z = Aᵀ(I − QQᵀ)Y. qt holds Qᵀ (K×m)
// and bm holds B (K×n); proj is K×c workspace.
func (s *svdRun[T]) deflate(c, K int, qt, bm, y, z, proj []T) {
	if K == 0 {
		return
	}
	b, m, n := s.b, s.m, s.n
	Gemm(b, blas.NoTrans, blas.NoTrans, K, c, m, 1, qt, m, y, c, 0, proj, c)
	if z == nil {
		Gemm(b, blas.Trans, blas.NoTrans, m, c, K, -1, qt, m, proj, c, 1, y, c)
		return
	}
	Gemm(b, blas.Trans, blas.NoTrans, n, c, K, -1, bm, n, proj, c, 1, z, c)
}

// fromQB finishes a randomized algorithm from Q and B = QᵀA: it computes
// the SVD B = Ũ Σ Vᵀ (sketchSVD), chooses the rank (k < 0: by the rule from Σ, with
// ranks up to L) and forms U = QŨ. q is m×L (stride L) or, with
// qTransposed, Qᵀ (L×m, stride m).
func (s *svdRun[T]) fromQB(alg SVDAlgorithm, k int, q []T, band int, qTransposed bool, L int, bm []T) (*SVDResult[T], error) {
	m, n := s.m, s.n
	ub, sv, vt, k, err := sketchSVD(s.b, L, n, bm, band, k, func(sv []T) (int, error) {
		ch, err := s.choose(sv, L)
		return ch.Rank, err
	})
	if err != nil {
		return nil, err
	}
	var r *SVDResult[T]
	if qTransposed {
		// Uᵀ = Ũᵀ·Qᵀ: Qᵀ is the long operand as stored. On OpenBLAS
		// (m = 4096, L = 896, k = 256, 2 threads) this and the transpose
		// took 17 ms where U = (Qᵀ)ᵀ·Ũ took 26.
		ut := make([]T, k*m)
		Gemm(s.b, blas.Trans, blas.NoTrans, k, m, L, 1, ub, k, q, m, 0, ut, m)
		r = s.finishRows(alg, k, ut, sv, vt)
	} else {
		u := make([]T, m*k)
		Gemm(s.b, blas.NoTrans, blas.NoTrans, m, k, L, 1, q, L, ub, k, 0, u, k)
		r = s.finish(alg, k, u, k, sv, vt)
	}
	s.report(Progress{Stage: "svd", Iteration: 1, MaxIterations: 1, Fraction: 1, RelError: r.EstimatedError})
	return r, nil
}

// sketchSVD computes the leading k singular triplets of the L×n sketch B
// (L ≤ n), B ≈ Ũₖ·diag(σ)·Vₖᵀ with Ũₖ L×k (stride k) and Vₖᵀ k×n. With
// k < 0 the rank is k = choose(σ₁…σ_L), which sees all L singular values.
//
// Rayleigh–Ritz in two steps. The Gram matrix G = BBᵀ (xSYRK in T) is
// diagonalised: its top k eigenvectors Z span the leading left singular
// subspace. Then W = ZᵀB (k×n) gets an SVD of its own, W = U_W·Σ·Vᵀ, and
// Ũₖ = Z·U_W. Squaring in G only affects which subspace is selected, whose
// error enters the approximation at second order; the returned σ and the
// orthogonality of Vᵀ come from W's SVD (gramSVD in float64, or xGESDD).
// Cost: nL² (xSYRK) + the eigensolver + 2nLk + the SVD of k×n, against
// ≈ 4nL² + 8L³ for xGESDD of B itself, half of it at BLAS-2 speed. When
// σ₁/σ_k ≤ sketchDirectMaxCond, W's rows are orthogonal to T's accuracy
// already and its SVD is skipped.
//
// With band > 0, G is taken as block tridiagonal with band×band blocks
// (block Krylov) and only those blocks are formed.
//
// With k given, only the top k eigenpairs of G are computed, in T (Syevr:
// the tridiagonal reduction, then bisection and inverse iteration for the k
// wanted pairs only); G already carries T's rounding, so solving it in
// float64 would add nothing to the subspace. Forming it in float64 does when
// λ_k is within a few thousand units of that rounding of λ₁, and then G is
// formed and solved again in float64 (sketchGramMinRatio). For L = 1064,
// k = 256 on OpenBLAS, one thread, that took 0.12 s against 0.31 s for all of
// DSYEVD (with xSTEDC for the tridiagonal problem; at L = 896 bisection and
// inverse iteration now take 4 ms where xSTERF and xSTEIN took 27). When the
// rule needs every σᵢ, G is formed and solved whole in float64 (xSYRK,
// xSYEVD), so the small eigenvalues the rule sums are not lost to float32
// round-off. Either way on one thread: reducing a matrix this small to
// tridiagonal form is BLAS-2 work bound by memory and thread
// synchronisation; measured on L = 1064, one OpenBLAS thread took 0.45 s and
// two 1.2 s on a busy machine (NumPy's eigh with two threads took 0.7 s on a
// quieter one).
func sketchSVD[T Float](b Backend, L, n int, bm []T, band, k int, choose func(sv []T) (int, error)) (ub, sv, vt []T, _ int, err error) {
	var z, w []T
	if k >= 0 {
		if k == 0 {
			return nil, nil, nil, 0, nil
		}
		var ok bool
		if w, z, ok = topEigenpairs(b, L, k, sketchGram(b, L, n, bm, band)); !ok {
			return nil, nil, nil, 0, errSketchEig
		}
		if Roundoff[T]() > 0x1p-53 && !(float64(w[k-1]) >= sketchGramMinRatio*float64(w[0])) {
			// λ_k within a few thousand units of G's round-off: select
			// the subspace from G formed in float64 (see
			// sketchGramMinRatio).
			w64, z64, ok := topEigenpairs(b, L, k, sketchGram(b, L, n, toFloat64(bm), band))
			if !ok {
				return nil, nil, nil, 0, errSketchEig
			}
			for i, v := range w64 {
				w[i] = T(v)
			}
			for i, v := range z64 {
				z[i] = T(v)
			}
		}
	} else {
		g64 := sketchGram(b, L, n, toFloat64(bm), band)
		w := make([]float64, L)
		if !b.WithThreads(1).Dsyevd(L, g64, L, w) {
			return nil, nil, nil, 0, errSketchEig
		}
		all := make([]T, L)
		for j := range L {
			all[j] = T(math.Sqrt(max(w[L-1-j], 0))) // descending
		}
		if k, err = choose(all); err != nil {
			return nil, nil, nil, 0, err
		}
		z = make([]T, L*k)
		for i := range L {
			for j := range k {
				z[i*k+j] = T(g64[i*L+L-1-j])
			}
		}
	}
	wm := make([]T, k*n)
	Gemm(b, blas.Trans, blas.NoTrans, k, n, L, 1, z, k, bm, n, 0, wm, n)
	if w != nil && w[k-1] > 0 && float64(w[0]) <= sketchDirectMaxCond*sketchDirectMaxCond*float64(w[k-1]) {
		// Well conditioned: W's rows are orthogonal already (see
		// sketchDirectMaxCond), σⱼ = √λⱼ and Vᵀ = Σ⁻¹W.
		sv = make([]T, k)
		for j, v := range w {
			s := math.Sqrt(float64(v))
			sv[j] = T(s)
			row := wm[j*n : (j+1)*n]
			for i, x := range row {
				row[i] = T(float64(x) / s)
			}
		}
		return z, sv, wm, k, nil
	}
	uw, sv, vt, ok := gramSVD(b, k, n, wm)
	if !ok {
		uw = make([]T, k*k)
		sv = make([]T, k)
		vt = make([]T, k*n)
		if !Gesdd(b, lapack.SVDStore, k, n, wm, n, sv, uw, k, vt, n) {
			return nil, nil, nil, 0, &lowrank.Error{Code: lowrank.EINTERNAL, Field: "tensor", Message: "the SVD of the sketch did not converge"}
		}
	}
	ub = make([]T, L*k)
	Gemm(b, blas.NoTrans, blas.NoTrans, L, k, k, 1, z, k, uw, k, 0, ub, k)
	return ub, sv, vt, k, nil
}

// sketchGram returns the upper triangle of G = BBᵀ (L×L) for the L×n B,
// only its band×band block tridiagonal part when band > 0 (block Krylov's G:
// see blockKrylov).
func sketchGram[T Float](b Backend, L, n int, bm []T, band int) []T {
	g := make([]T, L*L)
	if band == 0 {
		Syrk(b, blas.Upper, blas.NoTrans, L, n, 1, bm, n, 0, g, L)
		return g
	}
	for i := 0; i < L; i += band {
		Syrk(b, blas.Upper, blas.NoTrans, band, n, 1, bm[i*n:], n, 0, g[i*L+i:], L)
		if i+band < L {
			Gemm(b, blas.NoTrans, blas.Trans, band, band, n, 1, bm[i*n:], n, bm[(i+band)*n:], n, 0, g[i*L+i+band:], L)
		}
	}
	return g
}

// topEigenpairs returns the k largest eigenvalues of the L×L symmetric g
// (upper triangle; destroyed), in decreasing order, and their eigenvectors
// as the columns of z (L×k).
func topEigenpairs[T Float](b Backend, L, k int, g []T) (w, z []T, ok bool) {
	w, z = make([]T, k), make([]T, L*k)
	if !Syevr(b, L, L-k+1, L, g, L, w, z, k) {
		return nil, nil, false
	}
	for i := range L {
		slices.Reverse(z[i*k : (i+1)*k])
	}
	slices.Reverse(w)
	return w, z, true
}

// sketchGramMinRatio is the smallest λ_k/λ₁ of G = BBᵀ at which sketchSVD
// selects the leading subspace from G formed in float32. G's rounding,
// about u·λ₁, mixes the eigenvectors whose eigenvalues it cannot tell
// apart: on a 1536² matrix with σᵢ = 1/i² the error reached 1.3× optimal at
// rank 64 (λ_k/λ₁ ≈ u) and 6.9× at rank 200, against 1.0000 with σᵢ = 1/i
// at rank 200 (λ_k/λ₁ ≈ 420u). Below 2¹²·u (σ_k/σ₁ < 1/64) G is formed
// and solved again in float64 from the same B, which costs its xSYRK and
// eigensolver twice over in float64; B itself keeps float32's u·σ₁, as the
// float32 QR and SVD of scikit-learn's randomized_svd do.
const sketchGramMinRatio = 0x1p-12

// gramSVD computes the SVD W = U_W·Σ·Vᵀ of the k×n W (k ≤ n) through its
// Gram matrix in float64: WWᵀ = E·diag(μ)·Eᵀ (xSYRK, xSYEVD), σ = √μ,
// U_W = E and Vᵀ = Σ⁻¹·Eᵀ·W, all in float64 and rounded to T at the end.
// In float64, μ carries errors of about u₆₄·σ₁², so σⱼ and the
// orthogonality of Vᵀ are good to about u₆₄·(σ₁/σⱼ)², below float32's
// rounding while σ_k/σ₁ ≥ gramSVDMinRatio; below that ok is false and the
// caller takes xGESDD. For k = 256, n = 4096 on OpenBLAS this took about
// half the time of SGESDD.
func gramSVD[T Float](b Backend, k, n int, wm []T) (uw, sv, vt []T, ok bool) {
	w64 := toFloat64(wm)
	h := make([]float64, k*k)
	b.Dsyrk(blas.Upper, blas.NoTrans, k, n, 1, w64, n, 0, h, k)
	mu := make([]float64, k)
	if !b.WithThreads(1).Dsyevd(k, h, k, mu) || !(mu[0] >= gramSVDMinRatio*gramSVDMinRatio*mu[k-1]) || !(mu[k-1] > 0) {
		return nil, nil, nil, false
	}
	// Columns of h in decreasing order of μ.
	for i := range k {
		slices.Reverse(h[i*k : (i+1)*k])
	}
	slices.Reverse(mu)
	v64 := make([]float64, k*n)
	b.Dgemm(blas.Trans, blas.NoTrans, k, n, k, 1, h, k, w64, n, 0, v64, n)
	uw, sv, vt = make([]T, k*k), make([]T, k), make([]T, k*n)
	for j := range k {
		s := math.Sqrt(mu[j])
		sv[j] = T(s)
		for i, v := range v64[j*n : (j+1)*n] {
			vt[j*n+i] = T(v / s)
		}
	}
	for i, v := range h {
		uw[i] = T(v)
	}
	return uw, sv, vt, true
}

// sketchDirectMaxCond is the largest σ₁/σ_k at which sketchSVD takes the
// eigenpairs of G = BBᵀ as they are: σⱼ = √λⱼ, Ũ = Z and Vᵀ = Σ⁻¹ZᵀB,
// skipping W's SVD. The eigensolver leaves ZᵀGZ diagonal to about u·λ₁ (u
// the unit round-off of T, G's own rounding included), so the rows of
// Σ⁻¹ZᵀB are orthonormal to about u·λ₁/λ_k ≤ 16u, and √λⱼ carries a
// relative error of about u·λ₁/λⱼ. That is the accuracy of T; past this
// ratio gramSVD's float64 SVD of W restores it. On a 4096² Gaussian
// matrix at rank 256 (σ₁/σ₂₅₆ ≈ 1.1) the skip saved 30–35 ms of 0.9 s.
const sketchDirectMaxCond = 4

// gramSVDMinRatio is the smallest σ_k/σ₁ gramSVD accepts: there
// u₆₄·(σ₁/σ_k)² ≈ 10⁻⁸.
const gramSVDMinRatio = 1e-4

// orthWork is the workspace of orthonormalize, sized once per call of a
// randomized algorithm for blocks of at most cols columns.
type orthWork[T Float] struct {
	gt, r []T
	g     []float64
	tau   []T
}

func newOrthWork[T Float](cols int) *orthWork[T] {
	return &orthWork[T]{
		gt:  make([]T, cols*cols),
		r:   make([]T, cols*cols),
		g:   make([]float64, cols*cols),
		tau: make([]T, cols),
	}
}

// orthonormalize replaces the m×l y (stride l, m ≥ l) by an orthonormal
// basis of its column span.
//
// It uses Cholesky QR: G = YᵀY (xSYRK in T) = RᵀR (Cholesky in float64),
// Y ← Y·R⁻¹ (xTRSM), repeated passes times (CholeskyQR2 with passes = 2: the first
// pass leaves ‖QᵀQ − I‖ ≈ u·κ(Y)², u the unit round-off of T, the second
// brings it to rounding; Yamamoto et al. 2015). That is one xSYRK and one
// xTRSM per pass, several times cheaper than Householder QR for tall
// blocks. When Y is rank-deficient or too ill-conditioned for its Gram
// matrix in T — a diagonal ratio of R below cholMinRatio, about 1/κ(Y) —
// it falls back to Householder QR (xGEQRF, xORGQR), which is stable for
// any Y.
//
// A second pass is skipped when κ(Y), estimated from R (cholCond), is at
// most cholOnePassCond: the first pass then left ‖QᵀQ − I‖ within a few
// times what the second would.
func (w *orthWork[T]) orthonormalize(b Backend, m, l int, y []T, passes int) {
	if l == 0 || m == 0 {
		return
	}
	for pass := range passes {
		if !w.cholQR(b, m, l, y, false) {
			Geqrf(b, m, l, y, l, w.tau)
			Orgqr(b, m, l, l, y, l, w.tau)
			return
		}
		if pass == 0 && passes > 1 && cholCond(l, w.g) <= cholOnePassCond {
			return
		}
	}
}

// orthonormalizeRows is orthonormalize for Y given as its transpose: the
// l×m yt (stride m, l ≤ m) is replaced by Qᵀ, with Y = QR as there
// (Qᵀ = R⁻ᵀ·Yᵀ). The Householder fallback runs on a transposed copy.
func (w *orthWork[T]) orthonormalizeRows(b Backend, l, m int, yt []T, passes int) {
	if l == 0 || m == 0 {
		return
	}
	for pass := range passes {
		if !w.cholQR(b, m, l, yt, true) {
			y := make([]T, m*l)
			transposeInto(l, m, yt, m, y, l)
			Geqrf(b, m, l, y, l, w.tau)
			Orgqr(b, m, l, l, y, l, w.tau)
			transposeInto(m, l, y, l, yt, m)
			return
		}
		if pass == 0 && passes > 1 && cholCond(l, w.g) <= cholOnePassCond {
			return
		}
	}
}

// cholOnePassCond is the largest estimated κ(Y) at which orthonormalize
// takes one Cholesky QR pass for two: the pass leaves ‖QᵀQ − I‖ of about
// u·κ², at most 4× the rounding a second pass would leave. On a 4096²
// Gaussian at rank 256, block Krylov's blocks had κ = 1.3–1.6 after
// projection, and skipping the second pass saved 7–15 ms of 0.7 s.
const cholOnePassCond = 2

// cholCondSteps is the number of Lanczos steps cholCond takes.
const cholCondSteps = 16

// cholCond estimates κ₂(R) = √(λ_max/λ_min) of RᵀR for the l×l upper
// triangular R (stride l, float64) from the extreme Ritz values of
// min(l, cholCondSteps) Lanczos steps on RᵀR, with full
// reorthogonalization, from a fixed start. Ritz values lie inside the
// spectrum, so the estimate is at most κ₂(R), and exact when the steps
// reach l. On Gaussian blocks it came within 0.1 % of κ at 128×4096 and
// 7 % at 128×256 (TestCholCond). Cost: 2l² multiply-adds a step.
//
// References: C. Lanczos (1950); G. H. Golub & C. F. Van Loan, Matrix
// Computations, 4th ed., §10.1.
func cholCond(l int, r []float64) float64 {
	k := min(l, cholCondSteps)
	v := make([]float64, (k+1)*l) // Lanczos vectors, one per row
	u := make([]float64, l)
	alpha, beta := make([]float64, k), make([]float64, k)
	for i := range l {
		v[i] = 1 + float64(i%7) // a fixed start with no relation to R
	}
	floats.Scale(1/floats.Norm(v[:l], 2), v[:l])
	steps := 0
	for j := range k {
		x, w := v[j*l:(j+1)*l], v[(j+1)*l:(j+2)*l]
		for i := range l { // u = R·x
			var t float64
			for c := i; c < l; c++ {
				t += r[i*l+c] * x[c]
			}
			u[i] = t
		}
		clear(w)
		for i := range l { // w = Rᵀ·u
			ui := u[i]
			for c := i; c < l; c++ {
				w[c] += r[i*l+c] * ui
			}
		}
		alpha[j] = floats.Dot(w, x)
		steps = j + 1
		for range 2 { // full reorthogonalization, twice
			for p := 0; p <= j; p++ {
				vp := v[p*l : (p+1)*l]
				floats.AddScaled(w, -floats.Dot(w, vp), vp)
			}
		}
		if j+1 == k {
			break
		}
		beta[j] = floats.Norm(w, 2)
		if !(beta[j] > 1e-12*math.Abs(alpha[j])) {
			break // an invariant subspace: the Ritz values are exact
		}
		floats.Scale(1/beta[j], w)
	}
	d, e := alpha[:steps], beta[:max(steps-1, 0)]
	if !(lapackgo.Implementation{}).Dsterf(steps, d, e) {
		return math.Inf(1)
	}
	lo, hi := slices.Min(d), slices.Max(d)
	if !(lo > 0) {
		return math.Inf(1)
	}
	return math.Sqrt(hi / lo)
}

// cholMinRatio is the smallest ratio of R's diagonal entries Cholesky QR
// accepts: κ(Y) up to about 100 in float32, where u·κ² ≈ 6·10⁻⁴ leaves the
// second pass a well-conditioned Y, and up to 10⁵ in float64
// (u·κ² ≈ 10⁻⁶).
func cholMinRatio[T Float]() float64 {
	var z T
	if _, ok := any(z).(float32); ok {
		return 1e-2
	}
	return 1e-5
}

// cholQR runs one Cholesky QR pass on the m×l Y, given as y (stride l) or,
// with rows, as its transpose (l×m, stride m). It reports false, leaving y
// as it was, when R's diagonal ratio is below cholMinRatio.
func (w *orthWork[T]) cholQR(b Backend, m, l int, y []T, rows bool) bool {
	gt := w.gt[:l*l]
	if rows {
		Syrk(b, blas.Upper, blas.NoTrans, l, m, 1, y, m, 0, gt, l)
	} else {
		Syrk(b, blas.Upper, blas.Trans, l, m, 1, y, l, 0, gt, l)
	}
	g := w.g[:l*l]
	for i := range l {
		for j := i; j < l; j++ {
			g[i*l+j] = float64(gt[i*l+j])
		}
	}
	if !b.Dpotrf(l, g, l) {
		return false
	}
	dmax, dmin := 0.0, math.Inf(1)
	for i := range l {
		d := math.Abs(g[i*l+i])
		dmax, dmin = max(dmax, d), min(dmin, d)
	}
	if !(dmin > cholMinRatio[T]()*dmax) {
		return false
	}
	// Y ← Y·R⁻¹ by a triangular solve with R rounded to T: backward
	// stable, where multiplying by an explicit inverse would add an error
	// of order u·κ(R).
	r := w.r[:l*l]
	for i := range l {
		for j := i; j < l; j++ {
			r[i*l+j] = T(g[i*l+j])
		}
	}
	if rows {
		Trsm(b, blas.Left, blas.Upper, blas.Trans, blas.NonUnit, l, m, 1, r, l, y, m)
	} else {
		Trsm(b, blas.Right, blas.Upper, blas.NoTrans, blas.NonUnit, m, l, 1, r, l, y, l)
	}
	return true
}

// krylovMinBlock is the narrowest block the default block Krylov shape
// halves to: below about 64 columns a product with A runs at memory speed
// rather than GEMM speed, so narrower blocks cost passes without saving
// flops.
const krylovMinBlock = 64

// krylovShape returns block Krylov's block width l and depth q at rank k.
//
// The Krylov space must hold about 3.5·k vectors to come within 0.3 % of
// the optimal Frobenius error on a flat spectrum (the hardest case).
// Building it costs about 2 passes over A per block column whatever the
// block width, so at a fixed space size L = (q+1)·l the narrower block
// wins: its polynomial has a higher degree (Meyer, Musco & Musco 2024). On
// a 4096×4096 Gaussian at k = 256, err/opt was 1.0028 at l = 266, q = 3
// (L = 1064); 1.0026 at l = 128, q = 6 (L = 896); 1.0013 at l = 128,
// q = 7 (L = 1024); 1.0014 at l = 96, q = 9 (L = 960).
//
// So by default the block is w = k + oversamples, or, when w/2 is at
// least krylovMinBlock wide, w/2 rounded down to a multiple of 32 (OpenBLAS's
// SGEMM ran 10–25 % slower at widths 133 and 266 than at 128 and 256
// here), and the depth fills 3.5·k, at least DefaultKrylovDepth: q = 3 for a
// full block (Musco & Musco's setting, L = 4w), q = 6 for k = 256
// (l = 128, L = 896). PowerIterations overrides q; q is capped so that
// L ≤ min(m, n), and when the half blocks that fit cannot hold k the block
// is w.
func (s *svdRun[T]) krylovShape(k int) (l, q int) {
	p := min(s.m, s.n)
	w := min(p, k+s.oversamples())
	l = w
	if w/2 >= krylovMinBlock {
		l = w / 2 / 32 * 32
	}
	depth := max(DefaultKrylovDepth, (7*k+2*l-1)/(2*l)-1) // ⌈3.5·k/l⌉ − 1
	q = min(s.power(depth), p/l-1)
	if (q+1)*l < k {
		// Half blocks too few to hold the rank within min(m, n): the
		// full block of w instead.
		l = w
		q = min(s.power(DefaultKrylovDepth), p/l-1)
	}
	return l, q
}
