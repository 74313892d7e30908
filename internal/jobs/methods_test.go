package jobs_test

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/store"
)

// runJob submits an inline job, waits for it and returns its result and
// factors by name.
func runJob(t *testing.T, b *bundle, in *jobs.Tensor, method, params string) (jobs.Result, map[string]*jobs.Tensor) {
	t.Helper()
	ctx := context.Background()
	j, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: in, Method: method, Params: []byte(params)})
	if err != nil {
		t.Fatalf("%s %s: %v", method, params, err)
	}
	done := wait(t, b, j.ID, store.JobSucceeded)
	var res jobs.Result
	if err := json.Unmarshal(done.Result, &res); err != nil {
		t.Fatal(err)
	}
	blob, err := b.blobs.Open(ctx, done.BundleKey)
	if err != nil {
		t.Fatal(err)
	}
	defer blob.Close()
	fs := map[string]*jobs.Tensor{}
	for _, f := range res.Factors {
		x, err := b.codec.ReadTensor(blob, blob.Size(), f.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(x.F64) == 0 && len(x.F32) == 0 && x.Len() > 0 {
			t.Fatalf("factor %s empty", f.Name)
		}
		fs[f.Name] = x
	}
	return res, fs
}

func relDiff(a, b []float64) float64 {
	var d, n float64
	for i := range a {
		d += (a[i] - b[i]) * (a[i] - b[i])
		n += a[i] * a[i]
	}
	return math.Sqrt(d / n)
}

func TestCPJob(t *testing.T) {
	b := setup(t, nil)
	// An exact rank-2 tensor 4×5×3 from seeded factors: CP-ALS recovers it.
	rng := rand.New(rand.NewPCG(11, 12))
	shape := []int{4, 5, 3}
	const r = 2
	fac := make([][]float64, 3)
	for n, d := range shape {
		fac[n] = make([]float64, d*r)
		for i := range fac[n] {
			fac[n][i] = rng.NormFloat64()
		}
	}
	x := &jobs.Tensor{Shape: shape, DType: "float64", F64: make([]float64, 60)}
	for i := range 4 {
		for j := range 5 {
			for k := range 3 {
				for l := range r {
					x.F64[(i*5+j)*3+k] += fac[0][i*r+l] * fac[1][j*r+l] * fac[2][k*r+l]
				}
			}
		}
	}
	res, fs := runJob(t, b, x, "cp", `{"rank": 2, "max_iter": 100, "tol": 1e-12, "precision": "float64"}`)
	w, a, bb, c := fs["weights"].F64, fs["factor_0"].F64, fs["factor_1"].F64, fs["factor_2"].F64
	y := make([]float64, 60)
	for i := range 4 {
		for j := range 5 {
			for k := range 3 {
				for l := range r {
					y[(i*5+j)*3+k] += w[l] * a[i*r+l] * bb[j*r+l] * c[k*r+l]
				}
			}
		}
	}
	got := relDiff(x.F64, y)
	// ALS on an exact rank-2 tensor converges to it; 1e-6 leaves room for
	// the slow final approach of ALS, and the reported error must match the
	// reconstruction to rounding.
	if got > 1e-6 || math.Abs(got-res.RelError) > 1e-9 {
		t.Errorf("cp: residual %g, reported %g", got, res.RelError)
	}
	if res.Ranks[0] != 2 || res.ParamsFactors != int64(2+2*(4+5+3)) {
		t.Errorf("cp result %+v", res)
	}
}

