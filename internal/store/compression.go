package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lowrank/lowrank"
)

// Compression is the record of one whole-checkpoint compression: its
// request, where it has come, and (once succeeded) its outputs. Its layers
// are rows of their own (CompressionLayer), one per layer of the plan, so
// the sub-jobs that work on different layers update different rows.
type Compression struct {
	ID       string
	Owner    string
	TensorID string          // the uploaded checkpoint
	Policy   json.RawMessage // as given, validated
	Status   JobStatus
	// Phase is the step the compression is in (or ended in): plan,
	// analyze, allocate, factor, assemble (see package jobs).
	Phase string
	// Plan is compress.Plan as JSON, once planned.
	Plan        json.RawMessage
	LayersTotal int
	RiverID     int64 // the plan step's queue id
	CreatedAt   time.Time
	StartedAt   *time.Time
	FinishedAt  *time.Time
	Error       *JobError
	// Totals is the report's totals as JSON, once succeeded.
	Totals json.RawMessage
	// Outputs maps an output's name (checkpoint, manifest, report,
	// report.html) to its blob key, once succeeded.
	Outputs map[string]string
}

// LayerStatus is where one layer of a compression is.
type LayerStatus string

// Layer statuses: pending → analyzed → allocated → factored, or analyzed →
// kept (the allocation left it as it is); failed when its sub-job failed.
const (
	LayerPending   LayerStatus = "pending"
	LayerAnalyzed  LayerStatus = "analyzed"
	LayerAllocated LayerStatus = "allocated"
	LayerFactored  LayerStatus = "factored"
	LayerKept      LayerStatus = "kept"
	LayerFailed    LayerStatus = "failed"
)

// Done reports whether the layer has reached its final state.
func (s LayerStatus) Done() bool { return s == LayerFactored || s == LayerKept }

// CompressionLayer is one layer of a compression. The JSON fields hold the
// phases' outputs (compress.Analysis, compress.Allocation,
// compress.LayerResult), so any replica can take the next step.
type CompressionLayer struct {
	Index      int
	Name       string
	Status     LayerStatus
	Analysis   json.RawMessage
	Allocation json.RawMessage
	Result     json.RawMessage
	Error      *JobError
	// FactorsKey is the blob of the layer's factors, once factored.
	FactorsKey string
}

// LayerUpdate sets a layer's status and, when not nil/empty, its other
// fields.
type LayerUpdate struct {
	Index      int
	Status     LayerStatus
	Analysis   json.RawMessage
	Allocation json.RawMessage
	Result     json.RawMessage
	Error      *JobError
	FactorsKey string
}

// CompressionUpdate is a status transition of a compression and the
// fields it sets; nil/zero fields are left unchanged.
type CompressionUpdate struct {
	Status     JobStatus
	Phase      string
	StartedAt  *time.Time
	FinishedAt *time.Time
	Error      *JobError
	Totals     json.RawMessage
	Outputs    map[string]string
}

// Advance moves a running compression from one phase to the next (see
// CompressionStore.Advance).
type Advance struct {
	From, To string
	// Plan and Layers, when set, record the plan and insert its layers
	// (the plan step).
	Plan   json.RawMessage
	Layers []CompressionLayer
	// Updates are applied to existing layers (the allocate step).
	Updates []LayerUpdate
}

// Enqueue puts sub-jobs on the queue inside a store transaction, so the
// state that calls for them and the queue rows commit together.
type Enqueue func(ctx context.Context, tx *sql.Tx) error

