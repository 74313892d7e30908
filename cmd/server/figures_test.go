package main

import (
	"bytes"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/lowrank/lowrank/client"
)

// TestFigures measures the service, not its kernels; it runs only with
// LOWRANK_FIGURES=1 (and without -race, whose cost would dominate):
//
//	LOWRANK_FIGURES=1 go test -run TestFigures -v ./cmd/server
func TestFigures(t *testing.T) {
	if os.Getenv("LOWRANK_FIGURES") == "" {
		t.Skip("set LOWRANK_FIGURES=1 to measure")
	}
	if d, err := time.ParseDuration(os.Getenv("LOWRANK_FIGURES_POLL")); err == nil {
		pollInterval = d
	}
	t.Run("Throughput64x64", func(t *testing.T) {
		args := []string{"--queue-capacity", "10000"}
		if w := os.Getenv("LOWRANK_FIGURES_WORKERS"); w != "" {
			args = append(args, "--workers", w)
		}
		s := startServer(t, "", args...)
		// A plain client: validating every response against the spec costs
		// the test process more CPU than the server spends on a job.
		s.http = &http.Client{Timeout: time.Minute}
		c := s.client("")
		a := randTensor("", []int{64, 64}, 1, false)
		tn := mustUpload(t, c, npyBytes(t, a), nil)
		const clients, perClient = 8, 40
		start := time.Now()
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perClient {
					j := mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": 8}})
					if d := poll(t, c, j.Id, time.Minute); d.Status != client.JobStatusSucceeded {
						t.Errorf("job %s", d.Status)
					}
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		t.Logf("%d svd jobs on 64x64 f32 from %d clients (submit+poll): %.1f jobs/s", clients*perClient, clients, float64(clients*perClient)/el.Seconds())
		if lr, err := c.ListJobsWithResponse(ctx, &client.ListJobsParams{Limit: ptr(3)}); err == nil && lr.JSON200 != nil {
			for _, j := range lr.JSON200.Items {
				t.Logf("timings %v", j.Timings)
			}
		}
	})
	t.Run("Overhead4096", func(t *testing.T) {
		s := startWithSleep(t, "")
		c := s.client("")
		a := randTensor("", []int{4096, 4096}, 2, false)
		data := npyBytes(t, a)
		start := time.Now()
		tn := mustUpload(t, c, data, nil)
		up := time.Since(start)
		method, params := client.Method("sleep"), map[string]any{"seconds": 0}
		if m := os.Getenv("LOWRANK_FIGURES_METHOD"); m == "svd" {
			method, params = client.MethodSvd, map[string]any{"rank": 64, "algorithm": "randomized"}
		}
		j := mustSubmit(t, c, client.JobRequest{Method: method, TensorId: &tn.Id, Params: &params})
		d := poll(t, c, j.Id, 30*time.Minute)
		if d.Status != client.JobStatusSucceeded {
			t.Fatalf("job %s %+v", d.Status, d.Error)
		}
		var got int
		for _, f := range d.Result.Factors {
			resp, err := s.http.Get(s.url + f.Url)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			got += b.Len()
		}
		total := time.Since(start)
		compute := time.Duration(d.Timings["compute"] * float64(time.Second))
		t.Logf("4096x4096 f32 npy (%d MB), method %s: upload %s, total %s, compute %s, load %.3fs, write %.3fs, queue_wait %.3fs; overhead (total - compute) %s; %d factor bytes",
			len(data)>>20, method, up.Round(time.Millisecond), total.Round(time.Millisecond), compute.Round(time.Millisecond),
			d.Timings["load"], d.Timings["write"], d.Timings["queue_wait"], (total - compute).Round(time.Millisecond), got)
	})
}
