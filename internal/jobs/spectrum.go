package jobs

import (
	"math"

	"github.com/lowrank/lowrank"
)

// Spectrum is the part of a finished svd or pca job that a spectrum figure
// shows: the singular values the result keeps and the energy they are a
// share of.
type Spectrum struct {
	// Values are the kept singular values, descending: S of svd,
	// singular_values of pca (those of the centred data).
	Values []float64
	// Total is the squared Frobenius norm of the decomposed matrix (the
	// centred data for pca), so Σ Values² / Total is the retained energy,
	// below 1 when the rank rule truncated.
	Total float64
	// Rank is the chosen rank, len(Values).
	Rank int
}

// spectrumFactors names, per method, the factor holding its singular values
// and the extra holding the share of ‖A‖_F² they retain.
var spectrumFactors = map[string]struct{ factor, share string }{
	"svd": {"S", "retained_energy"},
	"pca": {"singular_values", "explained_variance"},
}

// SpectrumFactor returns the name of the factor that holds method's
// singular values; ok is false for methods without a spectrum.
func SpectrumFactor(method string) (name string, ok bool) {
	f, ok := spectrumFactors[method]
	return f.factor, ok
}

// SpectrumOf returns the spectrum of a succeeded job of method with result
// res, whose singular values are the factor s (read from its bundle).
//
// The total energy is not stored; it follows from the retained share the
// result reports: ‖A‖_F² = Σ sᵢ² / share, with share the svd's
// retained_energy or the pca's explained_variance (both Σ sᵢ² / ‖A‖_F²).
// Dividing by the share directly avoids the cancellation of 1 − rel_error²
// when little energy is kept; rel_error is the fallback for results written
// without the extra.
func SpectrumOf(method string, res Result, s *Tensor) (*Spectrum, error) {
	f, ok := spectrumFactors[method]
	if !ok {
		return nil, lowrank.Errorf(lowrank.ENOTFOUND, "method", "%s jobs have no spectrum; svd and pca jobs do", method)
	}
	if s == nil || len(s.Shape) != 1 {
		return nil, lowrank.Errorf(lowrank.EINTERNAL, f.factor, "the %s factor is not a vector", f.factor)
	}
	sp := &Spectrum{Values: toF64(s)}
	sp.Rank = len(sp.Values)
	var kept float64
	for _, v := range sp.Values {
		kept += v * v
	}
	share, _ := res.Extras[f.share].(float64)
	switch {
	case share > 0 && share <= 1:
	case res.RelError >= 0 && res.RelError < 1:
		share = 1 - res.RelError*res.RelError
	default:
		share = 1
	}
	sp.Total = kept / share
	if math.IsNaN(sp.Total) || math.IsInf(sp.Total, 0) {
		sp.Total = kept
	}
	return sp, nil
}
