package report_test

import (
	"bytes"
	"fmt"

	"github.com/lowrank/lowrank/internal/report"
)

func ExampleSpectrum() {
	// The leading 4 singular values of a matrix with ‖A‖_F² = 40, of which
	// a rank rule kept 2 (30 of the 40, i.e. 75 % of the energy).
	s := []float64{5, 2.2360679774997896, 2, 1}
	fig, err := report.Spectrum(s, 40, 2, "svd of fc1.weight")
	if err != nil {
		fmt.Println(err)
		return
	}
	var buf bytes.Buffer
	if err := fig.Write(&buf, report.SVG, report.DefaultWidthPx, report.DefaultHeightPx); err != nil {
		fmt.Println(err)
		return
	}
	first, _, _ := bytes.Cut(buf.Bytes(), []byte("\n"))
	fmt.Println(string(first))
	fmt.Println(bytes.Contains(buf.Bytes(), []byte("75 % of the energy kept")))
	// Output:
	// <?xml version="1.0"?>
	// true
}