func TestTuckerJob(t *testing.T) {
	b := setup(t, nil)
	x := randTensorShape([]int{5, 4, 3}, 13)
	res, fs := runJob(t, b, x, "tucker", `{"ranks": [3, 2, 2], "precision": "float64"}`)
	g, u0, u1, u2 := fs["core"], fs["factor_0"].F64, fs["factor_1"].F64, fs["factor_2"].F64
	if got := g.Shape; len(got) != 3 || got[0] != 3 || got[1] != 2 || got[2] != 2 {
		t.Fatalf("core shape %v", got)
	}
	y := make([]float64, 60)
	for i := range 5 {
		for j := range 4 {
			for k := range 3 {
				var v float64
				for p := range 3 {
					for q := range 2 {
						for s := range 2 {
							v += g.F64[(p*2+q)*2+s] * u0[i*3+p] * u1[j*2+q] * u2[k*2+s]
						}
					}
				}
				y[(i*4+j)*3+k] = v
			}
		}
	}
	// The reported error is ‖X − X̂‖/‖X‖ of this reconstruction; float64
	// rounding on 60 elements is far below 1e-10.
	if got := relDiff(x.F64, y); math.Abs(got-res.RelError) > 1e-10 || got >= 1 {
		t.Errorf("tucker: residual %g, reported %g", got, res.RelError)
	}
	if len(res.Ranks) != 3 || res.Ranks[0] != 3 {
		t.Errorf("tucker ranks %v", res.Ranks)
	}
}

func TestPCAJob(t *testing.T) {
	b := setup(t, nil)
	const samples, features, k = 20, 6, 3
	x := randTensorShape([]int{samples, features}, 14)
	res, fs := runJob(t, b, x, "pca", `{"n_components": 3, "precision": "float64"}`)
	comp, scores, mean := fs["components"].F64, fs["scores"].F64, fs["mean"].F64
	xc := make([]float64, samples*features)
	y := make([]float64, samples*features)
	for i := range samples {
		for j := range features {
			xc[i*features+j] = x.F64[i*features+j] - mean[j]
			for l := range k {
				y[i*features+j] += scores[i*k+l] * comp[l*features+j]
			}
		}
	}
	// Components are orthonormal rows (float64 rounding: 1e-12).
	for a := range k {
		for c := range k {
			var d float64
			for j := range features {
				d += comp[a*features+j] * comp[c*features+j]
			}
			if want := map[bool]float64{true: 1, false: 0}[a == c]; math.Abs(d-want) > 1e-12 {
				t.Errorf("components %d·%d = %g", a, c, d)
			}
		}
	}
	if got := relDiff(xc, y); math.Abs(got-res.RelError) > 1e-8 {
		t.Errorf("pca: residual of centred data %g, reported %g", got, res.RelError)
	}
	// A variance share picks the count.
	res, _ = runJob(t, b, x, "pca", `{"n_components": 0.5}`)
	if res.Ranks[0] < 1 || res.Ranks[0] > features || res.Extras["explained_variance"].(float64) < 0.5 {
		t.Errorf("pca 0.5: %+v", res)
	}
}

func TestSVDAlgorithms(t *testing.T) {
	b := setup(t, nil)
	x := randTensorShape([]int{40, 30}, 15)
	for _, alg := range []string{"full", "randomized", "block_krylov"} {
		res, fs := runJob(t, b, x, "svd", `{"rank": 5, "precision": "float64", "seed": 3, "algorithm": "`+alg+`"}`)
		u, s, vt := fs["U"].F64, fs["S"].F64, fs["Vt"].F64
		y := make([]float64, 40*30)
		for i := range 40 {
			for j := range 30 {
				for l := range 5 {
					y[i*30+j] += u[i*5+l] * s[l] * vt[l*30+j]
				}
			}
		}
		// The randomized estimate is exact up to the basis' rounding.
		if got := relDiff(x.F64, y); math.Abs(got-res.RelError) > 1e-8 {
			t.Errorf("%s: residual %g, reported %g", alg, got, res.RelError)
		}
		if res.Extras["algorithm"] != alg {
			t.Errorf("%s ran %v", alg, res.Extras["algorithm"])
		}
	}
	// An error target with output in float16.
	res, fs := runJob(t, b, x, "svd", `{"rel_error": 0.6, "output_dtype": "float16"}`)
	if res.RelError > 0.6 || fs["U"].DType != "float16" || res.Factors[0].DType != "float16" {
		t.Errorf("rel_error 0.6 / float16: %+v, dtype %s", res, fs["U"].DType)
	}
}

func randTensorShape(shape []int, seed uint64) *jobs.Tensor {
	rng := rand.New(rand.NewPCG(seed, 5))
	t := &jobs.Tensor{Shape: shape, DType: "float64"}
	t.F64 = make([]float64, t.Len())
	for i := range t.F64 {
		t.F64[i] = rng.NormFloat64()
	}
	return t
}
