package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/report"
	"github.com/lowrank/lowrank/internal/store"
)

// CompressionService is what the handlers need for whole-checkpoint
// compressions (jobs.Service).
type CompressionService interface {
	SubmitCompression(ctx context.Context, req jobs.CompressionRequest) (*store.Compression, error)
	GetCompression(ctx context.Context, owner, id string) (*jobs.CompressionInfo, error)
	ListCompressions(ctx context.Context, owner string, p store.Page) ([]*jobs.CompressionInfo, string, error)
	DeleteCompression(ctx context.Context, owner, id string) (*jobs.CompressionInfo, error)
	OpenCompressionOutput(ctx context.Context, owner, id, name string) (*store.Compression, store.Blob, error)
	CompressionSpectrum(ctx context.Context, owner, id, name string, mode int) (*jobs.LayerSpectrum, error)
}

var _ CompressionService = (*jobs.Service)(nil)

type compressionRequest struct {
	TensorID string          `json:"tensor_id"`
	Policy   json.RawMessage `json:"policy"`
}

type compressionResponse struct {
	ID         string                      `json:"id"`
	Status     store.JobStatus             `json:"status"`
	TensorID   string                      `json:"tensor_id"`
	Policy     json.RawMessage             `json:"policy"`
	Progress   jobs.CompressionProgress    `json:"progress"`
	Layers     []jobs.CompressionLayerInfo `json:"layers,omitempty"`
	Totals     json.RawMessage             `json:"totals,omitempty"`
	Outputs    *compressionOutputs         `json:"outputs,omitempty"`
	CreatedAt  time.Time                   `json:"created_at"`
	StartedAt  *time.Time                  `json:"started_at,omitempty"`
	FinishedAt *time.Time                  `json:"finished_at,omitempty"`
	Error      *store.JobError             `json:"error,omitempty"`
}

// compressionOutputs are the download URLs of a succeeded compression.
type compressionOutputs struct {
	Checkpoint string `json:"checkpoint"`
	Manifest   string `json:"manifest"`
	Report     string `json:"report"`
	ReportHTML string `json:"report_html"`
}

func compressionJSON(c *jobs.CompressionInfo) compressionResponse {
	out := compressionResponse{
		ID: c.ID, Status: c.Status, TensorID: c.TensorID, Policy: c.Policy, Progress: c.Progress, Layers: c.Layers,
		Totals: c.Totals, CreatedAt: c.CreatedAt, StartedAt: c.StartedAt, FinishedAt: c.FinishedAt, Error: c.Error,
	}
	if c.Status == store.JobSucceeded {
		base := "/v1/compressions/" + c.ID + "/"
		out.Outputs = &compressionOutputs{Checkpoint: base + "checkpoint", Manifest: base + "manifest",
			Report: base + "report", ReportHTML: base + "report.html"}
	}
	return out
}

// maxCompressionBodyBytes bounds a compression request: a policy is a few
// patterns and numbers.
const maxCompressionBodyBytes = 1 << 20

func (s *server) compressions() (CompressionService, error) {
	if s.Compressions == nil {
		return nil, lowrank.Errorf(lowrank.EUNSUPPORTED, "", "compressions are not enabled on this server")
	}
	return s.Compressions, nil
}

func (s *server) handleCompressionCreate(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.compressions()
	if err != nil {
		return err
	}
	var req compressionRequest
	if err := decodeJSON(w, r, &req, maxCompressionBodyBytes); err != nil {
		return err
	}
	if p := bytes.TrimSpace(req.Policy); len(p) > 0 && p[0] != '{' && string(p) != "null" {
		return lowrank.Errorf(lowrank.EINVALID, "policy", "must be a JSON object")
	}
	owner := ownerOf(r.Context())
	c, err := cs.SubmitCompression(r.Context(), jobs.CompressionRequest{Owner: owner, TensorID: req.TensorID, Policy: req.Policy})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/compressions/"+c.ID)
	writeJSON(w, http.StatusAccepted, compressionJSON(&jobs.CompressionInfo{Compression: c,
		Progress: jobs.CompressionProgress{Phase: c.Phase}}))
	return nil
}