// CompressionStore keeps compressions and their layers. Lookups are scoped
// by owner like MetaStore's. Both SQL stores implement it (Compressions),
// in the same database as their jobs and River's queue.
type CompressionStore interface {
	// CreateCompression records c (status queued) and calls enqueue in the
	// same transaction. c.TensorID must name a tensor of c.Owner
	// (ENOTFOUND on "tensor_id" otherwise); while c is queued or running,
	// DeleteTensor refuses that tensor (ECONFLICT). When maxActive > 0 and
	// maxActive compressions are queued or running already, it records
	// nothing and returns EOVERLOADED, decided in the transaction as
	// CreateJob decides.
	CreateCompression(ctx context.Context, c *Compression, maxActive int, enqueue Enqueue) error
	GetCompression(ctx context.Context, owner, id string) (*Compression, error)
	GetCompressionByID(ctx context.Context, id string) (*Compression, error)
	ListCompressions(ctx context.Context, owner string, p Page) ([]*Compression, string, error)
	// CompressionLayers returns the layers in plan order.
	CompressionLayers(ctx context.Context, id string) ([]CompressionLayer, error)
	// TransitionCompression applies u when the status is one of from and
	// reports whether it did.
	TransitionCompression(ctx context.Context, id string, from []JobStatus, u CompressionUpdate) (bool, error)
	// Advance, in one transaction, checks the compression is running in
	// phase a.From, moves it to a.To, records a.Plan and a.Layers, applies
	// a.Updates and calls enqueue. It reports false, changing nothing, when
	// the compression is not running in a.From (a retried step, a
	// canceled compression).
	Advance(ctx context.Context, id string, a Advance, enqueue Enqueue) (bool, error)
	// CompleteLayer, in one transaction, applies u to layer u.Index if
	// the compression is running in phase and the layer's status is from,
	// then, if no layer is left in status from, moves the compression to
	// phase next and calls enqueue. done says u was applied (false: the
	// step was already done, or the compression is no longer running);
	// last says this layer finished the phase. Deciding "last" inside the
	// transaction that records the layer means exactly one sub-job starts
	// the next phase, however many replicas finish layers at once.
	CompleteLayer(ctx context.Context, id, phase string, from LayerStatus, u LayerUpdate, next string, enqueue Enqueue) (done, last bool, err error)
	// SetLayer applies u to a layer unconditionally (a failure's record).
	SetLayer(ctx context.Context, id string, u LayerUpdate) error
	// DeleteCompression removes the record and its layers.
	DeleteCompression(ctx context.Context, owner, id string) error
	// ExpiredCompressions returns at most limit finished compressions (all
	// owners) that finished before cutoff.
	ExpiredCompressions(ctx context.Context, cutoff time.Time, limit int) ([]*Compression, error)
}

const sqliteCompressionSchema = `
CREATE TABLE IF NOT EXISTS lowrank_compression (
	id           TEXT PRIMARY KEY,
	owner        TEXT NOT NULL,
	tensor_id    TEXT NOT NULL,
	policy       TEXT NOT NULL,
	status       TEXT NOT NULL,
	phase        TEXT NOT NULL,
	plan         TEXT,
	layers_total INTEGER NOT NULL DEFAULT 0,
	river_id     INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL,
	started_at   INTEGER,
	finished_at  INTEGER,
	error        TEXT,
	totals       TEXT,
	outputs      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS lowrank_compression_owner ON lowrank_compression (owner, id);
CREATE INDEX IF NOT EXISTS lowrank_compression_tensor ON lowrank_compression (tensor_id, status);
CREATE TABLE IF NOT EXISTS lowrank_compression_layer (
	compression_id TEXT NOT NULL,
	idx            INTEGER NOT NULL,
	name           TEXT NOT NULL,
	status         TEXT NOT NULL,
	analysis       TEXT,
	allocation     TEXT,
	result         TEXT,
	error          TEXT,
	factors_key    TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (compression_id, idx)
);
`

