package linalg

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"

	"github.com/lowrank/lowrank"
)

// A 5×3 case whose expected values were computed with scikit-learn
// (PCA(n_components=2, svd_solver="full")) and checked by hand:
// explained_variance_ = S²/(n−1), noise_variance_ = the one discarded
// variance, transform = (X − mean)·componentsᵀ, whitened transform divided by
// √explained_variance_.
var (
	skX = []float64{
		2, 0, 1,
		1, 3, -1,
		4, 1, 0,
		0, 2, 2,
		3, -1, 1,
	}
	skMean = []float64{2, 1, 0.6}
	// Row signs follow the largest-magnitude-positive rule.
	skComponents = []float64{
		-0.690216016446354, 0.720027295975697, -0.071850843355188,
		-0.505908942474701, -0.409187364171819, 0.759356202928671,
	}
	skSingular  = []float64{4.006363594711255, 2.854654225466249}
	skVariance  = []float64{4.012737313256922, 2.037262686743078}
	skRatio     = []float64{0.636942430675702, 0.323375029641758}
	skNoise     = 0.25
	skScores    = []float64{-0.748767633317773, 0.712929845343288, 2.24523195776605, -1.52743571055481, -1.337321526879596, -1.467431606706605, 1.999868148171143, 1.665729204877722, -2.159010945739825, 0.616208267040405}
	skWhitened0 = []float64{-0.373789155984849, 0.499485954539272} // first row
)

func near(t *testing.T, what string, got []float64, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: len %d, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > tol {
			t.Fatalf("%s[%d] = %.15g, want %.15g", what, i, got[i], want[i])
		}
	}
}

func TestPCAScikitLearnConventions(t *testing.T) {
	for _, b := range Backends(2) {
		for _, solver := range []PCASolver{PCAFull, PCACovarianceEigh, PCARandomized, PCAAuto} {
			t.Run(fmt.Sprintf("%s/%s", b.Name(), solver), func(t *testing.T) {
				// lda = 3 + 3: padded rows filled with NaN must be ignored.
				x := make([]float64, 5*6)
				for i := range x {
					x[i] = math.NaN()
				}
				for i := range 5 {
					copy(x[i*6:i*6+3], skX[i*3:i*3+3])
				}
				r, err := PCA(context.Background(), b, 5, 3, x, 6, PCAOptions{Components: 2, Solver: solver, Seed: 1}, nil)
				if err != nil {
					t.Fatal(err)
				}
				// Double rounding on a 5×3 problem: 1e-12 is generous.
				// The randomized solver's Gram-based sketch SVD squares
				// κ = 1.4, still far inside it.
				const tol = 1e-12
				if r.K != 2 {
					t.Fatalf("K = %d", r.K)
				}
				near(t, "mean", r.Mean, skMean, tol)
				near(t, "components", r.Components, skComponents, tol)
				near(t, "singular values", r.SingularValues, skSingular, tol)
				near(t, "explained variance", r.ExplainedVariance, skVariance, tol)
				near(t, "ratio", r.ExplainedVarianceRatio, skRatio, tol)
				near(t, "scores", r.Scores, skScores, tol)
				if math.Abs(r.NoiseVariance-skNoise) > tol {
					t.Errorf("noise variance %g", r.NoiseVariance)
				}
				w, err := PCA(context.Background(), b, 5, 3, x, 6, PCAOptions{Components: 2, Solver: solver, Whiten: true, Seed: 1}, nil)
				if err != nil {
					t.Fatal(err)
				}
				near(t, "whitened scores", w.Scores[:2], skWhitened0, tol)
				near(t, "whitened components", w.Components, skComponents, tol)
			})
		}
		// n_components = 0.9: ratios 0.637, 0.960 → 2 components.
		r, err := PCA(context.Background(), b, 5, 3, skX, 3, PCAOptions{VarianceFraction: 0.9}, nil)
		if err != nil || r.K != 2 {
			t.Fatalf("fraction 0.9: K = %v, %v", r, err)
		}
		r, err = PCA(context.Background(), b, 5, 3, skX, 3, PCAOptions{VarianceFraction: 0.5}, nil)
		if err != nil || r.K != 1 {
			t.Fatalf("fraction 0.5: %v", err)
		}
		r, err = PCA(context.Background(), b, 5, 3, skX, 3, PCAOptions{}, nil)
		if err != nil || r.K != 3 || r.NoiseVariance != 0 {
			t.Fatalf("all components: %v", err)
		}
	}
}

