package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/lowrank/lowrank"
)

// Postgres is the MetaStore of the scale-out deployment: many replicas share
// one PostgreSQL database. It goes through database/sql (pgx's stdlib driver)
// because CreateJob hands its *sql.Tx to the enqueue callback, and River's
// database/sql driver can insert its job row in that same transaction.
//
// Its *sql.DB draws its connections from a pgx pool (Pool), which the queue
// shares (River's pgx driver needs a pgxpool.Pool for LISTEN/NOTIFY), so one
// process holds one bounded set of connections whoever uses them.
//
// The rows mirror SQLiteMeta's exactly (times as Unix nanoseconds, JSON as
// text), so both stores round-trip the same values and share the scan code.
type Postgres struct {
	pool *pgxpool.Pool
	db   *sql.DB // over pool
}

var _ MetaStore = (*Postgres)(nil)

// Advisory lock keys, per database. They begin with the bytes of "lowrank"
// so they stay clear of the keys River derives for its own locks.
const (
	pgLockSchema    int64 = 0x6c6f7772616e6b01
	pgLockAdmission int64 = 0x6c6f7772616e6b02
)

// pgSchema creates Lowrank's tables. Ids compare with the "C" collation so
// paging orders them bytewise, as SQLite does, whatever the database's
// locale.
var pgSchema = []string{
	`CREATE TABLE IF NOT EXISTS lowrank_tensor (
		id         TEXT COLLATE "C" PRIMARY KEY,
		owner      TEXT NOT NULL,
		format     TEXT NOT NULL,
		bytes      BIGINT NOT NULL,
		sha256     TEXT NOT NULL,
		tensors    TEXT NOT NULL,
		created_at BIGINT NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS lowrank_tensor_owner ON lowrank_tensor (owner, id)`,
	`CREATE TABLE IF NOT EXISTS lowrank_job (
		id          TEXT COLLATE "C" PRIMARY KEY,
		owner       TEXT NOT NULL,
		tensor_id   TEXT NOT NULL,
		tensor_name TEXT NOT NULL,
		input_key   TEXT NOT NULL,
		method      TEXT NOT NULL,
		params      TEXT NOT NULL,
		status      TEXT NOT NULL,
		river_id    BIGINT NOT NULL DEFAULT 0,
		progress    TEXT NOT NULL DEFAULT '{}',
		created_at  BIGINT NOT NULL,
		started_at  BIGINT,
		finished_at BIGINT,
		timings     TEXT NOT NULL DEFAULT '{}',
		result      TEXT,
		error       TEXT,
		bundle_key  TEXT NOT NULL DEFAULT ''
	)`,
	`CREATE INDEX IF NOT EXISTS lowrank_job_owner ON lowrank_job (owner, id)`,
	`CREATE INDEX IF NOT EXISTS lowrank_job_status ON lowrank_job (status)`,
	// One row per running replica (package jobs heartbeats and sweeps it):
	// id is also the replica's River client id, which River appends to
	// river_job.attempted_by; times are the database's clock, so replicas
	// whose clocks disagree still agree on who is late.
	`CREATE TABLE IF NOT EXISTS lowrank_replica (
		id           TEXT COLLATE "C" PRIMARY KEY,
		started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
		heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
	)`,
}

// OpenPostgres connects to the database at url (a postgres:// URL or a
// key=value connection string, as pgx accepts) and creates Lowrank's tables
// if they are missing. Unless url sets pool_max_conns, the pool holds at
// most PostgresPoolConns connections.
//
// Replicas starting together may all run the schema: it is applied under a
// transaction-scoped advisory lock, because concurrent CREATE TABLE IF NOT
// EXISTS statements can still collide in the system catalogs.
func OpenPostgres(ctx context.Context, url string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message quotes the URL, redacting its password only as far
		// as it can tell one; the cause alone holds no secret.
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) && pe.Unwrap() != nil {
			return nil, fmt.Errorf("store: open postgres: the database URL does not parse: %w", pe.Unwrap())
		}
		return nil, errors.New("store: open postgres: the database URL does not parse")
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = max(cfg.MaxConns, PostgresPoolConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	if err := pgMigrate(ctx, db); err != nil {
		pool.Close()
		return nil, err
	}
	return &Postgres{pool: pool, db: db}, nil
}