var pgCompressionSchema = []string{
	`CREATE TABLE IF NOT EXISTS lowrank_compression (
		id           TEXT COLLATE "C" PRIMARY KEY,
		owner        TEXT NOT NULL,
		tensor_id    TEXT NOT NULL,
		policy       TEXT NOT NULL,
		status       TEXT NOT NULL,
		phase        TEXT NOT NULL,
		plan         TEXT,
		layers_total BIGINT NOT NULL DEFAULT 0,
		river_id     BIGINT NOT NULL DEFAULT 0,
		created_at   BIGINT NOT NULL,
		started_at   BIGINT,
		finished_at  BIGINT,
		error        TEXT,
		totals       TEXT,
		outputs      TEXT NOT NULL DEFAULT '{}'
	)`,
	`CREATE INDEX IF NOT EXISTS lowrank_compression_owner ON lowrank_compression (owner, id)`,
	`CREATE INDEX IF NOT EXISTS lowrank_compression_tensor ON lowrank_compression (tensor_id, status)`,
	`CREATE TABLE IF NOT EXISTS lowrank_compression_layer (
		compression_id TEXT NOT NULL,
		idx            BIGINT NOT NULL,
		name           TEXT NOT NULL,
		status         TEXT NOT NULL,
		analysis       TEXT,
		allocation     TEXT,
		result         TEXT,
		error          TEXT,
		factors_key    TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (compression_id, idx)
	)`,
}

// sqlActiveCompression is the compressions' half of the tensor-in-use rule
// (see deleteTensorTx).
const sqlActiveCompression = `SELECT id FROM lowrank_compression WHERE tensor_id = ? AND status IN ('queued', 'running') LIMIT 1`

// Compressions is the SQLite store's CompressionStore.
func (s *SQLiteMeta) Compressions() CompressionStore {
	return &sqlCompressions{db: s.db, reads: s.reads, rewrite: func(q string) string { return q }}
}

// Compressions is the Postgres store's CompressionStore. Where SQLite's
// one writer serialises the steps of a compression, here the row lock that
// each step's first UPDATE takes does (see lockRunning), and a new
// compression holds its input tensor's row FOR SHARE, as CreateJob does.
func (s *Postgres) Compressions() CompressionStore {
	return &sqlCompressions{db: s.db, reads: s.db, rewrite: pgPlaceholders, forShare: " FOR SHARE",
		admissionLock: fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d)`, pgLockCompressionAdmission)}
}

// pgLockCompressionAdmission serialises capped compression submissions
// across replicas, as pgLockAdmission does jobs.
const pgLockCompressionAdmission int64 = 0x6c6f7772616e6b04

// sqlCompressions is the CompressionStore of both SQL stores: their
// statements differ only in placeholders and row locks.
type sqlCompressions struct {
	db, reads *sql.DB
	rewrite   func(string) string
	forShare  string
	// admissionLock, run first in a capped CreateCompression, makes the
	// count that follows see every compression admitted before (Postgres;
	// SQLite's one writer does that already).
	admissionLock string
}

var _ CompressionStore = (*sqlCompressions)(nil)

func (s *sqlCompressions) tx(ctx context.Context, what string, f func(tx *sql.Tx) error) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if err = f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return nil
}

func (s *sqlCompressions) CreateCompression(ctx context.Context, c *Compression, maxActive int, enqueue Enqueue) error {
	if c.Status == "" {
		c.Status = JobQueued
	}
	policy, err := jsonText(c.Policy)
	if err != nil {
		return err
	}
	if policy == nil {
		policy = "{}"
	}
	return s.tx(ctx, "create compression", func(tx *sql.Tx) error {
		if maxActive > 0 {
			if s.admissionLock != "" {
				if _, err := tx.ExecContext(ctx, s.admissionLock); err != nil {
					return fmt.Errorf("store: create compression: %w", err)
				}
			}
			var active int
			err := tx.QueryRowContext(ctx, s.rewrite(`SELECT COUNT(*) FROM lowrank_compression WHERE status IN (?, ?)`),
				string(JobQueued), string(JobRunning)).Scan(&active)
			if err != nil {
				return fmt.Errorf("store: create compression: %w", err)
			}
			if active >= maxActive {
				return lowrank.Errorf(lowrank.EOVERLOADED, "", "too many compressions (%d queued or running)", active)
			}
		}
		if err := checkInputTx(ctx, tx, &Job{TensorID: c.TensorID, Owner: c.Owner}, s.forShare, s.rewrite); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.rewrite(`INSERT INTO lowrank_compression
			(id, owner, tensor_id, policy, status, phase, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			c.ID, c.Owner, c.TensorID, policy, string(c.Status), c.Phase, c.CreatedAt.UnixNano())
		if err != nil {
			return fmt.Errorf("store: create compression: %w", err)
		}
		if enqueue != nil {
			return enqueue(ctx, tx)
		}
		return nil
	})
}

