package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lowrank/lowrank/client"
	"github.com/lowrank/lowrank/internal/store/pgtest"
	"github.com/lowrank/lowrank/internal/store/s3test"
)

// pg and s3srv are this package's Postgres and S3 servers, started by the
// first test that needs each; without them those tests skip.
var (
	pg    pgtest.Server
	s3srv s3test.Server
)

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	s3srv.Stop()
	os.Exit(code)
}

// s3Args are the flags that put a server's blobs in a fresh bucket (under
// a prefix, as a shared bucket would be used).
func s3Args(t *testing.T) []string {
	cfg := s3srv.NewBucket(t)
	args := []string{"--blob-url", "s3://" + cfg.Bucket + "/lowrank/blobs", "--s3-endpoint", cfg.Endpoint,
		"--s3-access-key", cfg.AccessKey, "--s3-secret-key", cfg.SecretKey}
	if cfg.Region != "" {
		args = append(args, "--s3-region", cfg.Region)
	}
	if !cfg.Secure {
		args = append(args, "--s3-insecure")
	}
	return args
}

// The end-to-end flow on the scale-out stores: metadata and queue in
// Postgres with blobs in local files or S3, and SQLite with S3.
func TestEndToEndScaleOut(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name           string
		postgres, onS3 bool
	}{
		{"postgres+files", true, false},
		{"postgres+s3", true, true},
		{"sqlite+s3", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var args []string
			if tc.postgres {
				args = append(args, "--database-url", pg.NewDatabase(t))
			}
			if tc.onS3 {
				args = append(args, s3Args(t)...)
			}
			dir := testEndToEnd(t, args)
			_, err := os.Stat(filepath.Join(dir, "blobs"))
			if tc.onS3 != os.IsNotExist(err) {
				t.Errorf("blob dir under --data-dir: %v, with S3 %v", err, tc.onS3)
			}
			if tc.onS3 {
				bucket := args[slices.Index(args, "--blob-url")+1][len("s3://"):]
				bucket = bucket[:strings.IndexByte(bucket, '/')]
				n := 0
				for obj := range s3srv.Client().ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "lowrank/blobs/", Recursive: true}) {
					if obj.Err != nil {
						t.Fatal(obj.Err)
					}
					n++
				}
				// The upload, an inline input and their jobs' bundles.
				if n < 4 {
					t.Errorf("%d objects under the prefix, want the blobs there", n)
				}
			}
		})
	}
}

