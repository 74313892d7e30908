package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// Queue is the database River keeps its jobs in: SQLiteQueue for the
// embedded deployment, PostgresQueue for the scale-out one. It is chosen
// where the Config is built; the Service runs one code path on either.
type Queue interface {
	// Ping reports whether the database is usable.
	Ping(ctx context.Context) error
	// Name says which database it is ("sqlite", "postgres").
	Name() string

	// migrate brings River's tables up to date.
	migrate(ctx context.Context, log *slog.Logger) error
	// client builds the River client that works the queue.
	client(cfg *river.Config) (riverClient, error)
	// requeueRunning makes every running River job available again.
	requeueRunning(ctx context.Context) (int64, error)
	// fetchDefaults are River's fetch settings for this database.
	fetchDefaults() (cooldown, pollInterval time.Duration)
}

// riverClient is what the Service asks of River, whatever the driver's
// transaction type.
type riverClient interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	JobCancel(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	// insertTx queues a job in tx, the meta store's transaction, and
	// returns River's id for it.
	insertTx(ctx context.Context, tx *sql.Tx, args river.JobArgs) (int64, error)
}

// client pairs a working River client with the one that inserts in the meta
// store's transactions (on SQLite they are the same).
type client[TTx any] struct {
	*river.Client[TTx]
	insert func(ctx context.Context, tx *sql.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
}

func (c client[TTx]) insertTx(ctx context.Context, tx *sql.Tx, args river.JobArgs) (int64, error) {
	res, err := c.insert(ctx, tx, args, nil)
	if err != nil {
		return 0, err
	}
	return res.Job.ID, nil
}

// SQLiteQueue keeps the queue in db, the SQLite database of the meta store,
// so a job's record and its queue row commit in one transaction.
func SQLiteQueue(db *sql.DB) Queue { return sqliteQueue{db} }

type sqliteQueue struct{ db *sql.DB }

func (q sqliteQueue) Ping(ctx context.Context) error { return q.db.PingContext(ctx) }
func (q sqliteQueue) Name() string                   { return "sqlite" }

func (q sqliteQueue) migrate(ctx context.Context, log *slog.Logger) error {
	migrator, err := rivermigrate.New(riversqlite.New(q.db), &rivermigrate.Config{Logger: log})
	if err != nil {
		return fmt.Errorf("jobs: river migrator: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("jobs: river migrations: %w", err)
	}
	return nil
}

func (q sqliteQueue) client(cfg *river.Config) (riverClient, error) {
	c, err := river.NewClient(riversqlite.New(q.db), cfg)
	if err != nil {
		return nil, err
	}
	return client[*sql.Tx]{Client: c, insert: c.InsertTx}, nil
}

func (q sqliteQueue) requeueRunning(ctx context.Context) (int64, error) {
	res, err := q.db.ExecContext(ctx, requeueRunningSQL)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// River's defaults (a fetch at most every 100 ms, a poll every second) suit
// Postgres with LISTEN/NOTIFY; on SQLite, whose listener polls, they cap a
// worker at a handful of small jobs a second (see BenchmarkNoopJobs).
func (sqliteQueue) fetchDefaults() (time.Duration, time.Duration) {
	return DefaultFetchCooldown, DefaultFetchPollInterval
}

const requeueRunningSQL = `UPDATE river_job SET state = 'available' WHERE state = 'running'`

// PostgresQueue keeps the queue in the Postgres database behind pool, the
// pool the meta store draws from (store.Postgres.Pool).
//
// Two River clients share the pool. The one that works the queue uses
// River's pgx driver, whose listener hears of new jobs and of cancellations
// through LISTEN/NOTIFY, so a job submitted to one replica starts at once on
// whichever replica has a free worker, and a cancel reaches the replica
// running the job. But the meta store hands enqueue a *sql.Tx, which the pgx
// driver cannot use; so a second, insert-only client (no queues, never
// started) on River's database/sql driver, over the same pool through pgx's
// stdlib adapter, inserts the job row in that transaction, sending River's
// insert notification in it too. Record and queue row still commit together.
func PostgresQueue(pool *pgxpool.Pool) Queue { return postgresQueue{pool} }

type postgresQueue struct{ pool *pgxpool.Pool }

func (q postgresQueue) Ping(ctx context.Context) error { return q.pool.Ping(ctx) }
func (q postgresQueue) Name() string                   { return "postgres" }

// pgLockRiverMigrate is the advisory lock key under which River's
// migrations run; it continues the keys of package store (which begin with
// the bytes of "lowrank"), away from the keys River takes itself.
const pgLockRiverMigrate int64 = 0x6c6f7772616e6b03

// migrate runs River's migrations holding an advisory lock, so replicas
// starting together apply them one at a time: the first migrates, the
// others wait, then find nothing left to do. The lock is the session's
// (held on one connection of the pool while the migrator uses others), not
// a transaction's, because River's migrations cannot all share one
// transaction (one adds an enum value that a later one uses); it ends with
// the session if the process dies.
func (q postgresQueue) migrate(ctx context.Context, log *slog.Logger) error {
	migrator, err := rivermigrate.New(riverpgxv5.New(q.pool), &rivermigrate.Config{Logger: log})
	if err != nil {
		return fmt.Errorf("jobs: river migrator: %w", err)
	}
	conn, err := q.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("jobs: river migrations: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, pgLockRiverMigrate); err != nil {
		return fmt.Errorf("jobs: river migrations: lock: %w", err)
	}
	_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, pgLockRiverMigrate); uerr != nil {
		// Closing the session is the other way to let go of the lock.
		_ = conn.Conn().Close(context.WithoutCancel(ctx))
	}
	if err != nil {
		return fmt.Errorf("jobs: river migrations: %w", err)
	}
	return nil
}

func (q postgresQueue) client(cfg *river.Config) (riverClient, error) {
	c, err := river.NewClient(riverpgxv5.New(q.pool), cfg)
	if err != nil {
		return nil, err
	}
	// The same defaults (MaxAttempts above all) apply to the jobs it
	// inserts; Workers stays so an unknown kind is refused at insert.
	icfg := *cfg
	icfg.Queues = nil
	inserter, err := river.NewClient(riverdatabasesql.New(stdlib.OpenDBFromPool(q.pool)), &icfg)
	if err != nil {
		return nil, err
	}
	return client[pgx.Tx]{Client: c, insert: inserter.InsertTx}, nil
}

func (q postgresQueue) requeueRunning(ctx context.Context) (int64, error) {
	tag, err := q.pool.Exec(ctx, requeueRunningSQL)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// Fetch settings for Postgres. New jobs arrive by notification, so the
// poll is only a fallback for a missed one and can stay at River's second
// (an idle replica then costs the database one query a second). The
// cooldown spaces the fetches that notifications and finished jobs trigger;
// River's 100 ms would hold small jobs back (it caps a replica at ten
// fetches a second), while 10 ms still keeps a burst of submissions from
// turning into a query each.
const (
	PostgresFetchCooldown     = 10 * time.Millisecond
	PostgresFetchPollInterval = time.Second
)

func (postgresQueue) fetchDefaults() (time.Duration, time.Duration) {
	return PostgresFetchCooldown, PostgresFetchPollInterval
}