const compressionCols = `id, owner, tensor_id, policy, status, phase, plan, layers_total, river_id,
	created_at, started_at, finished_at, error, totals, outputs`

func scanCompression(sc interface{ Scan(...any) error }) (*Compression, error) {
	var c Compression
	var policy, status, outputs string
	var plan, cerr, totals sql.NullString
	var created int64
	var started, finished sql.NullInt64
	if err := sc.Scan(&c.ID, &c.Owner, &c.TensorID, &policy, &status, &c.Phase, &plan, &c.LayersTotal, &c.RiverID,
		&created, &started, &finished, &cerr, &totals, &outputs); err != nil {
		return nil, err
	}
	c.Policy = json.RawMessage(policy)
	c.Status = JobStatus(status)
	if plan.Valid {
		c.Plan = json.RawMessage(plan.String)
	}
	if totals.Valid {
		c.Totals = json.RawMessage(totals.String)
	}
	c.CreatedAt = time.Unix(0, created).UTC()
	if started.Valid {
		t := time.Unix(0, started.Int64).UTC()
		c.StartedAt = &t
	}
	if finished.Valid {
		t := time.Unix(0, finished.Int64).UTC()
		c.FinishedAt = &t
	}
	if cerr.Valid {
		c.Error = new(JobError)
		if err := json.Unmarshal([]byte(cerr.String), c.Error); err != nil {
			return nil, fmt.Errorf("store: compression %s error: %w", c.ID, err)
		}
	}
	if err := json.Unmarshal([]byte(outputs), &c.Outputs); err != nil {
		return nil, fmt.Errorf("store: compression %s outputs: %w", c.ID, err)
	}
	return &c, nil
}

func (s *sqlCompressions) get(ctx context.Context, where string, args ...any) (*Compression, error) {
	return queryOne(ctx, s.reads, "compression", scanCompression, s.rewrite(`SELECT `+compressionCols+` FROM lowrank_compression WHERE `+where), args...)
}

func (s *sqlCompressions) GetCompression(ctx context.Context, owner, id string) (*Compression, error) {
	return s.get(ctx, `id = ? AND owner = ?`, id, owner)
}

func (s *sqlCompressions) GetCompressionByID(ctx context.Context, id string) (*Compression, error) {
	return s.get(ctx, `id = ?`, id)
}

func (s *sqlCompressions) ListCompressions(ctx context.Context, owner string, p Page) ([]*Compression, string, error) {
	return listPage(ctx, s.reads, s.rewrite, "list compressions", scanCompression, func(c *Compression) string { return c.ID },
		p, `SELECT `+compressionCols+` FROM lowrank_compression WHERE owner = ?`, owner)
}

func scanLayer(sc interface{ Scan(...any) error }) (*CompressionLayer, error) {
	var l CompressionLayer
	var status string
	var analysis, allocation, result, lerr sql.NullString
	if err := sc.Scan(&l.Index, &l.Name, &status, &analysis, &allocation, &result, &lerr, &l.FactorsKey); err != nil {
		return nil, err
	}
	l.Status = LayerStatus(status)
	for _, f := range []struct {
		s   sql.NullString
		dst *json.RawMessage
	}{{analysis, &l.Analysis}, {allocation, &l.Allocation}, {result, &l.Result}} {
		if f.s.Valid {
			*f.dst = json.RawMessage(f.s.String)
		}
	}
	if lerr.Valid {
		l.Error = new(JobError)
		if err := json.Unmarshal([]byte(lerr.String), l.Error); err != nil {
			return nil, fmt.Errorf("store: layer %s error: %w", l.Name, err)
		}
	}
	return &l, nil
}

