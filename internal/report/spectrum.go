// Package report renders the figures that explain a result: for now the
// spectrum of a matrix with the rank a rule chose. It turns numbers into
// SVG or PNG bytes and knows nothing of jobs, storage or HTTP.
package report

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/lowrank/lowrank"
)

// Format is an output format of a figure.
type Format string

// The formats Write knows.
const (
	SVG Format = "svg"
	PNG Format = "png"
)

// Figure sizes in CSS pixels (1/96 inch): an SVG is drawn at that size in
// points × 0.75, a PNG has exactly that many pixels.
const (
	DefaultWidthPx  = 800
	DefaultHeightPx = 600
	maxSidePx       = 4096 // a PNG of 4096² RGBA pixels is 64 MiB in memory
	dpi             = 96
	// Above this many values the markers would merge into a band, so the
	// singular values are drawn as a line only.
	maxMarkers = 100
)

// SpectrumFigure is a figure of two stacked panels sharing the component
// axis k = 1…len(s): the singular values on a log scale, and the cumulative
// energy Σ_{i≤k} sᵢ² / total, each with the chosen rank marked by a
// vertical line.
type SpectrumFigure struct {
	values, energy *plot.Plot
}

// Spectrum returns the figure of the singular values s (descending, ≥ 0),
// of a matrix whose squared Frobenius norm is total, with rank components
// kept. total may exceed Σ sᵢ² when s holds only the leading values (a
// truncated SVD), so the energy curve then ends below 1; a total below
// Σ sᵢ² (rounding) or not finite is taken as Σ sᵢ². Zero singular values
// have no place on a log axis and are left out of the upper panel.
//
// s with a negative, NaN or infinite value, or rank outside [0, len(s)],
// give an EINVALID *lowrank.Error naming "s" or "rank".
func Spectrum(s []float64, total float64, rank int, title string) (*SpectrumFigure, error) {
	var sumSq float64
	for i, v := range s {
		if !(v >= 0) || math.IsInf(v, 1) {
			return nil, lowrank.Errorf(lowrank.EINVALID, "s", "value %d is %v, want finite and ≥ 0", i, v)
		}
		sumSq += v * v
	}
	if rank < 0 || rank > len(s) {
		return nil, lowrank.Errorf(lowrank.EINVALID, "rank", "%d is outside [0, %d]", rank, len(s))
	}
	if !(total >= sumSq) || math.IsInf(total, 1) {
		total = sumSq
	}
	n := len(s)
	xmax := float64(max(n, 1))

	values := plot.New()
	values.Title.Text = printable(title)
	values.Y.Label.Text = "singular value"
	values.X.Min, values.X.Max = 0, xmax
	pos := plotter.XYs{}
	lo, hi := math.Inf(1), 0.0
	for i, v := range s {
		if v > 0 {
			pos = append(pos, plotter.XY{X: float64(i + 1), Y: v})
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if len(pos) > 0 {
		line, err := plotter.NewLine(pos)
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		line.Color = color.RGBA{R: 31, G: 119, B: 180, A: 255}
		values.Add(line)
		if len(pos) <= maxMarkers {
			sc, err := plotter.NewScatter(pos)
			if err != nil {
				return nil, fmt.Errorf("report: %w", err)
			}
			sc.GlyphStyle.Color = line.Color
			sc.GlyphStyle.Radius = vg.Points(2)
			sc.GlyphStyle.Shape = draw.CircleGlyph{}
			values.Add(sc)
		}
		// A log axis needs a positive range that is not a point; a 25 %
		// margin keeps the extreme values off the frame.
		values.Y.Scale = plot.LogScale{}
		values.Y.Tick.Marker = logTicks{}
		values.Y.Min, values.Y.Max = lo/1.25, hi*1.25
	} else {
		values.Y.Min, values.Y.Max = 0, 1
	}

	energy := plot.New()
	energy.X.Label.Text = "component k"
	energy.Y.Label.Text = "cumulative energy"
	energy.X.Min, energy.X.Max = 0, xmax
	energy.Y.Min, energy.Y.Max = 0, 1.05
	cum := make(plotter.XYs, n+1)
	var acc float64
	for i, v := range s {
		acc += v * v
		cum[i+1] = plotter.XY{X: float64(i + 1), Y: ratio(acc, total)}
	}
	eline, err := plotter.NewLine(cum)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	eline.Color = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	energy.Add(eline)

	// The chosen rank: a vertical line in both panels, and in the lower
	// one the retained energy as a horizontal line.
	mark := draw.LineStyle{Color: color.RGBA{R: 214, G: 39, B: 40, A: 255}, Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}
	kept := cum[rank].Y
	values.Add(vline{x: float64(rank), style: mark})
	energy.Add(vline{x: float64(rank), style: mark}, hline{y: kept, style: mark})
	values.Legend.Add(fmt.Sprintf("rank %d of %d", rank, n), &plotter.Line{LineStyle: mark})
	values.Legend.Top = true
	energy.Legend.Add(fmt.Sprintf("%.4g %% of the energy kept", 100*kept), &plotter.Line{LineStyle: mark})
	energy.Legend.Top = false
	energy.Legend.YOffs = vg.Points(8)
	return &SpectrumFigure{values: values, energy: energy}, nil
}

// maxTitleRunes keeps a title on one line of the figure.
const maxTitleRunes = 120

// printable returns title without what XML cannot hold or a figure cannot
// show (control characters, invalid UTF-8), shortened to maxTitleRunes:
// titles carry user-chosen tensor names. Markup needs no care here, the
// SVG canvas escapes it.
func printable(title string) string {
	out := make([]rune, 0, min(len(title), maxTitleRunes))
	for _, r := range strings.ToValidUTF8(title, "\uFFFD") {
		if len(out) == maxTitleRunes {
			out[len(out)-1] = '…'
			break
		}
		if !unicode.IsPrint(r) {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}

// ratio is a/b, or 0 when b is 0 (a zero matrix has no energy to keep).
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return min(1, a/b)
}

// Write renders f in format at widthPx × heightPx CSS pixels to w. The
// same figure, format and size always give the same bytes. A size outside
// [1, 4096] or an unknown format is an EINVALID *lowrank.Error.
func (f *SpectrumFigure) Write(w io.Writer, format Format, widthPx, heightPx int) error {
	if widthPx < 1 || heightPx < 1 || widthPx > maxSidePx || heightPx > maxSidePx {
		return lowrank.Errorf(lowrank.EINVALID, "size", "%d×%d is outside 1…%d pixels a side", widthPx, heightPx, maxSidePx)
	}
	wl := vg.Length(widthPx) * vg.Inch / dpi
	hl := vg.Length(heightPx) * vg.Inch / dpi
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	}
	switch format {
	case SVG:
		c = vgsvg.New(wl, hl)
	case PNG:
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(wl, hl), vgimg.UseDPI(dpi))}
	default:
		return lowrank.Errorf(lowrank.EINVALID, "format", "%q is not one of svg, png", format)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(10), PadY: vg.Points(10)}
	plots := [][]*plot.Plot{{f.values}, {f.energy}}
	canvases := plot.Align(plots, tiles, dc)
	f.values.Draw(canvases[0][0])
	f.energy.Draw(canvases[1][0])
	if _, err := c.WriteTo(w); err != nil {
		return fmt.Errorf("report: writing the %s: %w", format, err)
	}
	return nil
}

// vline is a vertical line across a panel at data coordinate x.
type vline struct {
	x     float64
	style draw.LineStyle
}

func (l vline) Plot(c draw.Canvas, p *plot.Plot) {
	tx, _ := p.Transforms(&c)
	x := tx(l.x)
	c.StrokeLine2(l.style, x, c.Min.Y, x, c.Max.Y)
}

// hline is a horizontal line across a panel at data coordinate y.
type hline struct {
	y     float64
	style draw.LineStyle
}

func (l hline) Plot(c draw.Canvas, p *plot.Plot) {
	_, ty := p.Transforms(&c)
	y := ty(l.y)
	c.StrokeLine2(l.style, c.Min.X, y, c.Max.X, y)
}

// logTicks are gonum's log-axis ticks, which label only the powers of ten,
// with every tick labelled when the axis spans less than two decades (so
// that a narrow spectrum still has numbers on its axis).
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.LogTicks{Prec: -1}.Ticks(lo, hi)
	if hi < 100*lo {
		for i := range ts {
			if ts[i].Label == "" {
				ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', 3, 64)
			}
		}
	}
	return ts
}
