package handlers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/report"
	"github.com/lowrank/lowrank/internal/store"
)

// Figure sizes a client may ask for, in pixels a side.
const (
	minFigurePx = 64
	maxFigurePx = 4096
)

// handleSpectrum serves the spectrum figure of a succeeded svd or pca job
// in format: its kept singular values and cumulative energy with the
// chosen rank marked. A job of another method has no spectrum, whatever
// its state (404); an svd or pca job that has not succeeded has none yet
// or never will (409, as for its factors).
func (s *server) handleSpectrum(format report.Format) func(w http.ResponseWriter, r *http.Request) error {
	contentType := map[report.Format]string{report.SVG: "image/svg+xml", report.PNG: "image/png"}[format]
	return func(w http.ResponseWriter, r *http.Request) error {
		width, err := figureSide(r, "width", report.DefaultWidthPx)
		if err != nil {
			return err
		}
		height, err := figureSide(r, "height", report.DefaultHeightPx)
		if err != nil {
			return err
		}
		j, err := s.Meta.GetJob(r.Context(), ownerOf(r.Context()), chi.URLParam(r, "id"))
		if err != nil {
			return err
		}
		name, ok := jobs.SpectrumFactor(j.Method)
		if !ok {
			return lowrank.Errorf(lowrank.ENOTFOUND, "", "job %s is a %s job; spectra exist for svd and pca jobs", j.ID, j.Method)
		}
		if j.Status != store.JobSucceeded {
			return lowrank.Errorf(lowrank.ECONFLICT, "", "job %s is %s; its spectrum exists once it has succeeded", j.ID, j.Status)
		}
		var res jobs.Result
		if err := json.Unmarshal(j.Result, &res); err != nil {
			return fmt.Errorf("handlers: job %s result: %w", j.ID, err)
		}
		b, err := s.Blobs.Open(r.Context(), j.BundleKey)
		if err != nil {
			return err
		}
		defer b.Close()
		t, err := s.Codec.ReadTensor(b, b.Size(), name)
		if err != nil {
			return err
		}
		sp, err := jobs.SpectrumOf(j.Method, res, t)
		if err != nil {
			return err
		}
		fig, err := report.Spectrum(sp.Values, sp.Total, sp.Rank, spectrumTitle(j))
		if err != nil {
			return fmt.Errorf("handlers: job %s spectrum: %w", j.ID, err)
		}
		var buf bytes.Buffer
		if err := fig.Write(&buf, format, width, height); err != nil {
			return err
		}
		// A finished job never changes and the rendering is deterministic,
		// so the job, format and size identify the bytes.
		w.Header().Set("Content-Type", contentType)
		inert(w.Header())
		w.Header().Set("ETag", fmt.Sprintf(`"%s-spectrum-%dx%d-%s"`, j.ID, width, height, format))
		http.ServeContent(w, r, "", modTime(j), bytes.NewReader(buf.Bytes()))
		return nil
	}
}

// inert marks a response that a browser may render as a document (an SVG,
// the HTML report) opened from the API's origin: it must not be able to
// run or load anything, whatever the tensor and layer names in it hold.
// Inline styles and data: images (the report's embedded figures) stay.
func inert(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
	h.Set("X-Content-Type-Options", "nosniff")
}

// figureSide reads the ?width or ?height of a figure in pixels.
func figureSide(r *http.Request, field string, def int) (int, error) {
	v := r.URL.Query().Get(field)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, badRequest(field, "must be an integer, got %q", v)
	}
	if n < minFigurePx || n > maxFigurePx {
		return 0, lowrank.Errorf(lowrank.EINVALID, field, "must be in [%d, %d] pixels, got %d", minFigurePx, maxFigurePx, n)
	}
	return n, nil
}

// spectrumTitle names the job and what it decomposed.
func spectrumTitle(j *store.Job) string {
	what := j.TensorName
	if what == "" {
		what = j.TensorID
	}
	if what == "" {
		what = "an inline tensor"
	}
	return fmt.Sprintf("%s of %s (job %s)", j.Method, what, j.ID)
}
