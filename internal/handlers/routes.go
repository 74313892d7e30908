package handlers

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/report"
)

// routes is the whole API surface; read it beside api/openapi.yaml.
func (s *server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID)
	// The client address is the TCP peer's: trusting X-Forwarded-For is a
	// deployment decision (chi's RealIP is deprecated for spoofing).
	r.Use(middleware.ClientIPFromRemoteAddr)
	r.Use(s.requestLog)
	r.Use(s.instrument)
	r.Use(s.recoverer)
	r.NotFound(s.h(s.handleNotFound))
	r.MethodNotAllowed(s.h(s.handleMethodNotAllowed))

	// Open: probes, metrics and the contract.
	r.Get("/healthz", s.handleHealthz)
	r.Get("/readyz", s.h(s.handleReadyz))
	if !s.NoMetrics {
		r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}))
	}
	r.Get("/openapi.yaml", s.handleSpec)

	r.Route("/v1", func(r chi.Router) {
		r.Use(s.authenticate)
		r.Get("/info", s.h(s.handleInfo))
		r.Route("/tensors", func(r chi.Router) {
			r.Post("/", s.h(s.handleTensorCreate))
			r.Get("/", s.h(s.handleTensorList))
			r.Get("/{id}", s.h(s.handleTensorGet))
			r.Delete("/{id}", s.h(s.handleTensorDelete))
		})
		r.Route("/jobs", func(r chi.Router) {
			r.Post("/", s.h(s.handleJobCreate))
			r.Get("/", s.h(s.handleJobList))
			r.Get("/{id}", s.h(s.handleJobGet))
			r.Delete("/{id}", s.h(s.handleJobDelete))
			r.Get("/{id}/factors", s.h(s.handleFactorsBundle))
			r.Get("/{id}/factors/{name}", s.h(s.handleFactor))
			r.Get("/{id}/spectrum.svg", s.h(s.handleSpectrum(report.SVG)))
			r.Get("/{id}/spectrum.png", s.h(s.handleSpectrum(report.PNG)))
		})
		r.Route("/compressions", func(r chi.Router) {
			r.Post("/", s.h(s.handleCompressionCreate))
			r.Get("/", s.h(s.handleCompressionList))
			r.Get("/{id}", s.h(s.handleCompressionGet))
			r.Delete("/{id}", s.h(s.handleCompressionDelete))
			r.Get("/{id}/checkpoint", s.h(s.handleCompressionOutput(jobs.OutputCheckpoint, "application/octet-stream", ".safetensors")))
			r.Get("/{id}/manifest", s.h(s.handleCompressionOutput(jobs.OutputManifest, "application/json", "")))
			r.Get("/{id}/report", s.h(s.handleCompressionOutput(jobs.OutputReport, "application/json", "")))
			r.Get("/{id}/report.html", s.h(s.handleCompressionOutput(jobs.OutputReportHTML, "text/html; charset=utf-8", "")))
			r.Get("/{id}/layers/{name}/spectrum.svg", s.h(s.handleCompressionSpectrum(report.SVG)))
			r.Get("/{id}/layers/{name}/spectrum.png", s.h(s.handleCompressionSpectrum(report.PNG)))
		})
	})
	return r
}

// h adapts a handler that returns an error, so every error is rendered by
// the one function that knows how (problem).
func (s *server) h(f func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			s.problem(w, r, err)
		}
	}
}
