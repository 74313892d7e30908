package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lowrank/lowrank/client"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/jobs/jobstest"
)

// envServeArgs, when set in the environment, makes the test binary a server:
// it runs runWith with these arguments (a JSON array) until SIGTERM and
// exits. The replica tests start the binary they are part of this way, so
// the servers are real processes, built with the same tags, that a test can
// kill -9, without a separate go build.
const envServeArgs = "LOWRANK_TEST_SERVE_ARGS"

// An init function rather than TestMain, so that a server never runs the
// package's TestMain set-up (a shared Postgres, say) meant for the tests.
func init() {
	raw := os.Getenv(envServeArgs)
	if raw == "" {
		return
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, "lowrank test server:", envServeArgs, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The environment is left out: a replica is configured by its flags
	// alone, whatever LOWRANK_* variables the test run has.
	err := runWith(ctx, args, func(string) string { return "" }, os.Stdout, os.Stderr, hooks{registry: replicaMethods})
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lowrank test server:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// replicaMethods adds the replicas' test-only methods: jobstest's sleep, and
// slow_svd, which is svd after a pause of slowSVDPause: long enough to kill
// its replica mid-job, and still a real decomposition whose factors a test
// can check after another replica has run it again.
func replicaMethods(r jobs.Registry) {
	r["sleep"] = jobstest.SleepMethod()
	svd := r["svd"]
	r["slow_svd"] = jobs.Method{
		Name:     "slow_svd",
		Validate: svd.Validate,
		Run: func(ctx context.Context, env jobs.Env, in *jobs.Tensor, params json.RawMessage) (*jobs.Output, error) {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(slowSVDPause):
			}
			return svd.Run(ctx, env, in, params)
		},
	}
}

const slowSVDPause = 4 * time.Second

// replica is one server process running this test binary (envServeArgs).
type replica struct {
	t    *testing.T
	name string // for messages: "A", "B", …
	url  string
	cmd  *exec.Cmd
	logs *syncBuffer // its stderr: JSON log lines
	http *http.Client
	done chan struct{} // closed when the process has exited
	err  error         // Wait's error, once done is closed
}

// startReplicas starts a server process per name, all at once (so that
// they also race through their migrations), each with a temp data dir of
// its own and the given flags, on 127.0.0.1:0, and waits until every one
// answers /healthz. A replica is stopped (SIGTERM) when t ends, unless the
// test has killed or stopped it.
func startReplicas(t *testing.T, args []string, names ...string) []*replica {
	t.Helper()
	rs := make([]*replica, len(names))
	lines := make([]chan string, len(names))
	for i, name := range names {
		rs[i], lines[i] = spawnReplica(t, name, args)
	}
	for i, r := range rs {
		r.awaitUp(lines[i])
	}
	return rs
}

func startReplica(t *testing.T, name string, args ...string) *replica {
	t.Helper()
	return startReplicas(t, args, name)[0]
}

// spawnReplica starts the process; its first line of stdout arrives on the
// returned channel.
func spawnReplica(t *testing.T, name string, args []string) (*replica, chan string) {
	t.Helper()
	all := append([]string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-level", "info", "--shutdown-grace", "5s"}, args...)
	raw, err := json.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{t: t, name: name, logs: &syncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(exe, "-test.run=^$")
	r.cmd.Env = append(os.Environ(), envServeArgs+"="+string(raw))
	r.cmd.Stderr = r.logs
	dieWithTest(r.cmd)
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("replica %s: %v", name, err)
	}
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			first <- sc.Text()
		}
		close(first)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("replica %s logs:\n%s", r.name, r.logs.String())
		}
	})
	return r, first
}

// awaitUp reads the listening address from the first line and waits until
// /healthz answers.
func (r *replica) awaitUp(first chan string) {
	t := r.t
	t.Helper()
	select {
	case line := <-first:
		addr, found := strings.CutPrefix(strings.TrimSpace(line), "lowrank listening on ")
		if !found {
			<-r.done
			t.Fatalf("replica %s did not start (first line %q, exit %v)", r.name, line, r.err)
		}
		r.url = addr
	case <-time.After(60 * time.Second):
		t.Fatalf("replica %s did not start within 60s", r.name)
	}
	r.http = &http.Client{Transport: &validatingTransport{t: t, next: http.DefaultTransport}, Timeout: 60 * time.Second}
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := r.http.Get(r.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s: /healthz not ready: %v", r.name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client returns the generated client for this replica; every response is
// validated against the spec.
func (r *replica) client() *client.ClientWithResponses {
	c, err := client.NewClientWithResponses(r.url, client.WithHTTPClient(r.http))
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// kill ends the process with SIGKILL, as a crash would: no shutdown, no
// requeue, its running jobs stay "running" in the database.
func (r *replica) kill() {
	r.t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// stop asks the process to shut down (SIGTERM) and waits for it; a replica
// that does not exit cleanly fails the test.
func (r *replica) stop() {
	r.t.Helper()
	select {
	case <-r.done:
		return // killed or already stopped
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
		if r.err != nil {
			r.t.Errorf("replica %s exited: %v", r.name, r.err)
		}
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.done
		r.t.Errorf("replica %s did not stop within 30s of SIGTERM", r.name)
	}
}

// metric returns the value of one sample of /metrics, e.g.
// metric(`lowrank_jobs_total{method="svd",outcome="succeeded"}`), or 0
// when the sample is absent (a counter never incremented).
func (r *replica) metric(sample string) float64 {
	r.t.Helper()
	resp, err := r.http.Get(r.url + "/metrics")
	if err != nil {
		r.t.Fatalf("replica %s metrics: %v", r.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		r.t.Fatalf("replica %s metrics: %d %v", r.name, resp.StatusCode, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				r.t.Fatalf("replica %s metric %s: %v", r.name, line, err)
			}
			return f
		}
	}
	return 0
}

// logged counts the replica's log lines with message msg about job id.
func (r *replica) logged(msg, jobID string) int {
	n := 0
	for _, line := range strings.Split(r.logs.String(), "\n") {
		var l struct {
			Msg   string `json:"msg"`
			JobID string `json:"job_id"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == msg && l.JobID == jobID {
			n++
		}
	}
	return n
}

// ready returns /readyz's status code.
func (r *replica) ready() int {
	resp, err := r.http.Get(r.url + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
