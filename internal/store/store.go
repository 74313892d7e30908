// Package store keeps what Lowrank must remember: blobs (uploaded tensors and
// factor bundles) behind BlobStore, and metadata (tensors, jobs, results)
// behind MetaStore. The embedded deployment uses files under the data dir and
// one SQLite database, shared with River's queue tables; other
// implementations (S3, Postgres) plug in behind the same interfaces and must
// pass the same conformance suite (package storetest).
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"time"
)

// Blob is an open, immutable blob: random access for formats with a central
// directory (npz), sequential reads for streaming, and its size.
type Blob interface {
	io.ReaderAt
	io.ReadSeeker
	io.Closer
	Size() int64
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Size   int64
	SHA256 string // lowercase hex
}

// BlobStore stores immutable blobs by key. Keys are short names made of
// letters, digits, '.', '_' and '-'.
//
// Put is all-or-nothing: a blob is visible to Open only once it has been
// written completely and made durable, so a reader never sees a partial blob,
// and a failed Put (a read error, an upload over the size limit) leaves
// nothing behind.
type BlobStore interface {
	// Put stores everything r yields under key, replacing any blob there.
	Put(ctx context.Context, key string, r io.Reader) (BlobInfo, error)
	// Open returns the blob under key, or an ENOTFOUND error.
	Open(ctx context.Context, key string) (Blob, error)
	// Delete removes the blob under key; a missing blob is not an error.
	Delete(ctx context.Context, key string) error
	// Ping reports whether the store is usable (for readiness checks).
	Ping(ctx context.Context) error
}

// Adopter is a BlobStore that can take over a finished local file without
// copying it: a file written and synced in SpoolDir becomes the blob under
// key, atomically. LocalBlobs is one; a remote store is not.
type Adopter interface {
	SpoolDir() string
	Adopt(ctx context.Context, key, path string) error
}

var _ Adopter = (*LocalBlobs)(nil)

// TensorInfo is one tensor inside an uploaded file.
type TensorInfo struct {
	Name  string `json:"name"`
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
}

// Tensor is the metadata of one uploaded file (which may hold several
// tensors, as npz and safetensors do). Its blob is stored under key ID.
type Tensor struct {
	ID        string
	Owner     string // the API key's owner id; "" when auth is off
	Format    string // npy, npz, safetensors
	Bytes     int64
	SHA256    string
	Tensors   []TensorInfo
	CreatedAt time.Time
}

// JobStatus is a job's place in its lifecycle.
type JobStatus string

// Job statuses: queued → running → succeeded | failed | canceled. A running
// job interrupted by a shutdown goes back to queued.
const (
	JobQueued    JobStatus = "queued"
	JobRunning   JobStatus = "running"
	JobSucceeded JobStatus = "succeeded"
	JobFailed    JobStatus = "failed"
	JobCanceled  JobStatus = "canceled"
)

// Finished reports whether s is a terminal status.
func (s JobStatus) Finished() bool {
	return s == JobSucceeded || s == JobFailed || s == JobCanceled
}

// Progress is what a running job last reported.
type Progress struct {
	Iteration     int      `json:"iteration"`
	MaxIterations int      `json:"max_iterations"`
	RelError      *float64 `json:"rel_error,omitempty"`
	Fraction      float64  `json:"fraction"`
}

// JobError is why a job failed, in the terms of lowrank.Error.
type JobError struct {
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Job is the metadata of one decomposition job.
type Job struct {
	ID         string
	Owner      string
	TensorID   string // the uploaded tensor, or "" for an inline tensor
	TensorName string
	InputKey   string // blob key of the job's input (the tensor's ID, or its inline copy)
	Method     string
	Params     json.RawMessage // normalised by the method registry
	Status     JobStatus
	RiverID    int64
	Progress   Progress
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
	Timings    map[string]float64 // seconds, by phase
	Result     json.RawMessage
	Error      *JobError
	BundleKey  string // blob key of the factor bundle, once succeeded
}

// JobUpdate is a status transition and the fields it sets; nil/zero fields
// are left unchanged.
type JobUpdate struct {
	Status     JobStatus
	StartedAt  *time.Time
	FinishedAt *time.Time
	Timings    map[string]float64
	Result     json.RawMessage
	Error      *JobError
	BundleKey  string
	Progress   *Progress
}

// Page asks for at most Limit items after Cursor (an opaque value returned
// by the previous page; "" for the first page). Items come newest first.
type Page struct {
	Limit  int
	Cursor string
}

// JobFilter narrows a job listing; empty fields match everything.
type JobFilter struct {
	Owner  string
	Status JobStatus
	Method string
}

// MetaStore holds tensor and job metadata. Lookups are scoped by owner: a
// record of another owner answers ENOTFOUND, exactly like a missing one.
type MetaStore interface {
	Ping(ctx context.Context) error

	CreateTensor(ctx context.Context, t *Tensor) error
	GetTensor(ctx context.Context, owner, id string) (*Tensor, error)
	ListTensors(ctx context.Context, owner string, p Page) (ts []*Tensor, next string, err error)
	DeleteTensor(ctx context.Context, owner, id string) error

	// CreateJob inserts j and, in the same transaction, calls enqueue (which
	// puts the job on the queue and returns the queue's id for it), so a job
	// is either both recorded and queued or neither. When maxActive > 0 and
	// maxActive jobs are already queued or running, it records nothing and
	// returns EOVERLOADED: admission is decided inside the transaction, so
	// concurrent submissions cannot overshoot the queue's capacity.
	CreateJob(ctx context.Context, j *Job, maxActive int, enqueue func(ctx context.Context, tx *sql.Tx) (queueID int64, err error)) error
	GetJob(ctx context.Context, owner, id string) (*Job, error)
	// GetJobByID looks a job up without an owner (for workers).
	GetJobByID(ctx context.Context, id string) (*Job, error)
	ListJobs(ctx context.Context, f JobFilter, p Page) (js []*Job, next string, err error)
	// TransitionJob applies u when the job's status is one of from and
	// reports whether it did; it is how concurrent actors (worker, cancel)
	// agree on one outcome.
	TransitionJob(ctx context.Context, id string, from []JobStatus, u JobUpdate) (bool, error)
	// RequeueRunning puts every running job back to queued (for a process
	// that owns the queue alone, at start) and returns how many there were.
	RequeueRunning(ctx context.Context) (int, error)
	// SetProgress records progress of a running job.
	SetProgress(ctx context.Context, id string, p Progress) error
	DeleteJob(ctx context.Context, owner, id string) error
	// CountJobs counts jobs by status (all owners).
	CountJobs(ctx context.Context, statuses ...JobStatus) (int, error)

	// ExpiredTensors returns at most limit tensors (all owners) created
	// before cutoff that no queued or running job reads.
	ExpiredTensors(ctx context.Context, cutoff time.Time, limit int) ([]*Tensor, error)
	// ExpiredJobs returns at most limit finished jobs (all owners) that
	// finished before cutoff.
	ExpiredJobs(ctx context.Context, cutoff time.Time, limit int) ([]*Job, error)
}
