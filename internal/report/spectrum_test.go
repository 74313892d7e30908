package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/lowrank/lowrank"
)

// decaying returns n singular values 10·0.8^i.
func decaying(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = 10 * math.Pow(0.8, float64(i))
	}
	return s
}

func sumSq(s []float64) float64 {
	var t float64
	for _, v := range s {
		t += v * v
	}
	return t
}

var spectrumCases = []struct {
	name  string
	s     []float64
	total float64
	rank  int
}{
	{"decaying", decaying(20), sumSq(decaying(20)), 5},
	{"truncated svd", decaying(8), 2 * sumSq(decaying(8)), 8},
	{"rank 0", decaying(5), sumSq(decaying(5)), 0},
	{"one value", []float64{3}, 9, 1},
	{"flat", []float64{2, 2, 2, 2}, 16, 2},
	{"trailing zeros", []float64{5, 1, 0, 0}, 26, 2},
	{"all zero", []float64{0, 0, 0}, 0, 0},
	{"empty", nil, 0, 0},
	{"wide range", []float64{1e12, 1, 1e-12}, 1e24 + 1, 1},
	{"many values", decaying(2000), sumSq(decaying(2000)), 40},
	{"total below sum", []float64{3, 4}, 24, 1},
	{"total NaN", []float64{3, 4}, math.NaN(), 1},
}

func render(t *testing.T, f *SpectrumFigure, format Format, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.Write(&buf, format, w, h); err != nil {
		t.Fatalf("%s: %v", format, err)
	}
	return buf.Bytes()
}

func TestSpectrumSVG(t *testing.T) {
	for _, c := range spectrumCases {
		t.Run(c.name, func(t *testing.T) {
			f, err := Spectrum(c.s, c.total, c.rank, "layer "+c.name)
			if err != nil {
				t.Fatal(err)
			}
			out := render(t, f, SVG, DefaultWidthPx, DefaultHeightPx)
			dec := xml.NewDecoder(bytes.NewReader(out))
			var root string
			for {
				tok, err := dec.Token()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("SVG does not parse as XML: %v", err)
				}
				if se, ok := tok.(xml.StartElement); ok && root == "" {
					root = se.Name.Local
					// 800 CSS pixels are 600 points.
					for _, a := range se.Attr {
						if (a.Name.Local == "width" && a.Value != "600pt") || (a.Name.Local == "height" && a.Value != "450pt") {
							t.Errorf("%s = %q, want 600pt × 450pt", a.Name.Local, a.Value)
						}
					}
				}
			}
			if root != "svg" {
				t.Errorf("root element %q, want svg", root)
			}
			text := string(out)
			for _, want := range []string{"layer " + c.name, "singular value", "cumulative energy"} {
				if !strings.Contains(text, want) {
					t.Errorf("SVG lacks %q", want)
				}
			}
			if want := fmt.Sprintf("rank %d of %d", c.rank, len(c.s)); !strings.Contains(text, want) {
				t.Errorf("SVG lacks the rank legend %q", want)
			}
		})
	}
}

func TestSpectrumPNG(t *testing.T) {
	for _, size := range [][2]int{{DefaultWidthPx, DefaultHeightPx}, {321, 203}, {1, 1}} {
		f, err := Spectrum(decaying(30), sumSq(decaying(30)), 7, "png")
		if err != nil {
			t.Fatal(err)
		}
		out := render(t, f, PNG, size[0], size[1])
		img, err := png.Decode(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("%v: PNG does not decode: %v", size, err)
		}
		if b := img.Bounds(); b != image.Rect(0, 0, size[0], size[1]) {
			t.Errorf("PNG bounds %v, want %dx%d", b, size[0], size[1])
		}
	}
}

func TestSpectrumDeterministic(t *testing.T) {
	// The same input gives the same bytes: from one figure written twice
	// and from two figures built separately.
	for _, format := range []Format{SVG, PNG} {
		for _, c := range spectrumCases[:4] {
			f1, err := Spectrum(c.s, c.total, c.rank, c.name)
			if err != nil {
				t.Fatal(err)
			}
			f2, err := Spectrum(c.s, c.total, c.rank, c.name)
			if err != nil {
				t.Fatal(err)
			}
			a := render(t, f1, format, 640, 480)
			b := render(t, f1, format, 640, 480)
			d := render(t, f2, format, 640, 480)
			if !bytes.Equal(a, b) || !bytes.Equal(a, d) {
				t.Errorf("%s %s: output differs between renderings", format, c.name)
			}
		}
	}
	// A different rank is a different figure.
	f1, _ := Spectrum(decaying(10), sumSq(decaying(10)), 3, "x")
	f2, _ := Spectrum(decaying(10), sumSq(decaying(10)), 4, "x")
	if bytes.Equal(render(t, f1, SVG, 640, 480), render(t, f2, SVG, 640, 480)) {
		t.Errorf("rank 3 and rank 4 render the same SVG")
	}
}

func TestSpectrumBadInput(t *testing.T) {
	for _, c := range []struct {
		name  string
		s     []float64
		rank  int
		field string
	}{
		{"negative", []float64{3, -1}, 1, "s"},
		{"NaN", []float64{math.NaN()}, 0, "s"},
		{"Inf", []float64{math.Inf(1), 1}, 1, "s"},
		{"rank negative", []float64{3, 1}, -1, "rank"},
		{"rank too large", []float64{3, 1}, 3, "rank"},
		{"rank of empty", nil, 1, "rank"},
	} {
		f, err := Spectrum(c.s, 10, c.rank, "")
		var e *lowrank.Error
		if !errors.As(err, &e) || e.Code != lowrank.EINVALID || e.Field != c.field || f != nil {
			t.Errorf("%s: %v, want EINVALID on %q", c.name, err, c.field)
		}
	}
	f, err := Spectrum([]float64{1}, 1, 1, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		format Format
		w, h   int
		field  string
	}{
		{SVG, 0, 100, "size"},
		{PNG, 100, -1, "size"},
		{PNG, 5000, 100, "size"},
		{"pdf", 100, 100, "format"},
	} {
		err := f.Write(io.Discard, c.format, c.w, c.h)
		var e *lowrank.Error
		if !errors.As(err, &e) || e.Code != lowrank.EINVALID || e.Field != c.field {
			t.Errorf("%s %d×%d: %v, want EINVALID on %q", c.format, c.w, c.h, err, c.field)
		}
	}
}

func TestSpectrumHostileTitle(t *testing.T) {
	// Titles carry user-chosen tensor names: markup must come out escaped,
	// and control characters or invalid UTF-8 must not break the XML.
	title := "<script>alert(1)</script> & \"q\" \x01\x7f\xff\xfe" + strings.Repeat("long ", 100)
	f, err := Spectrum(decaying(4), sumSq(decaying(4)), 2, title)
	if err != nil {
		t.Fatal(err)
	}
	out := render(t, f, SVG, 400, 300)
	dec := xml.NewDecoder(bytes.NewReader(out))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG does not parse: %v", err)
		}
	}
	if bytes.Contains(out, []byte("<script")) || !bytes.Contains(out, []byte("&lt;script&gt;")) {
		t.Errorf("the title's markup is not escaped")
	}
	if got := printable(title); len([]rune(got)) != maxTitleRunes || !strings.HasSuffix(got, "…") {
		t.Errorf("long title: %d runes %q", len([]rune(got)), got)
	}
	if got := printable("a\tb\x00c"); got != "a b c" {
		t.Errorf("printable: %q", got)
	}
}