// testEndToEnd uploads, decomposes, downloads and checks the
// reconstruction, cancels, and restarts the server on the same stores,
// which then finishes the jobs it left. It returns the data dir.
func testEndToEnd(t *testing.T, args []string) string {
	dir := t.TempDir()
	s := startWithSleep(t, dir, append([]string{"--workers", "1", "--shutdown-grace", "50ms"}, args...)...)
	c := s.client("")
	if r, err := c.GetReadyWithResponse(ctx); err != nil || r.StatusCode() != http.StatusOK {
		t.Fatalf("readyz: %v %d", err, r.StatusCode())
	}
	wantStorage := client.Storage{Database: client.StorageDatabaseSqlite, Blobs: client.StorageBlobsFiles}
	if slices.Contains(args, "--database-url") {
		wantStorage.Database = client.StorageDatabasePostgres
	}
	if slices.Contains(args, "--blob-url") {
		wantStorage.Blobs = client.StorageBlobsS3
	}
	if r, err := c.GetInfoWithResponse(ctx); err != nil || r.JSON200 == nil || r.JSON200.Storage == nil || *r.JSON200.Storage != wantStorage {
		t.Errorf("info storage: %v %s, want %+v", err, r.Body, wantStorage)
	}

	const m, n = 48, 32
	a := randTensor("", []int{m, n}, 11, false)
	tn := mustUpload(t, c, npyBytes(t, a), nil)
	j := mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": 5}})
	checkSVD(t, c, poll(t, c, j.Id, 30*time.Second), f64s(a), m, n, tolF32)
	b := randTensor("", []int{7, 5}, 12, true)
	j = mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, Tensor: &client.InlineTensor{Shape: b.Shape, Data: b.F64},
		Params: &map[string]any{"rank": 3}})
	checkSVD(t, c, poll(t, c, j.Id, 30*time.Second), b.F64, 7, 5, 1e-12)

	running := mustSubmit(t, c, sleepJob(60))
	waitStatus(t, c, running.Id, client.JobStatusRunning)
	if dr, err := c.DeleteJobWithResponse(ctx, running.Id); err != nil || dr.JSON200 == nil || dr.JSON200.Status != client.JobStatusCanceled {
		t.Fatalf("cancel running: %v %d %s", err, dr.StatusCode(), dr.Body)
	}

	// A job cut short by the shutdown and one still queued both finish
	// after a restart on the same database.
	ids := []string{mustSubmit(t, c, sleepJob(2)).Id}
	ids = append(ids, mustSubmit(t, c, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": 2}}).Id)
	waitStatus(t, c, ids[0], client.JobStatusRunning)
	s.stop()
	s2 := startWithSleep(t, dir, append([]string{"--workers", "2"}, args...)...)
	c2 := s2.client("")
	for _, id := range ids {
		if d := poll(t, c2, id, 60*time.Second); d.Status != client.JobStatusSucceeded {
			t.Errorf("job %s after restart: %s %+v", id, d.Status, d.Error)
		}
	}
	checkSVD(t, c2, poll(t, c2, ids[1], time.Second), f64s(a), m, n, tolF32)
	if r, _ := c2.GetJobWithResponse(ctx, running.Id); r.JSON200 == nil || r.JSON200.Status != client.JobStatusCanceled {
		t.Errorf("canceled job after restart: %s", r.Body)
	}
	return dir
}

// Two servers on one database (and one blob directory) are replicas: a
// job submitted to one is seen, and downloaded, through the other, and a
// cancel sent to the replica not running a job stops it at once (River's
// LISTEN/NOTIFY reaches the one that is).
func TestReplicasShareJobs(t *testing.T) {
	t.Parallel()
	url := pg.NewDatabase(t)
	dir := t.TempDir()
	s1 := startWithSleep(t, dir, "--database-url", url, "--workers", "1")
	c1 := s1.client("")
	running := mustSubmit(t, c1, sleepJob(60))
	waitStatus(t, c1, running.Id, client.JobStatusRunning)

	s2 := startWithSleep(t, dir, "--database-url", url, "--workers", "1")
	c2 := s2.client("")
	start := time.Now()
	if dr, err := c2.DeleteJobWithResponse(ctx, running.Id); err != nil || dr.JSON200 == nil || dr.JSON200.Status != client.JobStatusCanceled {
		t.Fatalf("cancel through the other replica: %v %d %s", err, dr.StatusCode(), dr.Body)
	}
	// Two jobs at once need both replicas' single workers, so the second
	// one finishing shows that the cancel freed replica 1's worker.
	busy := mustSubmit(t, c2, sleepJob(60))
	waitStatus(t, c2, busy.Id, client.JobStatusRunning)
	const m, n = 12, 9
	a := randTensor("", []int{m, n}, 13, true)
	tn := mustUpload(t, c2, npyBytes(t, a), nil)
	j := mustSubmit(t, c2, client.JobRequest{Method: client.MethodSvd, TensorId: &tn.Id, Params: &map[string]any{"rank": 4}})
	checkSVD(t, c1, poll(t, c1, j.Id, 30*time.Second), a.F64, m, n, 1e-10)
	// The cancel crossed replicas by notification, not by River's
	// once-a-minute poll for missed ones.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("replica 1 freed after %s", d)
	}
	if dr, _ := c1.DeleteJobWithResponse(ctx, busy.Id); dr.JSON200 == nil || dr.JSON200.Status != client.JobStatusCanceled {
		t.Errorf("cancel busy: %d %s", dr.StatusCode(), dr.Body)
	}
}

// waitStatus polls job id until it has status want.
func waitStatus(t *testing.T, c *client.ClientWithResponses, id string, want client.JobStatus) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := c.GetJobWithResponse(ctx, id)
		if err == nil && r.JSON200 != nil && r.JSON200.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s never %s: %v %s", id, want, err, r.Body)
		}
		time.Sleep(pollInterval)
	}
}

// A bucket that does not exist, or credentials the server refuses, stop
// the server at start with an error that does not show the secret.
func TestS3StartErrors(t *testing.T) {
	t.Parallel()
	cfg := s3srv.NewBucket(t)
	base := []string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--s3-endpoint", cfg.Endpoint, "--s3-access-key", cfg.AccessKey}
	if !cfg.Secure {
		base = append(base, "--s3-insecure")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--blob-url", "s3://no-such-bucket-here/x", "--s3-secret-key", cfg.SecretKey}, "does not exist"},
		{[]string{"--blob-url", "s3://" + cfg.Bucket, "--s3-secret-key", "wrong-secret-1234"}, cfg.Bucket},
	} {
		err := run(ctx, append(slices.Clone(base), tc.args...), func(string) string { return "" }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.want)
		} else if strings.Contains(err.Error(), cfg.SecretKey) || strings.Contains(err.Error(), "wrong-secret-1234") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}
