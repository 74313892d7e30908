package jobs_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/jobs"
)

func TestSpectrumOfJobs(t *testing.T) {
	b := setup(t, nil)
	rng := rand.New(rand.NewPCG(5, 6))
	x := &jobs.Tensor{Shape: []int{12, 8}, DType: "float64", F64: make([]float64, 96)}
	for i := range x.F64 {
		x.F64[i] = rng.NormFloat64()
	}
	var normSq float64
	for _, v := range x.F64 {
		normSq += v * v
	}
	// The centred data's energy, for pca.
	var centred float64
	for j := range 8 {
		var mean float64
		for i := range 12 {
			mean += x.F64[i*8+j] / 12
		}
		for i := range 12 {
			d := x.F64[i*8+j] - mean
			centred += d * d
		}
	}
	for _, c := range []struct {
		method, params string
		rank           int
		total          float64
		tol            float64 // the float32 runs carry float32 rounding
	}{
		{"svd", `{"rank": 3, "algorithm": "full", "precision": "float64"}`, 3, normSq, 1e-12},
		{"svd", `{"rank": 8, "precision": "float64"}`, 8, normSq, 1e-12},
		{"svd", `{"energy": 0.5}`, -1, normSq, 1e-5},
		{"svd", `{"rank": 2, "algorithm": "randomized", "precision": "float64"}`, 2, normSq, 1e-12},
		{"pca", `{"n_components": 3, "precision": "float64"}`, 3, centred, 1e-12},
		{"pca", `{"n_components": 2}`, 2, centred, 1e-5},
	} {
		res, fs := runJob(t, b, x, c.method, c.params)
		name, ok := jobs.SpectrumFactor(c.method)
		if !ok {
			t.Fatalf("%s: no spectrum factor", c.method)
		}
		sp, err := jobs.SpectrumOf(c.method, res, fs[name])
		if err != nil {
			t.Fatalf("%s %s: %v", c.method, c.params, err)
		}
		if sp.Rank != res.Ranks[0] || len(sp.Values) != sp.Rank || (c.rank > 0 && sp.Rank != c.rank) {
			t.Errorf("%s %s: rank %d (%d values), result %d, want %d", c.method, c.params, sp.Rank, len(sp.Values), res.Ranks[0], c.rank)
		}
		if math.Abs(sp.Total-c.total) > c.tol*c.total {
			t.Errorf("%s %s: total %.15g, want %.15g", c.method, c.params, sp.Total, c.total)
		}
	}
}

func TestSpectrumOfFallbacks(t *testing.T) {
	s := &jobs.Tensor{Shape: []int{2}, DType: "float64", F64: []float64{3, 4}}
	for _, c := range []struct {
		name  string
		res   jobs.Result
		total float64
	}{
		{"share", jobs.Result{RelError: 0.9, Extras: map[string]any{"retained_energy": 0.5}}, 50},
		{"rel_error", jobs.Result{RelError: math.Sqrt(0.75)}, 100},
		{"nothing usable", jobs.Result{RelError: 1, Extras: map[string]any{"retained_energy": "x"}}, 25},
	} {
		sp, err := jobs.SpectrumOf("svd", c.res, s)
		if err != nil || math.Abs(sp.Total-c.total) > 1e-12*c.total || sp.Rank != 2 {
			t.Errorf("%s: %+v %v, want total %g", c.name, sp, err, c.total)
		}
	}
	zero := &jobs.Tensor{Shape: []int{1}, DType: "float32", F32: []float32{0}}
	if sp, err := jobs.SpectrumOf("svd", jobs.Result{Extras: map[string]any{"retained_energy": 0.0}}, zero); err != nil || sp.Total != 0 {
		t.Errorf("zero matrix: %+v %v", sp, err)
	}
	if _, ok := jobs.SpectrumFactor("cp"); ok {
		t.Errorf("cp has a spectrum factor")
	}
	_, err := jobs.SpectrumOf("tucker", jobs.Result{}, s)
	var e *lowrank.Error
	if !asError(err, &e) || e.Code != lowrank.ENOTFOUND {
		t.Errorf("tucker: %v, want ENOTFOUND", err)
	}
}
