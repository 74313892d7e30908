package tensorops

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/linalg"
)

// lowRankCP returns an exact rank-r CP tensor with Gaussian factors.
func lowRankCP[T Float](rng *rand.Rand, shape []int, r int) *Dense[T] {
	factors := make([]*Matrix[T], len(shape))
	for k, d := range shape {
		factors[k] = randMatrix[T](rng, d, r)
	}
	lambda := make([]float64, r)
	for i := range lambda {
		lambda[i] = 1 + rng.Float64()
	}
	return cpTensor(shape, factors, lambda)
}

func addNoise[T Float](rng *rand.Rand, x *Dense[T], level float64) {
	scale := level * x.Norm() / math.Sqrt(float64(x.Len()))
	for i := range x.Data {
		x.Data[i] += T(scale * rng.NormFloat64())
	}
}

func TestCPExactRecovery(t *testing.T) {
	cases := []struct {
		shape []int
		rank  int
	}{
		{[]int{6, 5}, 3},
		{[]int{7, 6, 5}, 3},
		{[]int{6, 1, 5, 4}, 2},
		{[]int{8, 7, 3, 3}, 4},
		{[]int{4, 3, 3, 2, 3}, 2},
	}
	for _, b := range linalg.Backends(2) {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/%v/f64", b.Name(), c.shape), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(21, uint64(len(c.shape))))
				x := lowRankCP[float64](rng, c.shape, c.rank)
				res, err := CPALS(context.Background(), b, x, CPOptions{Rank: c.rank, MaxIter: 500, Tol: 1e-14}, nil)
				if err != nil {
					t.Fatal(err)
				}
				// ALS converges linearly; 1e-9 is far below any real fit
				// and far above float64 round-off in these sums.
				if res.RelError > 1e-9 {
					t.Fatalf("rel error %g after %d sweeps, want ≤ 1e-9", res.RelError, res.Iterations)
				}
				checkCPShapes(t, res, c.shape, c.rank)
			})
			t.Run(fmt.Sprintf("%s/%v/f32", b.Name(), c.shape), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(21, uint64(len(c.shape))))
				x := lowRankCP[float32](rng, c.shape, c.rank)
				res, err := CPALS(context.Background(), b, x, CPOptions{Rank: c.rank, MaxIter: 300, Tol: 1e-9}, nil)
				if err != nil {
					t.Fatal(err)
				}
				// float32 data and arithmetic: a few hundred ulps.
				if res.RelError > 2e-5 {
					t.Fatalf("rel error %g after %d sweeps, want ≤ 2e-5", res.RelError, res.Iterations)
				}
				checkCPShapes(t, res, c.shape, c.rank)
			})
		}
	}
}

func checkCPShapes[T Float](t *testing.T, res *CPResult[T], shape []int, r int) {
	t.Helper()
	if len(res.Weights) != r || len(res.Factors) != len(shape) {
		t.Fatalf("%d weights and %d factors, want %d and %d", len(res.Weights), len(res.Factors), r, len(shape))
	}
	for k, f := range res.Factors {
		if f.Rows != shape[k] || f.Cols != r {
			t.Fatalf("factor %d is %d×%d, want %d×%d", k, f.Rows, f.Cols, shape[k], r)
		}
		for _, v := range f.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("factor %d holds %v", k, v)
			}
		}
	}
	for _, v := range res.RelErrors {
		if math.IsNaN(v) {
			t.Fatal("NaN relative error")
		}
	}
	want := int64(r)
	for _, d := range shape {
		want += int64(d * r)
	}
	if res.ParamsFactors != want {
		t.Fatalf("ParamsFactors %d, want %d", res.ParamsFactors, want)
	}
}

// TestCPMonotone checks that plain ALS never increases the error and that
// the fast error formula matches an explicit reconstruction.
func TestCPMonotone(t *testing.T) {
	for _, b := range linalg.Backends(2) {
		for _, shape := range [][]int{{9, 8, 7}, {10, 9, 3, 3}, {5, 4, 3, 2, 2}} {
			for _, init := range []string{InitSVD, InitRandom} {
				rng := rand.New(rand.NewPCG(31, 32))
				x := lowRankCP[float64](rng, shape, 4)
				addNoise(rng, x, 0.3)
				var seen []Progress
				res, err := CPALS(context.Background(), b, x, CPOptions{Rank: 3, MaxIter: 30, Init: init, Seed: 5}, func(p Progress) { seen = append(seen, p) })
				if err != nil {
					t.Fatal(err)
				}
				if res.Iterations != 30 || len(res.RelErrors) != 30 || len(seen) != 30 || res.Converged {
					t.Fatalf("%v: %d iterations, %d errors, %d progress calls, converged %v", shape, res.Iterations, len(res.RelErrors), len(seen), res.Converged)
				}
				for i := 1; i < len(res.RelErrors); i++ {
					// ALS cannot increase the error; the fast formula's
					// rounding is ~1e-16·‖X‖²/‖X−X̂‖² in relative terms.
					if res.RelErrors[i] > res.RelErrors[i-1]*(1+1e-10) {
						t.Fatalf("%s %v %s: error rose at sweep %d: %g → %g", b.Name(), shape, init, i+1, res.RelErrors[i-1], res.RelErrors[i])
					}
					if seen[i].Iteration != i+1 || seen[i].RelError != res.RelErrors[i] {
						t.Fatalf("progress %d is %+v", i, seen[i])
					}
				}
				last := res.RelErrors[len(res.RelErrors)-1]
				explicit := explicitCPError(x, res)
				if math.Abs(last-explicit) > 1e-10 || math.Abs(res.RelError-explicit) > 1e-12 {
					t.Fatalf("%v: fast error %g, reported %g, explicit %g", shape, last, res.RelError, explicit)
				}
			}
		}
	}
}

