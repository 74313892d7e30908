package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/store"
)

type jobRequest struct {
	TensorID   string          `json:"tensor_id"`
	TensorName string          `json:"tensor_name"`
	Tensor     *inlineTensor   `json:"tensor"`
	Method     string          `json:"method"`
	Params     json.RawMessage `json:"params"`
}

// inlineTensor is a small tensor sent in the request: a shape and its
// values flat in row-major order.
type inlineTensor struct {
	Shape []int     `json:"shape"`
	Data  []float64 `json:"data"`
}

type jobResponse struct {
	ID         string             `json:"id"`
	Status     store.JobStatus    `json:"status"`
	Method     string             `json:"method"`
	TensorID   string             `json:"tensor_id,omitempty"`
	TensorName string             `json:"tensor_name,omitempty"`
	Params     json.RawMessage    `json:"params"`
	Progress   store.Progress     `json:"progress"`
	CreatedAt  time.Time          `json:"created_at"`
	StartedAt  *time.Time         `json:"started_at,omitempty"`
	FinishedAt *time.Time         `json:"finished_at,omitempty"`
	Timings    map[string]float64 `json:"timings"`
	Result     *resultResponse    `json:"result,omitempty"`
	Error      *store.JobError    `json:"error,omitempty"`
}

type resultResponse struct {
	jobs.Result
	Factors []factorResponse `json:"factors"`
}

type factorResponse struct {
	jobs.FactorInfo
	URL string `json:"url"`
}

func jobJSON(j *store.Job) jobResponse {
	out := jobResponse{
		ID: j.ID, Status: j.Status, Method: j.Method, TensorID: j.TensorID, TensorName: j.TensorName,
		Params: j.Params, Progress: j.Progress, CreatedAt: j.CreatedAt, StartedAt: j.StartedAt, FinishedAt: j.FinishedAt,
		Timings: j.Timings, Error: j.Error,
	}
	if out.Timings == nil {
		out.Timings = map[string]float64{}
	}
	if len(j.Result) > 0 {
		var res jobs.Result
		if json.Unmarshal(j.Result, &res) == nil {
			rr := &resultResponse{Result: res, Factors: []factorResponse{}}
			for _, f := range res.Factors {
				rr.Factors = append(rr.Factors, factorResponse{FactorInfo: f, URL: "/v1/jobs/" + j.ID + "/factors/" + f.Name})
			}
			out.Result = rr
		}
	}
	return out
}

// maxJobBodyBytes bounds a job request when inline tensors are bounded
// only by max-elements; larger tensors are uploaded as files.
const maxJobBodyBytes = 64 << 20

// jobBodyLimit is the largest job request read: room for the largest
// inline tensor (a JSON number takes at most ~25 bytes) plus the rest.
func jobBodyLimit(lim jobs.Limits) int64 {
	if lim.MaxInlineElements <= 0 {
		return maxJobBodyBytes
	}
	return 25*lim.MaxInlineElements + 64<<10
}

// decodeJSON decodes a request body strictly into v; syntax errors are 400s
// naming the field where they can.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return lowrank.Errorf(lowrank.ETOOLARGE, "body", "larger than %d bytes; upload large tensors with POST /v1/tensors", limit)
		case errors.As(err, &te):
			return badRequest(te.Field, "must be a %s, got a JSON %s", te.Type, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return badRequest(f, "unknown field")
		case errors.Is(err, io.EOF):
			return badRequest("body", "empty body; a JSON object is required")
		}
		return badRequest("body", "not valid JSON: %v", err)
	}
	if dec.More() {
		return badRequest("body", "trailing data after the JSON object")
	}
	return nil
}

func (s *server) handleJobCreate(w http.ResponseWriter, r *http.Request) error {
	var req jobRequest
	if err := decodeJSON(w, r, &req, jobBodyLimit(s.Jobs.Limits())); err != nil {
		return err
	}
	if req.Method == "" {
		return lowrank.Errorf(lowrank.EINVALID, "method", "is required (one of %s)", strings.Join(s.Jobs.Registry().Names(), ", "))
	}
	if len(req.Params) > 0 && !bytes.HasPrefix(bytes.TrimSpace(req.Params), []byte("{")) && string(bytes.TrimSpace(req.Params)) != "null" {
		return lowrank.Errorf(lowrank.EINVALID, "params", "must be a JSON object")
	}
	sr := jobs.SubmitRequest{
		Owner: ownerOf(r.Context()), TensorID: req.TensorID, TensorName: req.TensorName,
		Method: req.Method, Params: req.Params,
	}
	if req.Tensor != nil {
		sr.Inline = &jobs.Tensor{Name: "tensor", DType: "float64", Shape: req.Tensor.Shape, F64: req.Tensor.Data}
		if sr.Inline.F64 == nil {
			sr.Inline.F64 = []float64{}
		}
	}
	j, err := s.Jobs.Submit(r.Context(), sr)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/jobs/"+j.ID)
	writeJSON(w, http.StatusAccepted, jobJSON(j))
	return nil
}

var jobStatuses = map[string]bool{"queued": true, "running": true, "succeeded": true, "failed": true, "canceled": true}

func (s *server) handleJobList(w http.ResponseWriter, r *http.Request) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.JobFilter{Owner: ownerOf(r.Context()), Status: store.JobStatus(q.Get("status")), Method: q.Get("method")}
	if f.Status != "" && !jobStatuses[string(f.Status)] {
		return lowrank.Errorf(lowrank.EINVALID, "status", "must be one of queued, running, succeeded, failed, canceled; got %q", f.Status)
	}
	if f.Method != "" {
		if _, err := s.Jobs.Registry().Lookup(f.Method); err != nil {
			return err
		}
	}
	js, next, err := s.Meta.ListJobs(r.Context(), f, p)
	if err != nil {
		return err
	}
	out := listResponse[jobResponse]{Items: []jobResponse{}, NextCursor: next}
	for _, j := range js {
		out.Items = append(out.Items, jobJSON(j))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) handleJobGet(w http.ResponseWriter, r *http.Request) error {
	j, err := s.Meta.GetJob(r.Context(), ownerOf(r.Context()), chi.URLParam(r, "id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, jobJSON(j))
	return nil
}

// handleJobDelete cancels a queued or running job (200 with the job, now
// canceled) or deletes a finished one and its factors (204).
func (s *server) handleJobDelete(w http.ResponseWriter, r *http.Request) error {
	j, err := s.Jobs.Delete(r.Context(), ownerOf(r.Context()), chi.URLParam(r, "id"))
	if err != nil {
		return err
	}
	if j == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, http.StatusOK, jobJSON(j))
	return nil
}
