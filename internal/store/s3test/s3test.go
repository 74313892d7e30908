// Package s3test gives tests a real S3 server: either the one named by
// LOWRANK_TEST_S3_ENDPOINT or a throwaway versitygw gateway it starts itself
// (posix backend in a temp dir, 127.0.0.1 on a free port, generated root
// credentials, stopped with the test process even when that is killed), and
// a fresh, empty bucket per test so tests stay independent.
//
// One Server serves a whole test package; the server starts on first use,
// so a package's other tests do not pay for it:
//
//	var s3srv s3test.Server
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		s3srv.Stop()
//		os.Exit(code)
//	}
//
//	func TestX(t *testing.T) { cfg := s3srv.NewBucket(t); ... }
//
// The versitygw binary is $LOWRANK_VERSITYGW, else versitygw on PATH, else
// the one `go install` put in $(go env GOBIN) or $(go env GOPATH)/bin.
// Without one the tests skip, or fail when LOWRANK_REQUIRE_SERVERS=1 (as CI
// sets, so that a missing server cannot silently skip them).
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lowrank/lowrank/internal/store"
	"github.com/lowrank/lowrank/internal/store/internal/childproc"
)

// Environment variables that choose the server.
const (
	// EnvEndpoint names a server to use instead of starting one: host:port,
	// or https://host:port for TLS. Its root credentials come from
	// EnvAccessKey and EnvSecretKey; they must be allowed to create buckets.
	EnvEndpoint  = "LOWRANK_TEST_S3_ENDPOINT"
	EnvAccessKey = "LOWRANK_TEST_S3_ACCESS_KEY"
	EnvSecretKey = "LOWRANK_TEST_S3_SECRET_KEY"
	// EnvBinary is the versitygw binary to start.
	EnvBinary = "LOWRANK_VERSITYGW"
	// EnvRequire, set to 1, turns "no server here, skip" into a failure.
	EnvRequire = "LOWRANK_REQUIRE_SERVERS"
)

// Install is how to get the gateway the tests run against.
const Install = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// errNotFound is why the tests skip on a machine without versitygw.
var errNotFound = fmt.Errorf("versitygw not found (%s, or set %s to the binary, or %s to a server); skipping S3 blob store tests", Install, EnvBinary, EnvEndpoint)

// Server is an S3 server for one test package. The zero value is ready to
// use; it connects or starts on the first NewBucket.
type Server struct {
	once   sync.Once
	err    error // why there is no server
	skip   bool  // err means "skip", not "fail"
	cfg    store.S3Config
	client *minio.Client
	stop   func() error
	seq    atomic.Int64
}

// NewBucket creates an empty bucket for t, removed with everything in it
// when t ends, and returns the config that reaches it. It skips t when no
// S3 server is available (unless LOWRANK_REQUIRE_SERVERS=1) and fails it
// when one is but cannot be started.
func (s *Server) NewBucket(t testing.TB) store.S3Config {
	t.Helper()
	s.once.Do(s.init)
	if s.err != nil {
		if s.skip && os.Getenv(EnvRequire) != "1" {
			t.Skip(s.err)
		}
		if s.skip {
			t.Fatalf("%v (failing instead: %s=1)", s.err, EnvRequire)
		}
		t.Fatal(s.err)
	}
	// Unique across concurrent test processes sharing one external server.
	name := fmt.Sprintf("lowrank-test-%d-%d", os.Getpid(), s.seq.Add(1))
	ctx := context.Background()
	if err := s.client.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("s3test: create bucket: %v", err)
	}
	// Registered before the test opens its stores, so it runs after their
	// cleanups.
	t.Cleanup(func() {
		if err := s.removeBucket(ctx, name); err != nil {
			t.Errorf("s3test: remove bucket %s: %v", name, err)
		}
	})
	cfg := s.cfg
	cfg.Bucket = name
	return cfg
}

// Client returns a client of the server for tests that look behind the
// store (e.g. for leftover multipart uploads); call it after NewBucket.
func (s *Server) Client() *minio.Client { return s.client }

// removeBucket empties bucket (objects and unfinished multipart uploads)
// and removes it.
func (s *Server) removeBucket(ctx context.Context, bucket string) error {
	var errs []error
	for u := range s.client.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err != nil {
			errs = append(errs, u.Err)
			continue
		}
		errs = append(errs, s.client.RemoveIncompleteUpload(ctx, bucket, u.Key))
	}
	for o := range s.client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			errs = append(errs, o.Err)
			continue
		}
		errs = append(errs, s.client.RemoveObject(ctx, bucket, o.Key, minio.RemoveObjectOptions{}))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.client.RemoveBucket(ctx, bucket)
}