// PostgresPoolConns is the default size of a Postgres store's pool. pgx's
// own default (the CPU count, at least 4) is too small once River holds one
// connection for LISTEN, its producer and maintenance services take others,
// and every worker and request needs one for metadata; a few idle
// connections per replica cost the server little.
const PostgresPoolConns = 16

func pgMigrate(ctx context.Context, db *sql.DB) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: create schema: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err = tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, pgLockSchema); err != nil {
		return fmt.Errorf("store: create schema: %w", err)
	}
	for _, stmt := range append(pgSchema[:len(pgSchema):len(pgSchema)], pgCompressionSchema...) {
		if _, err = tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("store: create schema: %w", err)
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("store: create schema: %w", err)
	}
	return nil
}

// DB is the database/sql view of the pool.
func (s *Postgres) DB() *sql.DB { return s.db }

// Pool is the connection pool, for River's pgx driver.
func (s *Postgres) Pool() *pgxpool.Pool { return s.pool }

// Close closes the connection pool.
func (s *Postgres) Close() error {
	err := s.db.Close()
	s.pool.Close()
	return err
}

// pgPlaceholders numbers the '?' placeholders of a statement shared with
// the SQLite store ($1, $2, …); the shared statements have no '?' in
// literals.
func pgPlaceholders(q string) string {
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// pgArgs collects query arguments and names their placeholders ($1, $2, …).
type pgArgs []any

func (a *pgArgs) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}

// in is a parenthesised placeholder list for the statuses.
func (a *pgArgs) in(statuses []JobStatus) string {
	ph := make([]string, len(statuses))
	for i, st := range statuses {
		ph[i] = a.add(string(st))
	}
	return "(" + strings.Join(ph, ", ") + ")"
}

func (s *Postgres) Ping(ctx context.Context) error {
	return s.db.PingContext(ctx)
}

func (s *Postgres) CreateTensor(ctx context.Context, t *Tensor) error {
	ts, err := jsonText(t.Tensors)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx,
		`INSERT INTO lowrank_tensor (id, owner, format, bytes, sha256, tensors, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		t.ID, t.Owner, t.Format, t.Bytes, t.SHA256, ts, t.CreatedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("store: create tensor: %w", err)
	}
	return nil
}

func (s *Postgres) GetTensor(ctx context.Context, owner, id string) (*Tensor, error) {
	return queryOne(ctx, s.db, "tensor", scanTensor, `SELECT `+tensorCols+` FROM lowrank_tensor WHERE id = $1 AND owner = $2`, id, owner)
}

func (s *Postgres) ListTensors(ctx context.Context, owner string, p Page) ([]*Tensor, string, error) {
	return listPage(ctx, s.db, pgPlaceholders, "list tensors", scanTensor, func(t *Tensor) string { return t.ID },
		p, `SELECT `+tensorCols+` FROM lowrank_tensor WHERE owner = ?`, owner)
}

// DeleteTensor locks the tensor's row FOR UPDATE before looking for jobs
// that read it: a CreateJob holding the row FOR SHARE commits first, and the
// next statement's snapshot sees its job.
func (s *Postgres) DeleteTensor(ctx context.Context, owner, id string) error {
	return deleteTensorTx(ctx, s.db, owner, id, " FOR UPDATE", pgPlaceholders)
}

// CreateJob decides admission under an advisory lock held until commit:
// under READ COMMITTED the count that follows the lock sees every job
// committed by the submitter that held it before, in any process, so
// capped submissions take the queue's slots one at a time and never
// overshoot. Uncapped submissions (maxActive <= 0) skip the lock.
func (s *Postgres) CreateJob(ctx context.Context, j *Job, maxActive int, enqueue func(ctx context.Context, tx *sql.Tx) (int64, error)) (err error) {
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
		if _, err = tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, pgLockAdmission); err != nil {
			return fmt.Errorf("store: create job: %w", err)
		}
		var active int
		err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM lowrank_job WHERE status IN ($1, $2)`,
			string(JobQueued), string(JobRunning)).Scan(&active)
		if err != nil {
			return fmt.Errorf("store: create job: %w", err)
		}
		if active >= maxActive {
			err = lowrank.Errorf(lowrank.EOVERLOADED, "", "the queue is full (%d jobs queued or running)", active)
			return err
		}
	}
	if err = checkInputTx(ctx, tx, j, " FOR SHARE", pgPlaceholders); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO lowrank_job
		(id, owner, tensor_id, tensor_name, input_key, method, params, status, progress, created_at, timings)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		j.ID, j.Owner, j.TensorID, j.TensorName, j.InputKey, j.Method, params, string(j.Status), progress, j.CreatedAt.UnixNano(), timings)
	if err != nil {
		return fmt.Errorf("store: create job: %w", err)
	}
	if enqueue != nil {
		var qid int64
		if qid, err = enqueue(ctx, tx); err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, `UPDATE lowrank_job SET river_id = $1 WHERE id = $2`, qid, j.ID); err != nil {
			return fmt.Errorf("store: create job: %w", err)
		}
		j.RiverID = qid
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("store: create job: %w", err)
	}
	return nil
}