func (s *server) handleCompressionList(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.compressions()
	if err != nil {
		return err
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	list, next, err := cs.ListCompressions(r.Context(), ownerOf(r.Context()), p)
	if err != nil {
		return err
	}
	out := listResponse[compressionResponse]{Items: []compressionResponse{}, NextCursor: next}
	for _, c := range list {
		out.Items = append(out.Items, compressionJSON(c))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) handleCompressionGet(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.compressions()
	if err != nil {
		return err
	}
	c, err := cs.GetCompression(r.Context(), ownerOf(r.Context()), chi.URLParam(r, "id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, compressionJSON(c))
	return nil
}

// handleCompressionDelete cancels an active compression (200 with it, now
// canceled) or deletes a finished one and its outputs (204).
func (s *server) handleCompressionDelete(w http.ResponseWriter, r *http.Request) error {
	cs, err := s.compressions()
	if err != nil {
		return err
	}
	c, err := cs.DeleteCompression(r.Context(), ownerOf(r.Context()), chi.URLParam(r, "id"))
	if err != nil {
		return err
	}
	if c == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, http.StatusOK, compressionJSON(c))
	return nil
}

// handleCompressionOutput serves one output blob as stored, streamed with
// Content-Length, Range and an ETag (outputs never change once written).
func (s *server) handleCompressionOutput(name, contentType, filename string) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		cs, err := s.compressions()
		if err != nil {
			return err
		}
		c, b, err := cs.OpenCompressionOutput(r.Context(), ownerOf(r.Context()), chi.URLParam(r, "id"), name)
		if err != nil {
			return err
		}
		defer b.Close()
		w.Header().Set("Content-Type", contentType)
		inert(w.Header())
		if filename != "" {
			w.Header().Set("Content-Disposition", `attachment; filename="`+c.ID+filename+`"`)
		}
		w.Header().Set("ETag", `"`+c.ID+"-"+name+`"`)
		var mod time.Time
		if c.FinishedAt != nil {
			mod = *c.FinishedAt
		}
		http.ServeContent(w, r, "", mod, b)
		return nil
	}
}

// handleCompressionSpectrum draws one layer's spectrum as SVG.
func (s *server) handleCompressionSpectrum(format report.Format) func(w http.ResponseWriter, r *http.Request) error {
	contentType := map[report.Format]string{report.SVG: "image/svg+xml", report.PNG: "image/png"}[format]
	return func(w http.ResponseWriter, r *http.Request) error {
		return s.compressionSpectrum(w, r, format, contentType)
	}
}

func (s *server) compressionSpectrum(w http.ResponseWriter, r *http.Request, format report.Format, contentType string) error {
	cs, err := s.compressions()
	if err != nil {
		return err
	}
	width, err := figureSide(r, "width", report.DefaultWidthPx)
	if err != nil {
		return err
	}
	height, err := figureSide(r, "height", report.DefaultHeightPx)
	if err != nil {
		return err
	}
	mode := 0
	if v := r.URL.Query().Get("mode"); v != "" {
		if mode, err = strconv.Atoi(v); err != nil {
			return badRequest("mode", "must be an integer, got %q", v)
		}
	}
	id, name := chi.URLParam(r, "id"), chi.URLParam(r, "name")
	sp, err := cs.CompressionSpectrum(r.Context(), ownerOf(r.Context()), id, name, mode)
	if err != nil {
		return err
	}
	fig, err := report.Spectrum(sp.Values, sp.Total, sp.Rank, sp.Title)
	if err != nil {
		return fmt.Errorf("handlers: compression %s layer %s spectrum: %w", id, name, err)
	}
	var buf bytes.Buffer
	if err := fig.Write(&buf, format, width, height); err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	inert(w.Header())
	if sp.Final {
		// Once allocated the figure no longer changes.
		w.Header().Set("ETag", fmt.Sprintf(`"%s-%s-spectrum-%d-%dx%d-%s"`, id, name, mode, width, height, format))
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(buf.Bytes()))
	return nil
}
