package linalg

import (
	"errors"
	"math"
	"testing"

	"github.com/lowrank/lowrank"
)

func TestRankRuleChoose(t *testing.T) {
	// σ = 4, 3, 2, 1: energies 16, 9, 4, 1 of 30. A 10×10 matrix, so rank k
	// costs 10k + k + 10k = 21k parameters of 100.
	sigma := []float64{4, 3, 2, 1}
	params := func(k int) int64 { return svdParams(10, 10, k) }
	cases := []struct {
		name string
		rule RankRule
		want int
	}{
		{"rank", RankRule{Rank: 2}, 2},
		{"rank all", RankRule{Rank: 4}, 4},
		{"energy", RankRule{Energy: 0.8}, 2},                      // 25/30 ≥ 0.8 > 16/30
		{"energy exact boundary", RankRule{Energy: 16.0 / 30}, 1}, // ties keep the smaller rank
		{"energy all", RankRule{Energy: 1}, 4},
		{"rel_error", RankRule{RelError: 0.5}, 2}, // sqrt(5/30) = 0.41 ≤ 0.5 < sqrt(14/30)
		{"rel_error boundary", RankRule{RelError: math.Sqrt(5.0 / 30)}, 2},
		{"rel_error tiny", RankRule{RelError: 1e-9}, 4},
		{"compression", RankRule{Compression: 0.5}, 2}, // 42 ≤ 50 < 63
		{"compression one", RankRule{Compression: 0.21}, 1},
		{"multiple rounds up", RankRule{Rank: 3, Multiple: 2}, 4},
		{"multiple capped", RankRule{Rank: 3, Multiple: 8}, 4},
		{"multiple already", RankRule{Rank: 2, Multiple: 2}, 2},
		{"multiple energy", RankRule{Energy: 0.8, Multiple: 3}, 3},
		{"multiple one", RankRule{Rank: 3, Multiple: 1}, 3},
	}
	for _, c := range cases {
		ch, err := c.rule.Choose(sigma, 30, 4, params, 100)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if ch.Rank != c.want {
			t.Errorf("%s: rank %d, want %d", c.name, ch.Rank, c.want)
		}
		var kept float64
		for _, s := range sigma[:ch.Rank] {
			kept += s * s
		}
		if math.Abs(ch.RetainedEnergy-kept/30) > 1e-15 || math.Abs(ch.RelError-math.Sqrt(1-kept/30)) > 1e-15 {
			t.Errorf("%s: energy %g, error %g", c.name, ch.RetainedEnergy, ch.RelError)
		}
		if ch.ParamsOriginal != 100 || ch.ParamsFactors != int64(21*ch.Rank) {
			t.Errorf("%s: params %d of %d", c.name, ch.ParamsFactors, ch.ParamsOriginal)
		}
	}
}

func TestRankRuleChoosePartialSpectrum(t *testing.T) {
	// Only the two leading σ of four are known; ‖A‖_F² = 30 is exact, so
	// the energy not captured counts as discarded.
	params := func(k int) int64 { return svdParams(10, 10, k) }
	ch, err := RankRule{Energy: 0.9}.Choose([]float64{4, 3}, 30, 10, params, 100)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Rank != 2 || math.Abs(ch.RelError-math.Sqrt(5.0/30)) > 1e-15 {
		t.Errorf("rank %d error %g: want the captured rank 2 with the exact error", ch.Rank, ch.RelError)
	}
	// A zero matrix: every rule keeps one component and reports zeros.
	ch, err = RankRule{Energy: 0.5}.Choose([]float64{0, 0}, 0, 2, params, 100)
	if err != nil || ch.Rank != 1 || ch.RelError != 0 {
		t.Errorf("zero matrix: %+v %v", ch, err)
	}
}

func TestRankRuleErrors(t *testing.T) {
	sigma := []float64{4, 3, 2, 1}
	params := func(k int) int64 { return svdParams(10, 10, k) }
	cases := []struct {
		name    string
		rule    RankRule
		maxRank int
		field   string
	}{
		{"none", RankRule{}, 4, "rank"},
		{"two", RankRule{Rank: 2, Energy: 0.5}, 4, "rank"},
		{"negative rank", RankRule{Rank: -1}, 4, "rank"},
		{"rank above max", RankRule{Rank: 5}, 4, "rank"},
		{"energy above 1", RankRule{Energy: 1.5}, 4, "energy"},
		{"energy negative", RankRule{Energy: -0.1}, 4, "energy"},
		{"rel_error 1", RankRule{RelError: 1}, 4, "rel_error"},
		{"rel_error NaN", RankRule{RelError: math.NaN()}, 4, "rel_error"},
		{"compression above 1", RankRule{Compression: 2}, 4, "compression"},
		{"compression below rank 1", RankRule{Compression: 0.2}, 4, "compression"},
		{"multiple negative", RankRule{Rank: 1, Multiple: -2}, 4, "rank_multiple"},
		{"empty input", RankRule{Rank: 1}, 0, "rank"},
	}
	for _, c := range cases {
		_, err := c.rule.Choose(sigma, 30, c.maxRank, params, 100)
		var le *lowrank.Error
		if !errors.As(err, &le) || le.Code != lowrank.EINVALID || le.Field != c.field {
			t.Errorf("%s: got %v, want EINVALID on %q", c.name, err, c.field)
		}
	}
}

// Every rule through TruncatedSVD on a known spectrum, full and randomized.
func TestSVDRankRules(t *testing.T) {
	const m, n = 40, 30
	sigma := make([]float64, n)
	for i := range sigma {
		sigma[i] = math.Pow(0.7, float64(i))
	}
	var all float64
	for _, s := range sigma {
		all += s * s
	}
	b := NewGonum(2)
	a := testMatrix(b, 13, m, n, n, sigma)
	rules := []RankRule{
		{Rank: 7}, {Energy: 0.99}, {RelError: 0.05}, {Compression: 0.3}, {Rank: 5, Multiple: 4}, {Energy: 0.9, Multiple: 8},
	}
	for _, rule := range rules {
		want, err := rule.Choose(sigma, all, n, func(k int) int64 { return svdParams(m, n, k) }, m*n)
		if err != nil {
			t.Fatal(err)
		}
		for _, alg := range []SVDAlgorithm{SVDFull, SVDRandomized} {
			r, err := TruncatedSVD(t.Context(), b, m, n, a, n, SVDOptions{Rule: rule, Algorithm: alg, Seed: 1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.K != want.Rank {
				t.Errorf("%+v %s: rank %d, want %d", rule, alg, r.K, want.Rank)
			}
			if math.Abs(r.Choice.RelError-want.RelError) > 1e-9 || r.Choice.ParamsFactors != want.ParamsFactors {
				t.Errorf("%+v %s: choice %+v, want %+v", rule, alg, r.Choice, want)
			}
		}
	}
}
