package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/lowrank/lowrank"
)

func (s *server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz checks that metadata and blobs are usable.
func (s *server) handleReadyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"metadata": "ok", "blobs": "ok"}
	failed := false
	if err := s.Meta.Ping(ctx); err != nil {
		checks["metadata"], failed = err.Error(), true
	}
	if err := s.Blobs.Ping(ctx); err != nil {
		checks["blobs"], failed = err.Error(), true
	}
	if s.Ready != nil {
		checks["queue"] = "ok"
		if err := s.Ready(ctx); err != nil {
			checks["queue"], failed = err.Error(), true
		}
	}
	if failed {
		return &lowrank.Error{Code: lowrank.EUNAVAILABLE, Message: "not ready", Err: errChecks(checks)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "checks": checks})
	return nil
}

type errChecks map[string]string

func (e errChecks) Error() string {
	out := "readiness:"
	for k, v := range e {
		out += " " + k + "=" + v
	}
	return out
}

func (s *server) handleSpec(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(s.Spec)
}

type infoResponse struct {
	Version  string     `json:"version"`
	Backend  string     `json:"backend"`
	BackDesc string     `json:"backend_description,omitempty"`
	Threads  int        `json:"threads"`
	Workers  int        `json:"workers"`
	Methods  []string   `json:"methods"`
	Limits   infoLimits `json:"limits"`
	Auth     bool       `json:"auth"`
	Formats  []string   `json:"formats"`
	Versions []string   `json:"api_versions"`
	Storage  *Storage   `json:"storage,omitempty"`
}

type infoLimits struct {
	MaxUploadBytes int64 `json:"max_upload_bytes"`
	MaxElements    int64 `json:"max_elements"`
	MaxRank        int   `json:"max_rank"`
	MaxIterations  int   `json:"max_iterations"`
	QueueCapacity  int   `json:"queue_capacity"`
	// Zero means unbounded, and is left out.
	MaxInlineElements    int64   `json:"max_inline_elements,omitempty"`
	MaxConcurrentUploads int     `json:"max_concurrent_uploads,omitempty"`
	RetentionSeconds     float64 `json:"retention_seconds,omitempty"`
}

func (s *server) handleInfo(w http.ResponseWriter, r *http.Request) error {
	lim := s.Jobs.Limits()
	writeJSON(w, http.StatusOK, infoResponse{
		Version: s.Info.Version, Backend: s.Info.Backend, BackDesc: s.Info.BackendDescription, Threads: s.Info.Threads, Workers: s.Info.Workers,
		Methods: s.Jobs.Registry().Names(),
		Limits: infoLimits{MaxUploadBytes: s.Info.MaxUploadBytes, MaxElements: lim.MaxElements, MaxRank: lim.MaxRank,
			MaxIterations: lim.MaxIterations, QueueCapacity: s.Info.QueueCapacity,
			MaxInlineElements: lim.MaxInlineElements, MaxConcurrentUploads: s.MaxConcurrentUploads,
			RetentionSeconds: s.Info.Retention.Seconds()},
		Auth:     len(s.keyDigests) > 0,
		Formats:  []string{"npy", "npz", "safetensors"},
		Versions: []string{"v1"},
		Storage:  s.Info.Storage,
	})
	return nil
}

func (s *server) handleNotFound(w http.ResponseWriter, r *http.Request) error {
	return lowrank.Errorf(lowrank.ENOTFOUND, "", "no route %s %s", r.Method, r.URL.Path)
}

func (s *server) handleMethodNotAllowed(w http.ResponseWriter, r *http.Request) error {
	return notAllowed{lowrank.Errorf(lowrank.EINVALID, "", "method %s is not allowed on %s", r.Method, r.URL.Path)}
}
