// Package handlers is Lowrank's HTTP layer: routes (routes.go mirrors
// api/openapi.yaml), request decoding and validation, problem+json errors,
// authentication and HTTP metrics. It knows no SQL, files or math: it talks
// to the stores, the job service and the codec through their interfaces.
package handlers

import (
	"context"
	"crypto/sha256"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/store"
)

// JobService is what the handlers need from the job lifecycle.
type JobService interface {
	Submit(ctx context.Context, req jobs.SubmitRequest) (*store.Job, error)
	Delete(ctx context.Context, owner, id string) (*store.Job, error)
	Registry() jobs.Registry
	Limits() jobs.Limits
}

// Info is what /v1/info reports besides the methods and limits.
type Info struct {
	Version string
	Backend string
	// BackendDescription is linalg.Describe of the backend.
	BackendDescription string
	Threads            int // per job
	Workers            int
	QueueCapacity      int
	MaxUploadBytes     int64
	Retention          time.Duration // 0: kept forever
	// Storage names the stores in use (nil: not said).
	Storage *Storage
}

// Storage names the kinds of store a server uses, never their addresses
// or credentials.
type Storage struct {
	Database string `json:"database"` // sqlite or postgres
	Blobs    string `json:"blobs"`    // files or s3
}

// Deps are the handlers' dependencies, all explicit.
type Deps struct {
	Logger   *zap.Logger
	Registry prometheus.Registerer
	Gatherer prometheus.Gatherer
	Meta     store.MetaStore
	Blobs    store.BlobStore
	Codec    jobs.Codec
	Jobs     JobService
	// Compressions runs whole-checkpoint compressions; nil answers their
	// routes 415 (not enabled).
	Compressions CompressionService
	Info         Info
	// APIKeys, when not empty, are the accepted Bearer tokens; each key
	// sees only its own tensors and jobs.
	APIKeys []string
	// Spec is the OpenAPI document served at /openapi.yaml.
	Spec []byte
	// RetryAfter is what a 429 asks the client to wait (default 2 s).
	RetryAfter time.Duration
	// Ready reports extra readiness conditions (nil: none).
	Ready func(ctx context.Context) error
	// Now is the clock that stamps new records (default time.Now).
	Now func() time.Time
	// MaxConcurrentUploads bounds uploads in progress; one more is
	// answered 429 (0: no bound).
	MaxConcurrentUploads int
	// NoMetrics leaves /metrics out, for when it is served on its own
	// listener.
	NoMetrics bool
}

type server struct {
	Deps
	log        *zap.Logger
	metrics    *httpMetrics
	keyDigests [][sha256.Size]byte
	retryAfter time.Duration
	uploads    chan struct{} // a slot per upload in progress; nil: unbounded
}

// New returns the service's http.Handler.
func New(d Deps) (http.Handler, error) {
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	if d.Registry == nil {
		reg := prometheus.NewRegistry()
		d.Registry, d.Gatherer = reg, reg
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	s := &server{Deps: d, log: d.Logger, retryAfter: d.RetryAfter}
	if d.MaxConcurrentUploads > 0 {
		s.uploads = make(chan struct{}, d.MaxConcurrentUploads)
	}
	if s.retryAfter <= 0 {
		s.retryAfter = 2 * time.Second
	}
	for _, k := range d.APIKeys {
		if k = strings.TrimSpace(k); k != "" {
			s.keyDigests = append(s.keyDigests, sha256.Sum256([]byte(k)))
		}
	}
	var err error
	if s.metrics, err = newHTTPMetrics(d.Registry, d.Info.Version, d.Info.Backend); err != nil {
		return nil, err
	}
	return s.routes(), nil
}
