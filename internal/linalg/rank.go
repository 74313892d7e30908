package linalg

import (
	"math"

	"github.com/lowrank/lowrank"
)

// RankRule says how to choose a truncation rank k from a spectrum. Exactly
// one of Rank, Energy, RelError and Compression is set; Multiple optionally
// rounds the chosen rank up for hardware-friendly shapes.
//
// Every decomposition (SVD, PCA, each mode of Tucker) chooses its ranks
// through RankRule.Choose, so the rules mean the same everywhere.
type RankRule struct {
	// Rank keeps exactly Rank components.
	Rank int `json:"rank,omitempty"`
	// Energy keeps the smallest k with Σ_{i<k} σᵢ² ≥ Energy · Σ σᵢ², 0 < Energy ≤ 1.
	Energy float64 `json:"energy,omitempty"`
	// RelError keeps the smallest k with sqrt(Σ_{i≥k} σᵢ²) ≤ RelError · ‖A‖_F,
	// 0 ≤ RelError < 1 (Eckart–Young: the error of the best rank-k
	// approximation).
	RelError float64 `json:"rel_error,omitempty"`
	// Compression keeps the largest k whose factor parameter count is at most
	// Compression times the original parameter count, 0 < Compression ≤ 1.
	Compression float64 `json:"compression,omitempty"`
	// Multiple, when > 1, rounds k up to a multiple of it (capped at the
	// largest rank possible).
	Multiple int `json:"rank_multiple,omitempty"`
}

// Validate reports the first parameter of r that is out of range, as an
// EINVALID *lowrank.Error naming it.
func (r RankRule) Validate() error {
	set := 0
	if r.Rank != 0 {
		set++
		if r.Rank < 0 {
			return lowrank.Errorf(lowrank.EINVALID, "rank", "must be ≥ 1, got %d", r.Rank)
		}
	}
	if r.Energy != 0 {
		set++
		if !(r.Energy > 0 && r.Energy <= 1) {
			return lowrank.Errorf(lowrank.EINVALID, "energy", "must be in (0, 1], got %g", r.Energy)
		}
	}
	if r.RelError != 0 {
		set++
		if !(r.RelError > 0 && r.RelError < 1) {
			return lowrank.Errorf(lowrank.EINVALID, "rel_error", "must be in (0, 1), got %g", r.RelError)
		}
	}
	if r.Compression != 0 {
		set++
		if !(r.Compression > 0 && r.Compression <= 1) {
			return lowrank.Errorf(lowrank.EINVALID, "compression", "must be in (0, 1], got %g", r.Compression)
		}
	}
	if set != 1 {
		return lowrank.Errorf(lowrank.EINVALID, "rank", "give exactly one of rank, energy, rel_error, compression (got %d)", set)
	}
	if r.Multiple < 0 {
		return lowrank.Errorf(lowrank.EINVALID, "rank_multiple", "must be ≥ 1, got %d", r.Multiple)
	}
	return nil
}

// RankChoice is the outcome of a rank rule on one spectrum.
type RankChoice struct {
	Rank           int     `json:"rank"`
	RetainedEnergy float64 `json:"retained_energy"` // Σ_{i<k} σᵢ² / ‖A‖_F²
	RelError       float64 `json:"rel_error"`       // sqrt(Σ_{i≥k} σᵢ²) / ‖A‖_F
	ParamsOriginal int64   `json:"params_original"`
	ParamsFactors  int64   `json:"params_factors"`
}

// Choose applies r to the singular values sigma (decreasing, possibly only
// the leading ones) of a matrix whose squared Frobenius norm is normSq, with
// maxRank the largest rank allowed. paramsOf(k) is the number of parameters
// the factors hold at rank k and original the parameter count of the input;
// they serve the Compression rule and the counts reported.
//
// When sigma holds fewer than all singular values, the energy not in sigma
// is counted as discarded, so RetainedEnergy and RelError stay exact as long
// as normSq is exact.
func (r RankRule) Choose(sigma []float64, normSq float64, maxRank int, paramsOf func(k int) int64, original int64) (RankChoice, error) {
	if err := r.Validate(); err != nil {
		return RankChoice{}, err
	}
	if maxRank < 1 {
		return RankChoice{}, lowrank.Errorf(lowrank.EINVALID, "rank", "the input has an empty dimension")
	}
	maxRank = min(maxRank, max(len(sigma), 1))
	k := 0
	switch {
	case r.Rank > 0:
		if r.Rank > maxRank {
			return RankChoice{}, lowrank.Errorf(lowrank.EINVALID, "rank", "%d exceeds the largest possible rank %d", r.Rank, maxRank)
		}
		k = r.Rank
	case r.Energy > 0:
		k = maxRank
		var acc float64
		for i := 0; i < len(sigma) && i < maxRank; i++ {
			acc += sigma[i] * sigma[i]
			if acc >= r.Energy*normSq*(1-1e-12) {
				k = i + 1
				break
			}
		}
	case r.RelError > 0:
		k = maxRank
		tail := normSq
		for i := 0; i < len(sigma) && i < maxRank; i++ {
			tail -= sigma[i] * sigma[i]
			if math.Sqrt(max(tail, 0)) <= r.RelError*math.Sqrt(normSq) {
				k = i + 1
				break
			}
		}
	case r.Compression > 0:
		k = 0
		for c := 1; c <= maxRank; c++ {
			if float64(paramsOf(c)) > r.Compression*float64(original) {
				break
			}
			k = c
		}
		if k == 0 {
			return RankChoice{}, lowrank.Errorf(lowrank.EINVALID, "compression",
				"%g is below what rank 1 needs (%d of %d parameters)", r.Compression, paramsOf(1), original)
		}
	}
	if r.Multiple > 1 && k%r.Multiple != 0 {
		k = min(maxRank, (k/r.Multiple+1)*r.Multiple)
	}
	// The discarded energy is the σ beyond k, summed directly, plus what
	// normSq holds beyond all of sigma: no cancellation when sigma is
	// complete and normSq is its sum in this order.
	var kept, tail, all float64
	for i, v := range sigma {
		all += v * v
		if i < k {
			kept += v * v
		} else {
			tail += v * v
		}
	}
	ch := RankChoice{Rank: k, ParamsOriginal: original, ParamsFactors: paramsOf(k)}
	if normSq > 0 {
		ch.RetainedEnergy = min(1, kept/normSq)
		ch.RelError = math.Sqrt(min(1, (tail+max(0, normSq-all))/normSq))
	}
	return ch, nil
}
