package jobs_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/jobs/jobstest"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/store"
)

type bundle struct {
	svc   *jobs.Service
	meta  store.MetaStore
	blobs store.BlobStore
	codec jobs.Codec
	db    *sql.DB // the metadata and queue's database, for raw SQL
	// metrics gathers what the Service registered (nil if a mod gave it a
	// Registerer that cannot gather).
	metrics prometheus.Gatherer
}

// The databases a Service may keep its metadata and queue in.
const (
	onSQLite   = "sqlite"
	onPostgres = "postgres"
)

// place is where a test's Services keep their state: a directory for the
// blobs (and the SQLite file), and on Postgres a database. Services set up
// on one place in turn see each other's jobs, as a restarted server or
// replicas sharing a database do.
type place struct {
	dir string
	url string // the Postgres database; "" on SQLite
}

// newPlace makes an empty place on the named database, skipping t when
// that is Postgres and no server can be had.
func newPlace(t testing.TB, database string) place {
	t.Helper()
	p := place{dir: t.TempDir()}
	if database == onPostgres {
		p.url = pg.NewDatabase(t)
	}
	return p
}

// eachDatabase runs f as a subtest on SQLite and on Postgres.
func eachDatabase(t *testing.T, f func(t *testing.T, database string)) {
	for _, database := range []string{onSQLite, onPostgres} {
		t.Run(database, func(t *testing.T) { f(t, database) })
	}
}

// setup starts a Service on a fresh SQLite database and blob directory.
func setup(t *testing.T, mod func(*jobs.Config)) *bundle {
	t.Helper()
	return setupAt(t, newPlace(t, onSQLite), true, mod)
}

// setupOn starts a Service on a fresh place on the named database.
func setupOn(t *testing.T, database string, mod func(*jobs.Config)) *bundle {
	t.Helper()
	return setupAt(t, newPlace(t, database), true, mod)
}

// setupAt builds a Service on the database and blobs of p, started or not.
func setupAt(t testing.TB, p place, start bool, mod func(*jobs.Config)) *bundle {
	t.Helper()
	b, err := build(t, p, mod)
	if err != nil {
		t.Fatal(err)
	}
	if start {
		if err := b.svc.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// build is setupAt without starting, and safe to call from any goroutine.
func build(t testing.TB, p place, mod func(*jobs.Config)) (*bundle, error) {
	ctx := context.Background()
	var (
		meta  store.MetaStore
		queue jobs.Queue
		db    *sql.DB
	)
	if p.url == "" {
		var err error
		db, err = store.OpenSQLite(filepath.Join(p.dir, "lowrank.db"))
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { db.Close() })
		if meta, err = store.NewSQLiteMeta(ctx, db); err != nil {
			return nil, err
		}
		queue = jobs.SQLiteQueue(db)
	} else {
		pgs, err := store.OpenPostgres(ctx, p.url)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { pgs.Close() })
		meta, queue, db = pgs, jobs.PostgresQueue(pgs.Pool()), pgs.DB()
	}
	blobs, err := store.NewLocalBlobs(filepath.Join(p.dir, "blobs"))
	if err != nil {
		return nil, err
	}
	cfg := jobs.Config{
		Queue: queue, Meta: meta, Blobs: blobs, Codec: jobs.TensorioCodec{}, Registry: registry(),
		Backend: linalg.Default(1), Workers: 2, QueueCapacity: 100,
		Limits: jobs.Limits{MaxElements: 1 << 20, MaxRank: 64, MaxIterations: 100},
		Logger: zaptest.NewLogger(t), Metrics: prometheus.NewRegistry(), Version: "test",
	}
	if mod != nil {
		mod(&cfg)
	}
	svc, err := jobs.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// Stopped before the database closes: cleanups run last first.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = svc.Stop(ctx)
	})
	g, _ := cfg.Metrics.(prometheus.Gatherer)
	return &bundle{svc: svc, meta: meta, blobs: blobs, codec: cfg.Codec, db: db, metrics: g}, nil
}

func registry() jobs.Registry {
	r := jobs.DefaultRegistry()
	r["sleep"] = jobstest.SleepMethod()
	return r
}

func randMatrix(m, n int, seed uint64) *jobs.Tensor {
	rng := rand.New(rand.NewPCG(seed, 7))
	t := &jobs.Tensor{Shape: []int{m, n}, DType: "float64", F64: make([]float64, m*n)}
	for i := range t.F64 {
		t.F64[i] = rng.NormFloat64()
	}
	return t
}

func wait(t *testing.T, b *bundle, id string, want store.JobStatus) *store.Job {
	t.Helper()
	return waitWithin(t, b, id, want, 20*time.Second)
}

