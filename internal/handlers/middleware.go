package handlers

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/lowrank/lowrank"
)

// requestLog logs one line per request, after it is served.
func (s *server) requestLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		start := time.Now()
		next.ServeHTTP(ww, r)
		s.log.Info("request",
			zap.String("method", r.Method),
			zap.String("path", r.URL.Path),
			zap.String("route", routePattern(r)),
			zap.Int("status", statusCode(ww)),
			zap.Int("bytes", ww.BytesWritten()),
			zap.Duration("duration", time.Since(start)),
			zap.String("request_id", middleware.GetReqID(r.Context())),
			zap.String("remote", middleware.GetClientIP(r.Context())),
		)
	})
}

func statusCode(ww middleware.WrapResponseWriter) int {
	if ww.Status() == 0 {
		return http.StatusOK
	}
	return ww.Status()
}

func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
	}
	return "unmatched"
}

// instrument observes request durations labelled by the route pattern (not
// the path, so ids do not explode the label set).
func (s *server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		start := time.Now()
		next.ServeHTTP(ww, r)
		s.metrics.duration.WithLabelValues(routePattern(r), r.Method, strconv.Itoa(statusCode(ww))).
			Observe(time.Since(start).Seconds())
	})
}

// recoverer turns a handler panic into a logged 500 problem.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if rec := recover(); rec != nil {
				if rec == http.ErrAbortHandler {
					panic(rec)
				}
				s.problem(w, r, &lowrank.Error{Code: lowrank.EINTERNAL,
					Err: fmt.Errorf("panic: %v\n%s", rec, debug.Stack())})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type ownerKey struct{}

// ownerOf is the owner id of the request's API key ("" when auth is off).
func ownerOf(ctx context.Context) string {
	o, _ := ctx.Value(ownerKey{}).(string)
	return o
}

// authenticate requires a configured API key as a Bearer token and tags the
// request with the key's owner id, a digest of the key (the key itself is
// never stored). Keys are compared as SHA-256 digests in constant time,
// always against every key, so timing reveals neither a key nor its index.
func (s *server) authenticate(next http.Handler) http.Handler {
	if len(s.keyDigests) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			s.problem(w, r, lowrank.Errorf(lowrank.EUNAUTHORIZED, "", "an API key is required (Authorization: Bearer <key>)"))
			return
		}
		d := sha256.Sum256([]byte(strings.TrimSpace(token)))
		match := 0
		for _, k := range s.keyDigests {
			match |= subtle.ConstantTimeCompare(d[:], k[:])
		}
		if match != 1 {
			s.problem(w, r, lowrank.Errorf(lowrank.EUNAUTHORIZED, "", "unknown API key"))
			return
		}
		owner := "key-" + hex.EncodeToString(d[:8])
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ownerKey{}, owner)))
	})
}

type httpMetrics struct {
	duration    *prometheus.HistogramVec
	uploadBytes prometheus.Counter
}

func newHTTPMetrics(reg prometheus.Registerer, version, backend string) (*httpMetrics, error) {
	m := &httpMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lowrank_http_request_duration_seconds",
			Help:    "HTTP request durations by route pattern, method and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method", "code"}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lowrank_upload_bytes_total", Help: "Bytes of tensor files accepted.",
		}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "lowrank_build_info", Help: "Always 1; labels give the version and numeric backend.",
		ConstLabels: prometheus.Labels{"version": version, "backend": backend},
	})
	build.Set(1)
	for _, c := range []prometheus.Collector{m.duration, m.uploadBytes, build} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
