//go:build !cmath

package compress

import "github.com/lowrank/lowrank"

// evbmfRank stands in for linalg.EVBMF until it is merged (build tag cmath).
func evbmfRank(s []float64, m, n int) (int, error) {
	return 0, lowrank.Errorf(lowrank.EUNSUPPORTED, "policy.rule.auto", "this build has no EVBMF")
}