func (s *Postgres) getJob(ctx context.Context, where string, args ...any) (*Job, error) {
	return queryOne(ctx, s.db, "job", scanJob, `SELECT `+jobCols+` FROM lowrank_job WHERE `+where, args...)
}

func (s *Postgres) GetJob(ctx context.Context, owner, id string) (*Job, error) {
	return s.getJob(ctx, `id = $1 AND owner = $2`, id, owner)
}

func (s *Postgres) GetJobByID(ctx context.Context, id string) (*Job, error) {
	return s.getJob(ctx, `id = $1`, id)
}

func (s *Postgres) ListJobs(ctx context.Context, f JobFilter, p Page) ([]*Job, string, error) {
	return listJobs(ctx, s.db, pgPlaceholders, f, p)
}

func (s *Postgres) TransitionJob(ctx context.Context, id string, from []JobStatus, u JobUpdate) (bool, error) {
	cols, vals, err := jobUpdateColumns(u)
	if err != nil {
		return false, err
	}
	return transition(ctx, s.db, pgPlaceholders, "lowrank_job", id, from, cols, vals)
}

func (s *Postgres) RequeueRunning(ctx context.Context) (int, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE lowrank_job SET status = $1, progress = '{}' WHERE status = $2`, string(JobQueued), string(JobRunning))
	if err != nil {
		return 0, fmt.Errorf("store: requeue running: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (s *Postgres) SetProgress(ctx context.Context, id string, p Progress) error {
	v, err := jsonText(p)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `UPDATE lowrank_job SET progress = $1 WHERE id = $2 AND status = $3`, v, id, string(JobRunning))
	if err != nil {
		return fmt.Errorf("store: set progress: %w", err)
	}
	return nil
}

func (s *Postgres) DeleteJob(ctx context.Context, owner, id string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM lowrank_job WHERE id = $1 AND owner = $2`, id, owner)
	if err != nil {
		return fmt.Errorf("store: delete job: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return lowrank.Errorf(lowrank.ENOTFOUND, "", "job %s not found", id)
	}
	return nil
}

func (s *Postgres) CountJobs(ctx context.Context, statuses ...JobStatus) (int, error) {
	var a pgArgs
	q := `SELECT COUNT(*) FROM lowrank_job`
	if len(statuses) > 0 {
		q += ` WHERE status IN ` + a.in(statuses)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, q, a...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count jobs: %w", err)
	}
	return n, nil
}

func (s *Postgres) ExpiredTensors(ctx context.Context, cutoff time.Time, limit int) ([]*Tensor, error) {
	// A tensor still read by an active job stays until that job ends.
	return queryAll(ctx, s.db, "expired tensors", scanTensor, `SELECT `+tensorCols+` FROM lowrank_tensor t WHERE created_at < $1
		AND NOT EXISTS (SELECT 1 FROM lowrank_job j WHERE j.input_key = t.id AND j.status IN ($2, $3))
		AND NOT EXISTS (SELECT 1 FROM lowrank_compression c WHERE c.tensor_id = t.id AND c.status IN ('queued', 'running'))
		ORDER BY created_at LIMIT $4`, cutoff.UnixNano(), string(JobQueued), string(JobRunning), limit)
}

func (s *Postgres) ExpiredJobs(ctx context.Context, cutoff time.Time, limit int) ([]*Job, error) {
	return queryAll(ctx, s.db, "expired jobs", scanJob, `SELECT `+jobCols+` FROM lowrank_job WHERE status IN ($1, $2, $3)
		AND finished_at IS NOT NULL AND finished_at < $4 ORDER BY finished_at LIMIT $5`,
		string(JobSucceeded), string(JobFailed), string(JobCanceled), cutoff.UnixNano(), limit)
}