// waitWithin polls job id until it has status want, failing t after
// timeout or if the job ends otherwise.
func waitWithin(t *testing.T, b *bundle, id string, want store.JobStatus, timeout time.Duration) *store.Job {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		j, err := b.meta.GetJobByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == want {
			return j
		}
		if j.Status.Finished() {
			t.Fatalf("job %s ended %s (error %+v), want %s", id, j.Status, j.Error, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("job %s did not reach %s", id, want)
	return nil
}

func TestSVDJobReconstructs(t *testing.T) { eachDatabase(t, testSVDJobReconstructs) }

func testSVDJobReconstructs(t *testing.T, database string) {
	b := setupOn(t, database, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		m, n   int
		params string
		rank   int
	}{
		{6, 4, `{"rank": 4, "precision": "float64"}`, 4},
		{5, 9, `{"rank": 2, "precision": "float64"}`, 2},
		{1, 1, `{"rank": 1, "precision": "float64"}`, 1},
	} {
		in := randMatrix(tc.m, tc.n, uint64(tc.m*100+tc.n))
		j, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: in, Method: "svd", Params: []byte(tc.params)})
		if err != nil {
			t.Fatal(err)
		}
		done := wait(t, b, j.ID, store.JobSucceeded)
		var res jobs.Result
		if err := json.Unmarshal(done.Result, &res); err != nil {
			t.Fatal(err)
		}
		if len(res.Ranks) != 1 || res.Ranks[0] != tc.rank || len(res.Factors) != 3 {
			t.Fatalf("%s: result %+v", tc.params, res)
		}
		blob, err := b.blobs.Open(ctx, done.BundleKey)
		if err != nil {
			t.Fatal(err)
		}
		get := func(name string) *jobs.Tensor {
			x, err := b.codec.ReadTensor(blob, blob.Size(), name)
			if err != nil {
				t.Fatal(err)
			}
			return x
		}
		u, s, vt := get("U"), get("S"), get("Vt")
		blob.Close()
		// Residual of the rank-r approximation: ‖A − U·diag(S)·Vt‖_F must
		// equal the reported rel_error·‖A‖_F (Eckart–Young), to float64
		// rounding amplified by the size (1e-10 is generous for n ≤ 9).
		r := tc.rank
		var res2, norm2 float64
		for i := range tc.m {
			for k := range tc.n {
				var v float64
				for l := range r {
					v += u.F64[i*r+l] * s.F64[l] * vt.F64[l*tc.n+k]
				}
				d := in.F64[i*tc.n+k] - v
				res2 += d * d
				norm2 += in.F64[i*tc.n+k] * in.F64[i*tc.n+k]
			}
		}
		if got := math.Sqrt(res2 / norm2); math.Abs(got-res.RelError) > 1e-10 {
			t.Errorf("%dx%d %s: residual %g, reported rel_error %g", tc.m, tc.n, tc.params, got, res.RelError)
		}
		if r == min(tc.m, tc.n) && res.RelError > 1e-12 {
			t.Errorf("full rank rel_error %g, want ~0", res.RelError)
		}
	}
}

func TestSubmitValidation(t *testing.T) {
	b := setup(t, nil)
	ctx := context.Background()
	in := randMatrix(4, 3, 1)
	for _, tc := range []struct {
		method, params string
		tensor         *jobs.Tensor
		code, field    string
	}{
		{"svd", `{"rank": 4}`, in, lowrank.EINVALID, "params.rank"},
		{"svd", `{"rank": -1}`, in, lowrank.EINVALID, "params.rank"},
		{"svd", `{}`, in, lowrank.EINVALID, "params.rank"},
		{"svd", `{"rank": 1, "energy": 0.5}`, in, lowrank.EINVALID, "params.rank"},
		{"svd", `{"energy": 1.5}`, in, lowrank.EINVALID, "params.energy"},
		{"svd", `{"rank": "two"}`, in, lowrank.EINVALID, "params.rank"},
		{"svd", `{"rank": 1, "bogus": 1}`, in, lowrank.EINVALID, "params.bogus"},
		{"svd", `{"rank": 1, "algorithm": "magic"}`, in, lowrank.EINVALID, "params.algorithm"},
		{"svd", `{"rank": 1, "precision": "float16"}`, in, lowrank.EINVALID, "params.precision"},
		{"svd", `{"rank": 1}`, &jobs.Tensor{Shape: []int{5}, F64: make([]float64, 5)}, lowrank.EINVALID, "tensor"},
		{"svd", `{"rank": 1}`, &jobs.Tensor{Shape: []int{2, 2}, F64: make([]float64, 3)}, lowrank.EINVALID, "tensor.data"},
		{"cp", `{"rank": 0}`, in, lowrank.EINVALID, "params.rank"},
		{"cp", `{"rank": 65}`, in, lowrank.ETOOLARGE, "params.rank"},
		{"cp", `{"rank": 2, "max_iter": 101}`, in, lowrank.ETOOLARGE, "params.max_iter"},
		{"tucker", `{"ranks": [2, 9]}`, in, lowrank.EINVALID, "params.ranks[1]"},
		{"pca", `{"n_components": 1.5}`, in, lowrank.EINVALID, "params.n_components"},
		{"nmf", `{}`, in, lowrank.EINVALID, "method"},
	} {
		_, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: tc.tensor, Method: tc.method, Params: []byte(tc.params)})
		var e *lowrank.Error
		if !asError(err, &e) || e.Code != tc.code || e.Field != tc.field {
			t.Errorf("%s %s: err %v (%+v), want %s on %s", tc.method, tc.params, err, e, tc.code, tc.field)
		}
	}
	_, err := b.svc.Submit(ctx, jobs.SubmitRequest{TensorID: "nope", Method: "svd", Params: []byte(`{"rank":1}`)})
	if lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
		t.Errorf("missing tensor: %v", err)
	}
}