// Stop stops the server if this package started it. It is safe to call
// when the server was never used.
func (s *Server) Stop() {
	s.once.Do(func() { s.err, s.skip = errors.New("s3test: stopped"), true })
	if s.stop != nil {
		if err := s.stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}

func (s *Server) init() {
	if ep := os.Getenv(EnvEndpoint); ep != "" {
		s.cfg = store.S3Config{Endpoint: ep, AccessKey: os.Getenv(EnvAccessKey), SecretKey: os.Getenv(EnvSecretKey)}
		if rest, ok := strings.CutPrefix(ep, "https://"); ok {
			s.cfg.Endpoint, s.cfg.Secure = rest, true
		} else {
			s.cfg.Endpoint = strings.TrimPrefix(ep, "http://")
		}
	} else {
		bin, err := findBinary()
		if err != nil {
			s.err, s.skip = err, errors.Is(err, errNotFound)
			return
		}
		if s.cfg, s.stop, err = start(bin); err != nil {
			s.err = err
			return
		}
	}
	var err error
	s.client, err = newClient(s.cfg)
	if err == nil {
		err = ready(s.client, 30*time.Second, nil)
	}
	if err != nil {
		s.err = fmt.Errorf("s3test: connect to %s: %w", s.cfg.Endpoint, err)
	}
}

func newClient(cfg store.S3Config) (*minio.Client, error) {
	return minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
		Region: cfg.Region,
	})
}

// ready waits until the server answers an authenticated request, or until
// exited is closed (the server died) or timeout passes.
func ready(c *minio.Client, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.ListBuckets(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, err)
		}
		select {
		case <-exited:
			return errors.New("exited during start")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// findBinary looks for versitygw where Install and CI put it.
func findBinary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			// Named but missing is a broken setup, not an absent server.
			return "", fmt.Errorf("s3test: %s: %w", EnvBinary, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return "", errNotFound
	}
	lines := strings.Split(string(out), "\n")
	var dirs []string
	if gobin := strings.TrimSpace(lines[0]); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if len(lines) > 1 {
		for _, gopath := range filepath.SplitList(strings.TrimSpace(lines[1])) {
			dirs = append(dirs, filepath.Join(gopath, "bin"))
		}
	}
	for _, dir := range dirs {
		p := filepath.Join(dir, "versitygw")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", errNotFound
}

// start runs versitygw with its posix backend on a new temp dir and returns
// the config of its root account and a function that stops it and removes
// the dir.
func start(bin string) (cfg store.S3Config, stop func() error, err error) {
	dir, err := os.MkdirTemp("", "lowrank-s3test-")
	if err != nil {
		return cfg, nil, fmt.Errorf("s3test: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	// Metadata goes to a sidecar dir rather than to extended attributes,
	// which not every temp file system supports.
	data, meta := filepath.Join(dir, "data"), filepath.Join(dir, "meta")
	for _, d := range []string{data, meta} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return cfg, nil, fmt.Errorf("s3test: %w", err)
		}
	}
	cfg = store.S3Config{AccessKey: "lowrank-" + randomHex(6), SecretKey: randomHex(20)}
	// A free port can be taken between picking and binding it; try a few.
	for attempt := 0; ; attempt++ {
		port, perr := freePort()
		if perr != nil {
			return cfg, nil, fmt.Errorf("s3test: %w", perr)
		}
		cfg.Endpoint = fmt.Sprintf("127.0.0.1:%d", port)
		stopServer, serr := serve(bin, dir, data, meta, cfg)
		if serr == nil {
			return cfg, func() error {
				defer os.RemoveAll(dir)
				return stopServer()
			}, nil
		}
		err = serr
		if attempt == 2 {
			return cfg, nil, err
		}
	}
}

// serve runs versitygw as a child of the test process that the kernel stops
// (childproc.DieWithParent) when the test binary is killed before its
// cleanup runs, as go test's -timeout does, and waits until it answers.
func serve(bin, dir, data, meta string, cfg store.S3Config) (stop func() error, err error) {
	logPath := filepath.Join(dir, "log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	cmd := exec.Command(bin, "--port", cfg.Endpoint, "--quiet", "posix", "--sidecar", meta, data)
	// Credentials through the environment keep them out of ps listings.
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+cfg.AccessKey, "ROOT_SECRET_ACCESS_KEY="+cfg.SecretKey)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	childproc.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("s3test: versitygw: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	stop = func() error {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			cmd.Process.Kill()
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("s3test: versitygw did not stop on SIGTERM within 10s")
		}
		return nil
	}
	client, err := newClient(cfg)
	if err == nil {
		err = ready(client, 30*time.Second, exited)
	}
	if err != nil {
		stop()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("s3test: versitygw on %s: %w (exit: %v)\n%s", cfg.Endpoint, err, waitErr, log)
	}
	return stop, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
