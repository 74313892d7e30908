package compress

import (
	"bytes"

	"github.com/lowrank/lowrank/internal/report"
)

// SpectrumPlot is the SpectrumSVG of internal/report: singular values on a
// log axis and cumulative energy, the rank marked, 640×420 pixels.
func SpectrumPlot(s []float64, total float64, rank int, title string) ([]byte, error) {
	fig, err := report.Spectrum(s, total, min(max(rank, 0), len(s)), title)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := fig.Write(&buf, report.SVG, 640, 420); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var _ SpectrumSVG = SpectrumPlot
