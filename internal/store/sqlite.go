package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/lowrank/lowrank"

	"modernc.org/sqlite"
)

// OpenSQLite opens (creating it if needed) the SQLite database at path, in
// WAL mode with a busy timeout, limited to one open connection: River's
// SQLite driver runs many small operations concurrently, and one connection
// turns SQLite's "database is locked" errors into orderly waiting.
//
// Because there is one connection, a caller must never hold a transaction or
// an open *sql.Rows while waiting on another query.
func OpenSQLite(path string) (*sql.DB, error) {
	return openSQLite(path, 1, "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(1)")
}

// OpenSQLiteReader opens a pool of up to conns read-only connections to the
// database at path, which OpenSQLite must have created. In WAL mode readers
// neither wait for the writer nor hold it up, so lookups (a client polling
// its job) do not queue behind River's writes on the one write connection.
// A read sees every transaction committed before it began.
func OpenSQLiteReader(path string, conns int) (*sql.DB, error) {
	return openSQLite(path, max(1, conns), "query_only(1)")
}

func openSQLite(path string, conns int, pragmas ...string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	connector, err := sqlite.NewConnector("file:" + path + "?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	db := sql.OpenDB(cachingConnector{connector})
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	return db, nil
}

// SQLiteMeta is the MetaStore of the embedded deployment. It shares its
// database with River, so a job's record and its queue row are written in one
// transaction.
type SQLiteMeta struct {
	db    *sql.DB // the write connection
	reads *sql.DB // lookups; db itself unless a reader pool was given
}

var _ MetaStore = (*SQLiteMeta)(nil)

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS lowrank_tensor (
	id         TEXT PRIMARY KEY,
	owner      TEXT NOT NULL,
	format     TEXT NOT NULL,
	bytes      INTEGER NOT NULL,
	sha256     TEXT NOT NULL,
	tensors    TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS lowrank_tensor_owner ON lowrank_tensor (owner, id);
CREATE TABLE IF NOT EXISTS lowrank_job (
	id          TEXT PRIMARY KEY,
	owner       TEXT NOT NULL,
	tensor_id   TEXT NOT NULL,
	tensor_name TEXT NOT NULL,
	input_key   TEXT NOT NULL,
	method      TEXT NOT NULL,
	params      TEXT NOT NULL,
	status      TEXT NOT NULL,
	river_id    INTEGER NOT NULL DEFAULT 0,
	progress    TEXT NOT NULL DEFAULT '{}',
	created_at  INTEGER NOT NULL,
	started_at  INTEGER,
	finished_at INTEGER,
	timings     TEXT NOT NULL DEFAULT '{}',
	result      TEXT,
	error       TEXT,
	bundle_key  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS lowrank_job_owner ON lowrank_job (owner, id);
CREATE INDEX IF NOT EXISTS lowrank_job_status ON lowrank_job (status);
`

// NewSQLiteMeta creates Lowrank's tables in db if they are missing.
func NewSQLiteMeta(ctx context.Context, db *sql.DB) (*SQLiteMeta, error) {
	return NewSQLiteMetaReads(ctx, db, db)
}

// NewSQLiteMetaReads is NewSQLiteMeta with lookups served by reads (from
// OpenSQLiteReader) rather than the write connection.
func NewSQLiteMetaReads(ctx context.Context, db, reads *sql.DB) (*SQLiteMeta, error) {
	if _, err := db.ExecContext(ctx, sqliteSchema+sqliteCompressionSchema); err != nil {
		return nil, fmt.Errorf("store: create schema: %w", err)
	}
	return &SQLiteMeta{db: db, reads: reads}, nil
}

func (s *SQLiteMeta) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

func (s *SQLiteMeta) CreateTensor(ctx context.Context, t *Tensor) error {
	ts, err := json.Marshal(t.Tensors)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx,
		`INSERT INTO lowrank_tensor (id, owner, format, bytes, sha256, tensors, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Owner, t.Format, t.Bytes, t.SHA256, string(ts), t.CreatedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("store: create tensor: %w", err)
	}
	return nil
}

const tensorCols = `id, owner, format, bytes, sha256, tensors, created_at`

func scanTensor(sc interface{ Scan(...any) error }) (*Tensor, error) {
	var t Tensor
	var ts string
	var created int64
	if err := sc.Scan(&t.ID, &t.Owner, &t.Format, &t.Bytes, &t.SHA256, &ts, &created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(ts), &t.Tensors); err != nil {
		return nil, fmt.Errorf("store: tensor %s: %w", t.ID, err)
	}
	t.CreatedAt = time.Unix(0, created).UTC()
	return &t, nil
}

func (s *SQLiteMeta) GetTensor(ctx context.Context, owner, id string) (*Tensor, error) {
	return queryOne(ctx, s.reads, "tensor", scanTensor, `SELECT `+tensorCols+` FROM lowrank_tensor WHERE id = ? AND owner = ?`, id, owner)
}

func pageLimit(p Page) int {
	if p.Limit <= 0 {
		return 50
	}
	return p.Limit
}

func (s *SQLiteMeta) ListTensors(ctx context.Context, owner string, p Page) ([]*Tensor, string, error) {
	return listPage(ctx, s.reads, func(q string) string { return q }, "list tensors", scanTensor, func(t *Tensor) string { return t.ID },
		p, `SELECT `+tensorCols+` FROM lowrank_tensor WHERE owner = ?`, owner)
}

func (s *SQLiteMeta) DeleteTensor(ctx context.Context, owner, id string) error {
	// SQLite has one writer at a time, so the transaction alone keeps a
	// CreateJob from slipping in between the check and the delete.
	return deleteTensorTx(ctx, s.db, owner, id, "", func(q string) string { return q })
}

func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixNano()
}

func jsonText(v any) (any, error) {
	switch x := v.(type) {
	case json.RawMessage:
		if len(x) == 0 {
			return nil, nil
		}
		return string(x), nil
	case *JobError:
		if x == nil {
			return nil, nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func (s *SQLiteMeta) CreateJob(ctx context.Context, j *Job, maxActive int, enqueue func(ctx context.Context, tx *sql.Tx) (int64, error)) (err error) {
	params, timings, progress, err := jobJSONColumns(j)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: create job: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if j.Status == "" {
		j.Status = JobQueued
	}
	if maxActive > 0 {
		var active int
		err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM lowrank_job WHERE status IN (?, ?)`, string(JobQueued), string(JobRunning)).Scan(&active)
		if err != nil {
			return fmt.Errorf("store: create job: %w", err)
		}
		if active >= maxActive {
			err = lowrank.Errorf(lowrank.EOVERLOADED, "", "the queue is full (%d jobs queued or running)", active)
			return err
		}
	}
	if err = checkInputTx(ctx, tx, j, "", func(q string) string { return q }); err != nil {
		return err
	}
	// Queued first, so the record is written once, with the queue's id.
	if enqueue != nil {
		if j.RiverID, err = enqueue(ctx, tx); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO lowrank_job
		(id, owner, tensor_id, tensor_name, input_key, method, params, status, river_id, progress, created_at, timings)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.ID, j.Owner, j.TensorID, j.TensorName, j.InputKey, j.Method, params, string(j.Status), j.RiverID, progress, j.CreatedAt.UnixNano(), timings)
	if err != nil {
		return fmt.Errorf("store: create job: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: create job: %w", err)
	}
	return nil
}

const jobCols = `id, owner, tensor_id, tensor_name, input_key, method, params, status, river_id, progress,
	created_at, started_at, finished_at, timings, result, error, bundle_key`

func scanJob(sc interface{ Scan(...any) error }) (*Job, error) {
	var j Job
	var params, status, progress, timings string
	var result, jerr sql.NullString
	var created int64
	var started, finished sql.NullInt64
	if err := sc.Scan(&j.ID, &j.Owner, &j.TensorID, &j.TensorName, &j.InputKey, &j.Method, &params, &status, &j.RiverID,
		&progress, &created, &started, &finished, &timings, &result, &jerr, &j.BundleKey); err != nil {
		return nil, err
	}
	j.Params = json.RawMessage(params)
	j.Status = JobStatus(status)
	if err := json.Unmarshal([]byte(progress), &j.Progress); err != nil {
		return nil, fmt.Errorf("store: job %s progress: %w", j.ID, err)
	}
	if err := json.Unmarshal([]byte(timings), &j.Timings); err != nil {
		return nil, fmt.Errorf("store: job %s timings: %w", j.ID, err)
	}
	j.CreatedAt = time.Unix(0, created).UTC()
	if started.Valid {
		t := time.Unix(0, started.Int64).UTC()
		j.StartedAt = &t
	}
	if finished.Valid {
		t := time.Unix(0, finished.Int64).UTC()
		j.FinishedAt = &t
	}
	if result.Valid {
		j.Result = json.RawMessage(result.String)
	}
	if jerr.Valid {
		j.Error = new(JobError)
		if err := json.Unmarshal([]byte(jerr.String), j.Error); err != nil {
			return nil, fmt.Errorf("store: job %s error: %w", j.ID, err)
		}
	}
	return &j, nil
}

func (s *SQLiteMeta) getJob(ctx context.Context, where string, args ...any) (*Job, error) {
	return queryOne(ctx, s.reads, "job", scanJob, `SELECT `+jobCols+` FROM lowrank_job WHERE `+where, args...)
}

func (s *SQLiteMeta) GetJob(ctx context.Context, owner, id string) (*Job, error) {
	return s.getJob(ctx, `id = ? AND owner = ?`, id, owner)
}

func (s *SQLiteMeta) GetJobByID(ctx context.Context, id string) (*Job, error) {
	return s.getJob(ctx, `id = ?`, id)
}

func (s *SQLiteMeta) ListJobs(ctx context.Context, f JobFilter, p Page) ([]*Job, string, error) {
	return listJobs(ctx, s.reads, func(q string) string { return q }, f, p)
}

func (s *SQLiteMeta) TransitionJob(ctx context.Context, id string, from []JobStatus, u JobUpdate) (bool, error) {
	cols, vals, err := jobUpdateColumns(u)
	if err != nil {
		return false, err
	}
	return transition(ctx, s.db, func(q string) string { return q }, "lowrank_job", id, from, cols, vals)
}

func (s *SQLiteMeta) RequeueRunning(ctx context.Context) (int, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE lowrank_job SET status = ?, progress = '{}' WHERE status = ?`, string(JobQueued), string(JobRunning))
	if err != nil {
		return 0, fmt.Errorf("store: requeue running: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (s *SQLiteMeta) SetProgress(ctx context.Context, id string, p Progress) error {
	v, err := jsonText(p)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `UPDATE lowrank_job SET progress = ? WHERE id = ? AND status = ?`, v, id, string(JobRunning))
	if err != nil {
		return fmt.Errorf("store: set progress: %w", err)
	}
	return nil
}

func (s *SQLiteMeta) DeleteJob(ctx context.Context, owner, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM lowrank_job WHERE id = ? AND owner = ?`, id, owner)
	if err != nil {
		return fmt.Errorf("store: delete job: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return lowrank.Errorf(lowrank.ENOTFOUND, "", "job %s not found", id)
	}
	return nil
}

func (s *SQLiteMeta) CountJobs(ctx context.Context, statuses ...JobStatus) (int, error) {
	q := `SELECT COUNT(*) FROM lowrank_job`
	var args []any
	if len(statuses) > 0 {
		in := make([]string, len(statuses))
		for i, st := range statuses {
			in[i] = "?"
			args = append(args, string(st))
		}
		q += ` WHERE status IN (` + strings.Join(in, ", ") + `)`
	}
	var n int
	if err := s.reads.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count jobs: %w", err)
	}
	return n, nil
}

func (s *SQLiteMeta) ExpiredTensors(ctx context.Context, cutoff time.Time, limit int) ([]*Tensor, error) {
	// A tensor still read by an active job stays until that job ends.
	return queryAll(ctx, s.reads, "expired tensors", scanTensor, `SELECT `+tensorCols+` FROM lowrank_tensor t WHERE created_at < ?
		AND NOT EXISTS (SELECT 1 FROM lowrank_job j WHERE j.input_key = t.id AND j.status IN (?, ?))
		AND NOT EXISTS (SELECT 1 FROM lowrank_compression c WHERE c.tensor_id = t.id AND c.status IN ('queued', 'running'))
		ORDER BY created_at LIMIT ?`, cutoff.UnixNano(), string(JobQueued), string(JobRunning), limit)
}

func (s *SQLiteMeta) ExpiredJobs(ctx context.Context, cutoff time.Time, limit int) ([]*Job, error) {
	return queryAll(ctx, s.reads, "expired jobs", scanJob, `SELECT `+jobCols+` FROM lowrank_job WHERE status IN (?, ?, ?)
		AND finished_at IS NOT NULL AND finished_at < ? ORDER BY finished_at LIMIT ?`,
		string(JobSucceeded), string(JobFailed), string(JobCanceled), cutoff.UnixNano(), limit)
}