func (s *sqlCompressions) CompressionLayers(ctx context.Context, id string) ([]CompressionLayer, error) {
	ls, err := queryAll(ctx, s.reads, "compression layers", scanLayer, s.rewrite(`SELECT idx, name, status, analysis, allocation, result, error, factors_key
		FROM lowrank_compression_layer WHERE compression_id = ? ORDER BY idx`), id)
	if err != nil {
		return nil, err
	}
	out := make([]CompressionLayer, len(ls))
	for i, l := range ls {
		out[i] = *l
	}
	return out, nil
}

// compressionUpdateColumns lists the columns u sets, status first.
func compressionUpdateColumns(u CompressionUpdate) ([]string, []any, error) {
	cols, vals := []string{"status"}, []any{string(u.Status)}
	add := func(col string, v any) {
		cols = append(cols, col)
		vals = append(vals, v)
	}
	if u.Phase != "" {
		add("phase", u.Phase)
	}
	if u.StartedAt != nil {
		add("started_at", nullTime(u.StartedAt))
	}
	if u.FinishedAt != nil {
		add("finished_at", nullTime(u.FinishedAt))
	}
	if u.Error != nil {
		v, err := jsonText(u.Error)
		if err != nil {
			return nil, nil, err
		}
		add("error", v)
	}
	if u.Totals != nil {
		v, _ := jsonText(u.Totals)
		add("totals", v)
	}
	if u.Outputs != nil {
		v, err := jsonText(u.Outputs)
		if err != nil {
			return nil, nil, err
		}
		add("outputs", v)
	}
	return cols, vals, nil
}

func (s *sqlCompressions) TransitionCompression(ctx context.Context, id string, from []JobStatus, u CompressionUpdate) (bool, error) {
	cols, vals, err := compressionUpdateColumns(u)
	if err != nil {
		return false, err
	}
	return transition(ctx, s.db, s.rewrite, "lowrank_compression", id, from, cols, vals)
}

