package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/store"
	"github.com/lowrank/lowrank/internal/store/pgtest"
	"github.com/lowrank/lowrank/internal/store/storetest"
)

// pg is this package's Postgres server, started by the first test that
// needs it.
var pg pgtest.Server

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	s3srv.Stop()
	os.Exit(code)
}

func openPostgres(t *testing.T, url string) *store.Postgres {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPostgresMeta(t *testing.T) {
	storetest.MetaStore(t, func(t *testing.T) store.MetaStore {
		return openPostgres(t, pg.NewDatabase(t))
	})
}

// Replicas starting together all run the schema; none may fail.
func TestPostgresConcurrentOpen(t *testing.T) {
	url := pg.NewDatabase(t)
	const replicas = 6
	var wg sync.WaitGroup
	errs := make(chan error, replicas)
	for range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := store.OpenPostgres(context.Background(), url)
			if err != nil {
				errs <- err
				return
			}
			errs <- s.Ping(context.Background())
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// Admission must hold across processes: two pools stand for two replicas,
// and a watcher on a third checks the cap between the submitters' commits,
// while slots are freed and refilled in several rounds.
func TestPostgresAdmissionAcrossPools(t *testing.T) {
	ctx := context.Background()
	url := pg.NewDatabase(t)
	replicas := []*store.Postgres{openPostgres(t, url), openPostgres(t, url)}
	watcher := openPostgres(t, url)
	const capacity, submitters, rounds = 4, 24, 3

	stop := make(chan struct{})
	var peak atomic.Int64
	watched := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				watched <- nil
				return
			default:
			}
			n, err := watcher.CountJobs(ctx, store.JobQueued, store.JobRunning)
			if err != nil {
				watched <- err
				return
			}
			if int64(n) > peak.Load() {
				peak.Store(int64(n))
			}
		}
	}()

	var admitted []string
	for round := range rounds {
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[string]int{}
		for i := range submitters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("r%d-%02d", round, i)
				// The enqueue callback lingers so transactions overlap.
				err := replicas[i%2].CreateJob(ctx, &store.Job{ID: id, Method: "svd", CreatedAt: time.Unix(0, 0)}, capacity,
					func(ctx context.Context, tx *sql.Tx) (int64, error) {
						time.Sleep(time.Millisecond)
						return int64(i), nil
					})
				mu.Lock()
				defer mu.Unlock()
				codes[lowrank.ErrorCode(err)]++
				if err == nil {
					admitted = append(admitted, id)
				}
			}()
		}
		wg.Wait()
		// Each round starts with every slot free, so exactly capacity get in.
		if codes[""] != capacity || codes[lowrank.EOVERLOADED] != submitters-capacity {
			t.Fatalf("round %d: %d submissions against capacity %d: %v", round, submitters, capacity, codes)
		}
		for _, id := range admitted {
			ok, err := replicas[0].TransitionJob(ctx, id, []store.JobStatus{store.JobQueued}, store.JobUpdate{Status: store.JobCanceled})
			if err != nil || !ok {
				t.Fatalf("cancel %s: %v %v", id, ok, err)
			}
		}
		admitted = admitted[:0]
	}
	close(stop)
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p > capacity {
		t.Fatalf("watcher saw %d active jobs, capacity %d", p, capacity)
	}
	if n, _ := watcher.CountJobs(ctx); n != capacity*rounds {
		t.Fatalf("%d jobs recorded, want %d", n, capacity*rounds)
	}
}

// The enqueue callback's writes commit and roll back with the job, which is
// what lets River insert its job row in the same transaction.
func TestPostgresEnqueueSharesTransaction(t *testing.T) {
	ctx := context.Background()
	s := openPostgres(t, pg.NewDatabase(t))
	if _, err := s.DB().ExecContext(ctx, `CREATE TABLE queue_probe (id BIGSERIAL PRIMARY KEY, job TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	enqueue := func(fail error) func(context.Context, *sql.Tx) (int64, error) {
		return func(ctx context.Context, tx *sql.Tx) (int64, error) {
			var id int64
			if err := tx.QueryRowContext(ctx, `INSERT INTO queue_probe (job) VALUES ('x') RETURNING id`).Scan(&id); err != nil {
				return 0, err
			}
			return id, fail
		}
	}
	boom := errors.New("queue down")
	if err := s.CreateJob(ctx, &store.Job{ID: "bad", Method: "svd"}, 0, enqueue(boom)); !errors.Is(err, boom) {
		t.Fatalf("CreateJob: %v, want the enqueue error", err)
	}
	if err := s.CreateJob(ctx, &store.Job{ID: "good", Method: "svd"}, 1, enqueue(nil)); err != nil {
		t.Fatal(err)
	}
	var probes int
	if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM queue_probe`).Scan(&probes); err != nil {
		t.Fatal(err)
	}
	j, err := s.GetJobByID(ctx, "good")
	if err != nil {
		t.Fatal(err)
	}
	// The failed attempt's row was rolled back; the sequence still moved.
	if probes != 1 || j.RiverID != 2 {
		t.Fatalf("%d probe rows, river id %d; want 1 row and id 2", probes, j.RiverID)
	}
}

// Times round-trip to the nanosecond, as in SQLite.
func TestPostgresTimePrecision(t *testing.T) {
	ctx := context.Background()
	s := openPostgres(t, pg.NewDatabase(t))
	at := time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC)
	if err := s.CreateJob(ctx, &store.Job{ID: "j", Method: "svd", CreatedAt: at}, 0, nil); err != nil {
		t.Fatal(err)
	}
	started := at.Add(time.Nanosecond)
	if ok, err := s.TransitionJob(ctx, "j", []store.JobStatus{store.JobQueued}, store.JobUpdate{Status: store.JobRunning, StartedAt: &started}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	j, err := s.GetJobByID(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	if !j.CreatedAt.Equal(at) || !j.StartedAt.Equal(started) {
		t.Fatalf("created %v started %v, want %v and %v", j.CreatedAt, j.StartedAt, at, started)
	}
}
