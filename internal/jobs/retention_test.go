package jobs_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/store"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestExpire(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	reg := prometheus.NewRegistry()
	b := setup(t, func(c *jobs.Config) {
		c.Now, c.Retention, c.Metrics = clock.Now, time.Hour, reg
		c.CleanInterval = time.Hour // only the explicit Expire calls below run
	})
	ctx := context.Background()

	// An inline job (its input is a private copy) that succeeds.
	j, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(4, 3, 1), Method: "svd", Params: []byte(`{"rank": 2}`)})
	if err != nil {
		t.Fatal(err)
	}
	done := wait(t, b, j.ID, store.JobSucceeded)
	// An uploaded tensor.
	if _, err := b.blobs.Put(ctx, "tup", strings.NewReader("data")); err != nil {
		t.Fatal(err)
	}
	if err := b.meta.CreateTensor(ctx, &store.Tensor{ID: "tup", Format: "npy", CreatedAt: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	blobThere := func(key string) bool {
		blob, err := b.blobs.Open(ctx, key)
		if err == nil {
			blob.Close()
			return true
		}
		if lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
			t.Fatal(err)
		}
		return false
	}
	if !blobThere(done.BundleKey) || !blobThere(done.InputKey) {
		t.Fatal("bundle or input missing before expiry")
	}

	clock.Advance(59 * time.Minute)
	if nt, nj, err := b.svc.Expire(ctx); err != nil || nt != 0 || nj != 0 {
		t.Fatalf("Expire before the retention = %d tensors, %d jobs, %v; want nothing", nt, nj, err)
	}
	clock.Advance(2 * time.Minute)
	if nt, nj, err := b.svc.Expire(ctx); err != nil || nt != 1 || nj != 1 {
		t.Fatalf("Expire after the retention = %d tensors, %d jobs, %v; want 1, 1", nt, nj, err)
	}
	if _, err := b.meta.GetJobByID(ctx, j.ID); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
		t.Errorf("expired job: %v, want ENOTFOUND", err)
	}
	if _, err := b.meta.GetTensor(ctx, "", "tup"); lowrank.ErrorCode(err) != lowrank.ENOTFOUND {
		t.Errorf("expired tensor: %v, want ENOTFOUND", err)
	}
	for _, key := range []string{done.BundleKey, done.InputKey, "tup"} {
		if blobThere(key) {
			t.Errorf("blob %s survived its record", key)
		}
	}
	const want = `
# HELP lowrank_expired_total Records removed by retention, by kind (tensor, job, compression).
# TYPE lowrank_expired_total counter
lowrank_expired_total{kind="job"} 1
lowrank_expired_total{kind="tensor"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "lowrank_expired_total"); err != nil {
		t.Error(err)
	}
}

func TestExpireKeepsForeverWithoutRetention(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	b := setup(t, func(c *jobs.Config) { c.Now = clock.Now })
	ctx := context.Background()
	j, err := b.svc.Submit(ctx, jobs.SubmitRequest{Inline: randMatrix(2, 2, 1), Method: "svd", Params: []byte(`{"rank": 1}`)})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, b, j.ID, store.JobSucceeded)
	clock.Advance(100 * 365 * 24 * time.Hour)
	if nt, nj, err := b.svc.Expire(ctx); err != nil || nt+nj != 0 {
		t.Fatalf("Expire with retention 0 = %d, %d, %v", nt, nj, err)
	}
	if _, err := b.meta.GetJobByID(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
}
