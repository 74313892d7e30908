package main

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/lowrank/lowrank/client"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestRetention(t *testing.T) {
	t.Parallel()
	clock := &testClock{now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)}
	s := startServerHooks(t, "", hooks{now: clock.Now, cleanInterval: 10 * time.Millisecond}, "--retention", "1h")
	c := s.client("")
	tn := mustUpload(t, c, npyBytes(t, randTensor("", []int{4, 3}, 1, false)), nil)
	j := mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": 2}})
	if d := poll(t, c, j.Id, 30*time.Second); d.Status != client.JobStatusSucceeded {
		t.Fatalf("job %s", d.Status)
	}
	// Several cleaner periods pass with the clock short of the retention:
	// everything stays.
	clock.Advance(59 * time.Minute)
	time.Sleep(100 * time.Millisecond)
	if r, _ := c.GetTensorWithResponse(ctx, tn.Id); r.StatusCode() != http.StatusOK {
		t.Fatalf("tensor before retention: %d", r.StatusCode())
	}
	if r, _ := c.GetFactorWithResponse(ctx, j.Id, "S", nil); r.StatusCode() != http.StatusOK {
		t.Fatalf("factor before retention: %d", r.StatusCode())
	}
	clock.Advance(2 * time.Minute)
	deadline := time.Now().Add(10 * time.Second)
	for {
		tr, _ := c.GetTensorWithResponse(ctx, tn.Id)
		jr, _ := c.GetJobWithResponse(ctx, j.Id)
		if tr.StatusCode() == http.StatusNotFound && jr.StatusCode() == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after retention: tensor %d, job %d; want both 404", tr.StatusCode(), jr.StatusCode())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r, _ := c.GetFactorWithResponse(ctx, j.Id, "S", nil); r.StatusCode() != http.StatusNotFound {
		t.Errorf("factor after retention: %d", r.StatusCode())
	}
	// The cleaner counts a record just after deleting it, so the counters
	// may trail the 404s by a moment.
	waitMetrics(t, c, 10*time.Second, `lowrank_expired_total{kind="job"} 1`, `lowrank_expired_total{kind="tensor"} 1`)
}