// lockRunning locks the compression's row (Postgres; SQLite's transaction
// holds the one writer) and reports whether it is running in phase.
func (s *sqlCompressions) lockRunning(ctx context.Context, tx *sql.Tx, id, phase string) (bool, error) {
	// An UPDATE, not SELECT … FOR UPDATE, so SQLite takes its write lock
	// here, before anything is read, and concurrent steps cannot read the
	// same state and both act on it.
	res, err := tx.ExecContext(ctx, s.rewrite(`UPDATE lowrank_compression SET phase = phase WHERE id = ? AND status = ? AND phase = ?`),
		id, string(JobRunning), phase)
	if err != nil {
		return false, fmt.Errorf("store: compression %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *sqlCompressions) setLayer(ctx context.Context, tx interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, id string, u LayerUpdate, from LayerStatus) (bool, error) {
	cols, vals := []string{"status"}, []any{string(u.Status)}
	add := func(col string, v any) {
		cols = append(cols, col)
		vals = append(vals, v)
	}
	for _, f := range []struct {
		col string
		v   json.RawMessage
	}{{"analysis", u.Analysis}, {"allocation", u.Allocation}, {"result", u.Result}} {
		if f.v != nil {
			add(f.col, string(f.v))
		}
	}
	if u.Error != nil {
		v, err := jsonText(u.Error)
		if err != nil {
			return false, err
		}
		add("error", v)
	}
	if u.FactorsKey != "" {
		add("factors_key", u.FactorsKey)
	}
	set := make([]string, len(cols))
	for i, c := range cols {
		set[i] = c + " = ?"
	}
	q := `UPDATE lowrank_compression_layer SET ` + strings.Join(set, ", ") + ` WHERE compression_id = ? AND idx = ?`
	vals = append(vals, id, u.Index)
	if from != "" {
		q += ` AND status = ?`
		vals = append(vals, string(from))
	}
	res, err := tx.ExecContext(ctx, s.rewrite(q), vals...)
	if err != nil {
		return false, fmt.Errorf("store: update layer: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *sqlCompressions) Advance(ctx context.Context, id string, a Advance, enqueue Enqueue) (bool, error) {
	var ok bool
	err := s.tx(ctx, "advance compression", func(tx *sql.Tx) error {
		var err error
		if ok, err = s.lockRunning(ctx, tx, id, a.From); err != nil || !ok {
			return err
		}
		q, args := `UPDATE lowrank_compression SET phase = ?`, []any{a.To}
		if a.Plan != nil {
			q += `, plan = ?, layers_total = ?`
			args = append(args, string(a.Plan), len(a.Layers))
		}
		if _, err := tx.ExecContext(ctx, s.rewrite(q+` WHERE id = ?`), append(args, id)...); err != nil {
			return fmt.Errorf("store: advance compression: %w", err)
		}
		for _, l := range a.Layers {
			st := l.Status
			if st == "" {
				st = LayerPending
			}
			if _, err := tx.ExecContext(ctx, s.rewrite(`INSERT INTO lowrank_compression_layer (compression_id, idx, name, status)
				VALUES (?, ?, ?, ?)`), id, l.Index, l.Name, string(st)); err != nil {
				return fmt.Errorf("store: advance compression: %w", err)
			}
		}
		for _, u := range a.Updates {
			if _, err := s.setLayer(ctx, tx, id, u, ""); err != nil {
				return err
			}
		}
		if enqueue != nil {
			return enqueue(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return ok, nil
}

func (s *sqlCompressions) CompleteLayer(ctx context.Context, id, phase string, from LayerStatus, u LayerUpdate, next string, enqueue Enqueue) (done, last bool, err error) {
	err = s.tx(ctx, "complete layer", func(tx *sql.Tx) error {
		running, err := s.lockRunning(ctx, tx, id, phase)
		if err != nil || !running {
			return err
		}
		if done, err = s.setLayer(ctx, tx, id, u, from); err != nil || !done {
			return err
		}
		var left int
		if err := tx.QueryRowContext(ctx, s.rewrite(`SELECT COUNT(*) FROM lowrank_compression_layer WHERE compression_id = ? AND status = ?`),
			id, string(from)).Scan(&left); err != nil {
			return fmt.Errorf("store: complete layer: %w", err)
		}
		if left > 0 {
			return nil
		}
		last = true
		if _, err := tx.ExecContext(ctx, s.rewrite(`UPDATE lowrank_compression SET phase = ? WHERE id = ?`), next, id); err != nil {
			return fmt.Errorf("store: complete layer: %w", err)
		}
		if enqueue != nil {
			return enqueue(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return false, false, err
	}
	return done, last, nil
}

func (s *sqlCompressions) SetLayer(ctx context.Context, id string, u LayerUpdate) error {
	_, err := s.setLayer(ctx, s.db, id, u, "")
	return err
}

func (s *sqlCompressions) DeleteCompression(ctx context.Context, owner, id string) error {
	return s.tx(ctx, "delete compression", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.rewrite(`DELETE FROM lowrank_compression WHERE id = ? AND owner = ?`), id, owner)
		if err != nil {
			return fmt.Errorf("store: delete compression: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return lowrank.Errorf(lowrank.ENOTFOUND, "", "compression %s not found", id)
		}
		if _, err := tx.ExecContext(ctx, s.rewrite(`DELETE FROM lowrank_compression_layer WHERE compression_id = ?`), id); err != nil {
			return fmt.Errorf("store: delete compression: %w", err)
		}
		return nil
	})
}

func (s *sqlCompressions) ExpiredCompressions(ctx context.Context, cutoff time.Time, limit int) ([]*Compression, error) {
	return queryAll(ctx, s.reads, "expired compressions", scanCompression, s.rewrite(`SELECT `+compressionCols+
		` FROM lowrank_compression WHERE status IN (?, ?, ?) AND finished_at IS NOT NULL AND finished_at < ? ORDER BY finished_at LIMIT ?`),
		string(JobSucceeded), string(JobFailed), string(JobCanceled), cutoff.UnixNano(), limit)
}