// explicitCPError reconstructs the CP tensor by its definition.
func explicitCPError[T Float](x *Dense[T], res *CPResult[T]) float64 {
	lambda := make([]float64, len(res.Weights))
	for i, w := range res.Weights {
		lambda[i] = float64(w)
	}
	hat := cpTensor(x.Shape, res.Factors, lambda)
	var d2 float64
	for i := range x.Data {
		d := float64(x.Data[i]) - float64(hat.Data[i])
		d2 += d * d
	}
	return math.Sqrt(d2) / x.Norm()
}

func TestCPParallelSerialAndSeeds(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 42))
	x := lowRankCP[float32](rng, []int{16, 12, 3, 3}, 5)
	addNoise(rng, x, 0.1)
	opts := CPOptions{Rank: 6, MaxIter: 15, Init: InitRandom, Seed: 9}
	for _, b := range linalg.Backends(2) {
		serial, err := CPALS(context.Background(), b.WithThreads(1), x, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		par, err := CPALS(context.Background(), b.WithThreads(2), x, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		again, err := CPALS(context.Background(), b.WithThreads(2), x, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The thread count only changes the order of float32 sums inside the
		// BLAS: agreement to 1e-3 over 15 sweeps of a well-posed fit.
		if d := math.Abs(serial.RelError - par.RelError); d > 1e-4 {
			t.Fatalf("%s: serial error %g, parallel %g", b.Name(), serial.RelError, par.RelError)
		}
		for k := range par.Factors {
			assertClose(t, fmt.Sprintf("%s factor %d serial vs parallel", b.Name(), k), par.Factors[k].Data, serial.Factors[k].Data, 1e-3)
			for i, v := range par.Factors[k].Data {
				if again.Factors[k].Data[i] != v {
					t.Fatalf("%s: same seed, different bits in factor %d", b.Name(), k)
				}
			}
		}
	}
}

// TestCPRankAboveModeSize is the memory-safe svd init: rank 8 on 3×3 modes.
func TestCPRankAboveModeSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	x := randDense[float64](rng, 6, 5, 3, 3)
	for _, l2 := range []float64{0, 1e-3} {
		res, err := CPALS(context.Background(), linalg.Default(2), x, CPOptions{Rank: 8, MaxIter: 10, L2: l2}, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkCPShapes(t, res, x.Shape, 8)
	}
	// Rank far above every mode: the normal equations are singular and the
	// pseudo-inverse must keep NaN out.
	res, err := CPALS(context.Background(), linalg.Default(2), randDense[float64](rng, 2, 2, 2), CPOptions{Rank: 12, MaxIter: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkCPShapes(t, res, []int{2, 2, 2}, 12)
	if res.RelError > 1e-6 {
		t.Fatalf("rank 12 on a 2×2×2 tensor: rel error %g", res.RelError)
	}
}

func TestCPLineSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 62))
	x := lowRankCP[float64](rng, []int{10, 9, 8}, 5)
	addNoise(rng, x, 0.01)
	plain, err := CPALS(context.Background(), linalg.Default(2), x, CPOptions{Rank: 5, MaxIter: 25, Init: InitRandom, Seed: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := CPALS(context.Background(), linalg.Default(2), x, CPOptions{Rank: 5, MaxIter: 25, Init: InitRandom, Seed: 3, LineSearch: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkCPShapes(t, ls, x.Shape, 5)
	if math.Abs(ls.RelError-explicitCPError(x, ls)) > 1e-12 {
		t.Fatalf("line search result: reported error %g, explicit %g", ls.RelError, explicitCPError(x, ls))
	}
	// Extrapolation is only accepted when it lowers the error.
	if ls.RelError > plain.RelError*1.05 {
		t.Fatalf("line search error %g well above plain ALS %g", ls.RelError, plain.RelError)
	}
}

func TestCPGivenInitAndZero(t *testing.T) {
	rng := rand.New(rand.NewPCG(71, 72))
	shape := []int{4, 3, 2}
	x := lowRankCP[float64](rng, shape, 2)
	given := make([][]float64, 3)
	for k, d := range shape {
		given[k] = randMatrix[float64](rng, d, 2).Data
	}
	res, err := CPALS(context.Background(), linalg.Default(1), x, CPOptions{Rank: 2, MaxIter: 0, Init: InitGiven, InitFactors: given}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Iterations != 0 || math.Abs(res.RelError-explicitCPError(x, res)) > 1e-12 {
		t.Fatalf("MaxIter 0: %d iterations, error %g vs explicit %g", res.Iterations, res.RelError, explicitCPError(x, res))
	}
	zero := NewDense[float32](3, 3, 3)
	res32, err := CPALS(context.Background(), linalg.Default(1), zero, CPOptions{Rank: 2, MaxIter: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res32.RelError != 0 || res32.Weights[0] != 0 {
		t.Fatalf("zero tensor: error %g, weights %v", res32.RelError, res32.Weights)
	}
}

func TestCPInvalid(t *testing.T) {
	x := randDense[float64](rand.New(rand.NewPCG(1, 1)), 3, 3, 3)
	nan := x.Clone()
	nan.Data[4] = math.NaN()
	cases := []struct {
		x     *Dense[float64]
		opts  CPOptions
		field string
	}{
		{x, CPOptions{Rank: 0, MaxIter: 1}, "rank"},
		{x, CPOptions{Rank: 2, MaxIter: -1}, "max_iter"},
		{x, CPOptions{Rank: 2, Tol: math.NaN()}, "tol"},
		{x, CPOptions{Rank: 2, L2: -1}, "l2"},
		{x, CPOptions{Rank: 2, Init: "hosvd"}, "init"},
		{x, CPOptions{Rank: 2, Init: InitGiven, InitFactors: [][]float64{{1}}}, "init_factors"},
		{x, CPOptions{Rank: 1, Init: InitGiven, InitFactors: [][]float64{{1, 2, 3}, {1, 2}, {1, 2, 3}}}, "init_factors[1]"},
		{nan, CPOptions{Rank: 2}, "tensor.data"},
		{&Dense[float64]{Shape: []int{3, 0}}, CPOptions{Rank: 2}, "tensor.shape[1]"},
		{&Dense[float64]{Shape: []int{3}, Data: []float64{1, 2, 3}}, CPOptions{Rank: 2}, "tensor.shape"},
	}
	for _, c := range cases {
		_, err := CPALS(context.Background(), linalg.Default(1), c.x, c.opts, nil)
		assertInvalid(t, err, c.field)
	}
}

func assertInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var le *lowrank.Error
	if !errors.As(err, &le) || le.Code != lowrank.EINVALID || le.Field != field {
		t.Fatalf("got %v (%#v), want EINVALID on %q", err, le, field)
	}
}

func TestCPCancel(t *testing.T) {
	rng := rand.New(rand.NewPCG(81, 82))
	x := randDense[float64](rng, 20, 20, 3, 3)
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := CPALS(ctx, linalg.Default(1), x, CPOptions{Rank: 4, MaxIter: 100}, func(Progress) {
		calls++
		if calls == 2 {
			cancel()
		}
	})
	if lowrank.ErrorCode(err) != lowrank.ECANCELED || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want ECANCELED wrapping context.Canceled", err)
	}
	if calls != 2 {
		t.Fatalf("%d sweeps ran after cancellation", calls-2)
	}
}

// TestCPTreeMatchesPlain runs the same fit through the dimension tree and
// through one plain MTTKRP per mode.
func TestCPTreeMatchesPlain(t *testing.T) {
	defer func(old int) { blockElems = old }(blockElems)
	rng := rand.New(rand.NewPCG(91, 92))
	for _, shape := range [][]int{{3, 5, 4}, {2, 4, 3, 3}, {3, 2, 2, 2, 2}, {3, 6}} {
		x := randDense[float64](rng, shape...)
		opts := CPOptions{Rank: 4, MaxIter: 8, Init: InitRandom, Seed: 1}
		blockElems = 1 << 18
		tree, err := CPALS(context.Background(), linalg.Default(2), x, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		blockElems = 2 // R > I₀ and a tiny block limit: no tree
		plain, err := CPALS(context.Background(), linalg.Default(2), x, opts, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Same algorithm, different summation order.
		assertClose(t, fmt.Sprintf("%v errors", shape), tree.RelErrors, plain.RelErrors, 1e-9)
	}
}

// TestCPSVDInitMemory: the svd init at a rank above the spatial modes'
// sizes allocates a small multiple of the input, never an unfolding's full
// SVD (TensorLy 0.9 asks for I₂²·8 bytes of Vᵀ here).
func TestCPSVDInitMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(191, 192))
	x := randDense[float64](rng, 96, 96, 3, 3)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	res, err := CPALS(context.Background(), linalg.Default(2), x, CPOptions{Rank: 24, MaxIter: 3}, nil)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	checkCPShapes(t, res, x.Shape, 24)
	input := uint64(8 * x.Len())
	// Workspace: the dimension tree's R·|X|/I₀ partials, Grams, blocks.
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %.1f MiB for a %.1f MiB input", float64(got)/(1<<20), float64(input)/(1<<20))
	if got > 4*input+8<<20 {
		t.Fatalf("allocated %d MiB for a %d MiB input", got>>20, input>>20)
	}
}
