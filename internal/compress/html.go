package compress

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
)

// SpectrumSVG draws one spectrum as an SVG document: singular values s,
// total = ‖W‖_F² (for the cumulative energy), the chosen rank marked. It is
// the hook through which ReportHTML embeds plots; internal/report provides
// one.
type SpectrumSVG func(s []float64, total float64, rank int, title string) ([]byte, error)

// ReportHTML writes rep as an HTML page a person reads: the totals, one
// table row per layer and, when spectrum is not nil, each layer's spectra
// (analyses[i] of rep.Layers[i]; for tucker2 one plot per channel mode)
// with the chosen rank marked. The page is self-contained (inline SVG, no
// scripts).
func ReportHTML(w io.Writer, rep *Report, analyses []*Analysis, spectrum SpectrumSVG) error {
	type plot struct {
		Title string
		SVG   template.HTML
	}
	type row struct {
		ReportLayer
		Title      string
		Ratio      string
		Error      string
		Predicted  string
		Output     string
		MACsBefore string
		MACsAfter  string
		Plots      []plot
	}
	rows := make([]row, len(rep.Layers))
	for i := range rep.Layers {
		l := &rep.Layers[i]
		r := row{ReportLayer: *l, Title: layerTitle(l), Error: fmt.Sprintf("%.4f", l.RelError),
			Ratio: fmt.Sprintf("%.3f", float64(l.ParamsAfter)/float64(max(1, l.ParamsBefore))), Predicted: "–", Output: "–",
			MACsBefore: count(l.MACsBefore), MACsAfter: count(l.MACsAfter)}
		if l.PredictedRelError != nil {
			r.Predicted = fmt.Sprintf("%.4f", *l.PredictedRelError)
		}
		if l.OutputRelError != nil {
			r.Output = fmt.Sprintf("%.4f", *l.OutputRelError)
		}
		if spectrum != nil && i < len(analyses) && analyses[i] != nil {
			a := analyses[i]
			for k, s := range a.Spectra {
				rank := len(s)
				if k < len(l.Ranks) {
					rank = l.Ranks[k]
				}
				title := l.Name
				if len(a.Spectra) == 2 {
					title += []string{" (mode out)", " (mode in)"}[k]
				}
				svg, err := spectrum(s, a.NormSq, rank, title)
				if err != nil {
					return err
				}
				// An XML declaration has no place inside HTML.
				if i := bytes.Index(svg, []byte("<svg")); i > 0 {
					svg = svg[i:]
				}
				// The SVG comes from our own plotting code, which escapes
				// the titles (tensor names) it draws.
				r.Plots = append(r.Plots, plot{Title: title, SVG: template.HTML(svg)})
			}
		}
		rows[i] = r
	}
	t := rep.Totals
	data := map[string]any{
		"Report": rep, "Rows": rows, "Plots": spectrum != nil,
		"Ratio":      fmt.Sprintf("%.3f", float64(t.ParamsSelectedAfter)/float64(max(1, t.ParamsSelectedBefore))),
		"MACsBefore": count(t.MACsBefore), "MACsAfter": count(t.MACsAfter),
		"Global": fmt.Sprintf("%.4f", t.GlobalRelError), "RMS": fmt.Sprintf("%.4f", t.RMSRelError),
	}
	return reportPage.Execute(w, data)
}

// count prints a count with a unit prefix (0 as "–": unknown).
func count(n int64) string {
	switch {
	case n == 0:
		return "–"
	case n >= 1e9:
		return fmt.Sprintf("%.2f G", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2f M", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f k", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

var reportPage = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Lowrank compression report</title>
<style>
body{font-family:sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}.kept{color:#888}
figure{display:inline-block;margin:.5em}
</style></head><body>
<h1>Compression report</h1>
<p>Lowrank {{.Report.LowrankVersion}}. {{.Report.Totals.LayersFactored}} layers factored, {{.Report.Totals.LayersKept}} kept.</p>
<table>
<tr><th>Totals</th><th>before</th><th>after</th></tr>
<tr><td>parameters, checkpoint</td><td>{{.Report.Totals.ParamsCheckpointBefore}}</td><td>{{.Report.Totals.ParamsCheckpointAfter}}</td></tr>
<tr><td>parameters, selected layers</td><td>{{.Report.Totals.ParamsSelectedBefore}}</td><td>{{.Report.Totals.ParamsSelectedAfter}} ({{.Ratio}})</td></tr>
<tr><td>multiply-accumulates</td><td>{{.MACsBefore}}</td><td>{{.MACsAfter}}</td></tr>
<tr><td>relative weight error: global / RMS over layers</td><td></td><td>{{.Global}} / {{.RMS}}</td></tr>
</table>
<h2>Layers</h2>
<table>
<tr><th>layer</th><th>method</th><th>ranks</th><th>params before</th><th>params after</th><th>ratio</th><th>rel. error</th><th>predicted</th><th>output error</th><th>MACs before</th><th>MACs after</th><th>chosen by</th></tr>
{{range .Rows}}<tr{{if .Kept}} class="kept"{{end}}><td>{{.Name}}</td><td>{{.Method}}</td><td>{{if .Kept}}kept{{else}}{{.Ranks}}{{end}}</td><td>{{.ParamsBefore}}</td><td>{{.ParamsAfter}}</td><td>{{.Ratio}}</td><td>{{.Error}}</td><td>{{.Predicted}}</td><td>{{.Output}}</td><td>{{.MACsBefore}}</td><td>{{.MACsAfter}}</td><td>{{.By}}{{if .Note}}: {{.Note}}{{end}}</td></tr>
{{end}}</table>
{{with .Report.Skipped}}<h2>Skipped</h2>
<ul>{{range .}}<li>{{.Name}}: {{.Reason}}</li>{{end}}</ul>
{{end}}{{if .Plots}}<h2>Spectra</h2>
{{range .Rows}}<section><h3>{{.Title}}</h3>{{range .Plots}}<figure>{{.SVG}}<figcaption>{{.Title}}</figcaption></figure>{{end}}</section>
{{end}}{{else}}<p>No spectrum plots in this build.</p>{{end}}
</body></html>
`))