func TestQueueCapacity(t *testing.T) { eachDatabase(t, testQueueCapacity) }

func testQueueCapacity(t *testing.T, database string) {
	b := setupOn(t, database, func(c *jobs.Config) { c.QueueCapacity = 2; c.Workers = 1 })
	ctx := context.Background()
	in := randMatrix(2, 2, 3)
	var ids []string
	for range 2 {
		j, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: in, Method: "sleep", Params: []byte(`{"seconds": 0.3}`)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	_, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: in, Method: "sleep", Params: []byte(`{"seconds": 0.3}`)})
	if lowrank.ErrorCode(err) != lowrank.EOVERLOADED {
		t.Fatalf("third job with capacity 2: %v, want EOVERLOADED", err)
	}
	for _, id := range ids {
		wait(t, b, id, store.JobSucceeded)
	}
	// Room again.
	if _, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: in, Method: "sleep", Params: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
}

func TestCancelQueuedRunningAndDelete(t *testing.T) {
	eachDatabase(t, testCancelQueuedRunningAndDelete)
}

func testCancelQueuedRunningAndDelete(t *testing.T, database string) {
	b := setupOn(t, database, func(c *jobs.Config) { c.Workers = 1; c.ProgressInterval = time.Millisecond })
	ctx := context.Background()
	in := randMatrix(2, 2, 5)
	running, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: in, Method: "sleep", Params: []byte(`{"seconds": 30}`)})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: in, Method: "sleep", Params: []byte(`{"seconds": 30}`)})
	if err != nil {
		t.Fatal(err)
	}
	j, err := b.svc.Delete(ctx, "", queued.ID)
	if err != nil || j == nil || j.Status != store.JobCanceled || j.FinishedAt == nil {
		t.Fatalf("cancel queued: %+v %v", j, err)
	}
	r := wait(t, b, running.ID, store.JobRunning)
	// Progress arrives while it runs.
	deadline := time.Now().Add(10 * time.Second)
	for r.Progress.Iteration == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		r, _ = b.meta.GetJobByID(ctx, running.ID)
	}
	if r.Progress.Iteration == 0 || r.Progress.MaxIterations != 1000 || r.Progress.RelError == nil {
		t.Fatalf("no progress: %+v", r.Progress)
	}
	start := time.Now()
	j, err = b.svc.Delete(ctx, "", running.ID)
	if err != nil || j == nil || j.Status != store.JobCanceled {
		t.Fatalf("cancel running: %+v %v", j, err)
	}
	// The worker lets go at once: a new job runs promptly.
	next, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: in, Method: "svd", Params: []byte(`{"rank": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	done := wait(t, b, next.ID, store.JobSucceeded)
	if time.Since(start) > 10*time.Second {
		t.Errorf("worker freed after %s", time.Since(start))
	}
	for _, id := range []string{queued.ID, running.ID} {
		if j, _ := b.meta.GetJobByID(ctx, id); j.Status != store.JobCanceled {
			t.Errorf("job %s ended %s, want canceled", id, j.Status)
		}
	}
	if j, _ := b.meta.GetJobByID(ctx, queued.ID); j.StartedAt != nil {
		t.Errorf("canceled queued job ran")
	}
	// Deleting a finished job removes it and its bundle.
	if j, err := b.svc.Delete(ctx, "", done.ID); err != nil || j != nil {
		t.Fatalf("delete finished: %v %v", j, err)
	}
	if _, err := b.blobs.Open(ctx, done.BundleKey); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
		t.Fatalf("bundle left behind: %v", err)
	}
	if _, err := b.meta.GetJobByID(ctx, done.ID); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
		t.Fatalf("job left behind: %v", err)
	}
}

func TestOrphansRequeuedAtStart(t *testing.T) { eachDatabase(t, testOrphansRequeuedAtStart) }

func testOrphansRequeuedAtStart(t *testing.T, database string) {
	at := newPlace(t, database)
	ctx := context.Background()
	// A process that queued a job, began it and died: River's row and the
	// metadata both say running, and no worker holds it.
	first := setupAt(t, at, false, nil)
	j, err := first.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(4, 3, 9), Method: "svd", Params: []byte(`{"rank": 2}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.db.ExecContext(ctx, `UPDATE river_job SET state = 'running', attempt = 1`); err != nil {
		t.Fatal(err)
	}
	if ok, err := first.meta.TransitionJob(ctx, j.ID, []store.JobStatus{store.JobQueued}, store.JobUpdate{Status: store.JobRunning}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if database == onSQLite {
		first.db.Close()
	}

	second := setupAt(t, at, true, func(c *jobs.Config) { c.SingleProcess = true })
	wait(t, second, j.ID, store.JobSucceeded)
}
