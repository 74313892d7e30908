package compress

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/linalg"
)

// TestReportHTMLPlots renders the report of the synthetic checkpoint with
// internal/report's plots: one per svd layer, two per tucker2 layer, each
// inline SVG that parses as XML, and no XML declaration inside the HTML.
func TestReportHTMLPlots(t *testing.T) {
	_, _, o := runSynth(t, linalg.Default(2), 2, synthPolicy())
	var page bytes.Buffer
	if err := ReportHTML(&page, o.Report, o.Analyses, SpectrumPlot); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	want := 0
	for _, a := range o.Analyses {
		want += len(a.Spectra)
	}
	if n := strings.Count(html, "<svg"); n != want || strings.Contains(html, "<?xml") {
		t.Fatalf("%d inline SVGs (want %d), XML declaration present: %v", n, want, strings.Contains(html, "<?xml"))
	}
	for rest := html; ; {
		i := strings.Index(rest, "<svg")
		if i < 0 {
			break
		}
		j := strings.Index(rest[i:], "</svg>")
		if j < 0 {
			t.Fatal("unterminated <svg>")
		}
		dec := xml.NewDecoder(strings.NewReader(rest[i : i+j+len("</svg>")]))
		for {
			if _, err := dec.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("inline SVG does not parse: %v", err)
			}
		}
		rest = rest[i+j:]
	}
}