func TestPCAAgainstGonumStat(t *testing.T) {
	const n, f = 60, 7
	x := gaussianMatrix(21, n, f, f)
	// Correlate the features so the spectrum is not flat.
	for i := range n {
		x[i*f+1] += 2 * x[i*f]
		x[i*f+4] -= x[i*f+2]
	}
	var pc stat.PC
	if !pc.PrincipalComponents(mat.NewDense(n, f, x), nil) {
		t.Fatal("stat.PC failed")
	}
	var vecs mat.Dense
	pc.VectorsTo(&vecs)
	vars := pc.VarsTo(nil)
	for _, b := range Backends(2) {
		for _, solver := range []PCASolver{PCAFull, PCACovarianceEigh, PCARandomized} {
			r, err := PCA(context.Background(), b, n, f, x, f, PCAOptions{Solver: solver, Components: 5, Seed: 3}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for j := range 5 {
				// Variances: ddof = 1 in both.
				if math.Abs(r.ExplainedVariance[j]-vars[j]) > 1e-10*vars[0] {
					t.Errorf("%s %s: variance %d = %g, stat.PC %g", b.Name(), solver, j, r.ExplainedVariance[j], vars[j])
				}
				// Axes agree up to sign: |⟨ours, theirs⟩| = 1.
				var dot float64
				for i := range f {
					dot += r.Components[j*f+i] * vecs.At(i, j)
				}
				if math.Abs(math.Abs(dot)-1) > 1e-9 {
					t.Errorf("%s %s: axis %d: |cos| = %g", b.Name(), solver, j, math.Abs(dot))
				}
			}
		}
	}
}

func TestPCASolversAgree(t *testing.T) {
	// 320 samples × 270 features of rank-8 signal plus small noise: auto
	// takes the SVD path (samples < 10·features) and, with p > 256 and
	// 8 + 10 ≤ 67, block Krylov; every solver finds the same axes.
	const n, f, k = 320, 270, 8
	b := NewGonum(2)
	sigma := make([]float64, f)
	for i := range sigma {
		sigma[i] = 1e-3
		if i < k {
			sigma[i] = float64(20 - i)
		}
	}
	x := testMatrix(b, 17, n, f, f, sigma)
	x32 := toF32(x)
	ref, err := PCA(context.Background(), b, n, f, x, f, PCAOptions{Components: k, Solver: PCAFull}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, solver := range []PCASolver{PCAAuto, PCARandomized, PCACovarianceEigh} {
		r, err := PCA(context.Background(), b, n, f, x32, f, PCAOptions{Components: k, Solver: solver, Seed: 5}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if solver == PCAAuto && (r.Solver != PCARandomized || r.Algorithm != SVDBlockKrylov) {
			t.Errorf("auto ran %s/%s", r.Solver, r.Algorithm)
		}
		// float32 data: components agree to ~1e-4 (ε₃₂ · σ₁/gap with a
		// gap of 1 between consecutive σ of 20, 19, …).
		for i := range ref.Components {
			if math.Abs(float64(r.Components[i])-ref.Components[i]) > 2e-4 {
				t.Fatalf("%s: component entry %d = %g, full f64 %g", solver, i, r.Components[i], ref.Components[i])
			}
		}
		for j := range k {
			if rel := math.Abs(float64(r.ExplainedVariance[j])/ref.ExplainedVariance[j] - 1); rel > 1e-5 {
				t.Errorf("%s: variance %d off by %g", solver, j, rel)
			}
		}
	}
	// Whitened scores have unit variance per column.
	w, err := PCA(context.Background(), b, n, f, x, f, PCAOptions{Components: k, Whiten: true, Solver: PCACovarianceEigh}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for j := range k {
		var ss float64
		for i := range n {
			ss += w.Scores[i*k+j] * w.Scores[i*k+j]
		}
		if v := ss / (n - 1); math.Abs(v-1) > 1e-10 {
			t.Errorf("whitened column %d has variance %g", j, v)
		}
	}
}

func TestPCABadInput(t *testing.T) {
	b := NewGonum(1)
	nan := append([]float64(nil), skX...)
	nan[4] = math.NaN()
	cases := []struct {
		name  string
		m     int
		x     []float64
		opts  PCAOptions
		field string
	}{
		{"one sample", 1, skX[:3], PCAOptions{}, "tensor"},
		{"nan", 5, nan, PCAOptions{}, "tensor"},
		{"too many components", 5, skX, PCAOptions{Components: 4}, "n_components"},
		{"negative components", 5, skX, PCAOptions{Components: -1}, "n_components"},
		{"fraction above 1", 5, skX, PCAOptions{VarianceFraction: 1.5}, "n_components"},
		{"both", 5, skX, PCAOptions{Components: 1, VarianceFraction: 0.5}, "n_components"},
		{"solver", 5, skX, PCAOptions{Solver: "qr"}, "solver"},
	}
	for _, c := range cases {
		_, err := PCA(context.Background(), b, c.m, 3, c.x, 3, c.opts, nil)
		var le *lowrank.Error
		if !errors.As(err, &le) || le.Code != lowrank.EINVALID || le.Field != c.field {
			t.Errorf("%s: got %v, want EINVALID on %q", c.name, err, c.field)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := PCA(ctx, b, 5, 3, skX, 3, PCAOptions{}, nil); lowrank.ErrorCode(err) != lowrank.ECANCELED {
		t.Errorf("canceled: %v", err)
	}
}
