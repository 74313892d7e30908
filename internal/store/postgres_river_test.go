package store_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/lowrank/lowrank/internal/store"
)

type probeArgs struct {
	JobID string `json:"job_id"`
}

func (probeArgs) Kind() string { return "lowrank_probe" }

// River's database/sql driver inserts its job row through the *sql.Tx that
// CreateJob hands to enqueue, so the job record and the queue row commit or
// roll back together on Postgres as they do on SQLite.
func TestPostgresRiverInsertInCreateJob(t *testing.T) {
	ctx := context.Background()
	s := openPostgres(t, pg.NewDatabase(t))
	driver := riverdatabasesql.New(s.DB())
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		t.Fatal(err)
	}
	client, err := river.NewClient(driver, &river.Config{}) // insert-only: no queues, no workers
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(fail error) func(context.Context, *sql.Tx) (int64, error) {
		return func(ctx context.Context, tx *sql.Tx) (int64, error) {
			res, err := client.InsertTx(ctx, tx, probeArgs{JobID: "x"}, nil)
			if err != nil {
				return 0, err
			}
			return res.Job.ID, fail
		}
	}
	boom := errors.New("boom after insert")
	if err := s.CreateJob(ctx, &store.Job{ID: "bad", Method: "svd"}, 1, enqueue(boom)); !errors.Is(err, boom) {
		t.Fatalf("CreateJob: %v, want the enqueue error", err)
	}
	if err := s.CreateJob(ctx, &store.Job{ID: "good", Method: "svd"}, 1, enqueue(nil)); err != nil {
		t.Fatal(err)
	}
	j, err := s.GetJobByID(ctx, "good")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	rows, err := s.DB().QueryContext(ctx, `SELECT id, kind FROM river_job`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var kind string
		if err := rows.Scan(&id, &kind); err != nil {
			t.Fatal(err)
		}
		if id != j.RiverID {
			t.Errorf("river job %d, but the job records river id %d", id, j.RiverID)
		}
		kinds = append(kinds, kind)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(kinds) != 1 || kinds[0] != "lowrank_probe" {
		t.Fatalf("river jobs %v, want exactly the committed one", kinds)
	}
}
