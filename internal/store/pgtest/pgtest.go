// Package pgtest gives tests a real PostgreSQL server: either the one named
// by LOWRANK_TEST_DATABASE_URL or a throwaway one it starts itself (initdb
// into a temp dir, postgres on a free port of 127.0.0.1, stopped with the
// test process even when that is killed), and a fresh, empty database per
// test so tests stay independent.
//
// One Server serves a whole test package; the server starts on first use,
// so a package's other tests do not pay for it:
//
//	var pg pgtest.Server
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pg.Stop()
//		os.Exit(code)
//	}
//
//	func TestX(t *testing.T) { url := pg.NewDatabase(t); ... }
//
// Without Postgres binaries the tests skip, or fail when
// LOWRANK_REQUIRE_SERVERS=1. PostgreSQL refuses to run as
// root, so when the tests run as root (as in CI containers) the server runs
// as the "postgres" system user that Debian's package creates, through
// runuser or su; the temp dir must then be reachable by that user.
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/lowrank/lowrank/internal/store/internal/childproc"
)

// EnvURL names a server to use instead of starting one: a postgres:// URL
// of a database the user may CREATE DATABASE from.
const EnvURL = "LOWRANK_TEST_DATABASE_URL"

// EnvRequire, set to 1 (as CI does), turns "no server here, skip" into a
// failure, so that a missing server cannot silently skip the tests.
const EnvRequire = "LOWRANK_REQUIRE_SERVERS"

// errNotFound is why the tests skip on a machine without Postgres.
var errNotFound = errors.New("postgres not found (apt-get install postgresql); skipping Postgres store tests")

// Server is a PostgreSQL server for one test package. The zero value is
// ready to use; it connects or starts on the first NewDatabase.
type Server struct {
	once  sync.Once
	err   error   // why there is no server
	skip  bool    // err means "skip", not "fail"
	admin *sql.DB // connection to the maintenance database
	base  *url.URL
	stop  func() error
	seq   atomic.Int64
}

// NewDatabase creates an empty database for t, dropped when t ends, and
// returns its URL. It skips t when no Postgres is available and fails it
// when one is but cannot be started.
func (s *Server) NewDatabase(t testing.TB) string {
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
	name := fmt.Sprintf("lowrank_test_%d_%d", os.Getpid(), s.seq.Add(1))
	ctx := context.Background()
	if _, err := s.admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	// Registered before the test opens its pools, so it runs after their
	// cleanups have closed them; FORCE ends any connection left over.
	t.Cleanup(func() {
		if _, err := s.admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database: %v", err)
		}
	})
	u := *s.base
	u.Path = "/" + name
	return u.String()
}

// Stop closes the connection and stops the server if this package started
// it. It is safe to call when the server was never used.
func (s *Server) Stop() {
	s.once.Do(func() { s.err, s.skip = errors.New("pgtest: stopped"), true })
	if s.admin != nil {
		s.admin.Close()
	}
	if s.stop != nil {
		if err := s.stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}

func (s *Server) init() {
	raw := os.Getenv(EnvURL)
	if raw == "" {
		bin, err := findBinDir(debianBinDirs)
		if err != nil {
			s.err, s.skip = err, true
			return
		}
		var runAs *user.User
		if os.Geteuid() == 0 {
			if runAs, err = user.Lookup("postgres"); err != nil {
				s.err, s.skip = fmt.Errorf("pgtest: running as root and there is no postgres user to run the server as (%v); skipping Postgres store tests", err), true
				return
			}
		}
		raw, s.stop, err = start(bin, runAs)
		if err != nil {
			s.err = err
			return
		}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		s.err = fmt.Errorf("pgtest: %s must be a postgres:// URL", EnvURL)
		return
	}
	s.base = u
	if s.admin, err = sql.Open("pgx", raw); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = s.admin.PingContext(ctx)
		cancel()
	}
	if err != nil {
		s.err = fmt.Errorf("pgtest: connect to %s: %w", u.Redacted(), err)
	}
}

// debianBinDirs is where Debian's postgresql package installs the server
// binaries, one directory per major version, without putting them on PATH.
const debianBinDirs = "/usr/lib/postgresql/*/bin"

// findBinDir finds the directory of initdb and pg_ctl: PATH first, then the
// directories matching pattern, newest version first.
func findBinDir(pattern string) (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob(pattern)
	sort.Slice(dirs, func(i, j int) bool { return debianVersion(dirs[i]) > debianVersion(dirs[j]) })
	for _, dir := range dirs {
		_, err1 := os.Stat(filepath.Join(dir, "pg_ctl"))
		_, err2 := os.Stat(filepath.Join(dir, "initdb"))
		if err1 == nil && err2 == nil {
			return dir, nil
		}
	}
	return "", errNotFound
}

// debianVersion is the major version in .../<version>/bin; before 10 it
// was two numbers (9.6), which sort below every later one.
func debianVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// start initialises a cluster in a new temp dir and starts it, as runAs when
// that is not nil. It returns the URL of the maintenance database and a
// function that stops the server and removes the dir.
func start(bin string, runAs *user.User) (dbURL string, stop func() error, err error) {
	dir, err := os.MkdirTemp("", "lowrank-pgtest-")
	if err != nil {
		return "", nil, fmt.Errorf("pgtest: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if runAs != nil {
		uid, _ := strconv.Atoi(runAs.Uid)
		gid, _ := strconv.Atoi(runAs.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	run := func(name string, args ...string) error {
		cmd := command(runAs, filepath.Join(bin, name), args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("pgtest: %s: %v\n%s", name, err, out.Bytes())
		}
		return nil
	}
	// The user is lowrank, whatever the OS user; trust auth is fine for a
	// server that listens on loopback only and lives as long as the tests.
	if err := run("initdb", "-D", data, "-A", "trust", "-U", "lowrank", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		return "", nil, err
	}
	// A free port can be taken between picking and binding it; try a few.
	for attempt := 0; ; attempt++ {
		port, perr := freePort()
		if perr != nil {
			return "", nil, fmt.Errorf("pgtest: %w", perr)
		}
		dbURL = fmt.Sprintf("postgres://lowrank@127.0.0.1:%d/postgres?sslmode=disable", port)
		stopServer, serr := serve(bin, runAs, dir, port, dbURL, run)
		if serr == nil {
			return dbURL, func() error {
				defer os.RemoveAll(dir)
				return stopServer()
			}, nil
		}
		err = serr
		if attempt == 2 {
			return "", nil, err
		}
	}
}

// serve runs postgres in the foreground as a child of the test process
// rather than daemonised by pg_ctl, so that the kernel stops it
// (childproc.DieWithParent) when the test binary is killed before its
// cleanup runs, as go test's -timeout does. runuser and su pass that signal on to it.
func serve(bin string, runAs *user.User, dir string, port int, dbURL string, run func(string, ...string) error) (stop func() error, err error) {
	data := filepath.Join(dir, "data")
	logPath := filepath.Join(dir, "log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	cmd := command(runAs, filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	childproc.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("pgtest: postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() {
		exited <- cmd.Wait()
		logFile.Close()
	}()
	stopWith := func(mode string) error {
		err := run("pg_ctl", "-D", data, "-m", mode, "-w", "stop")
		<-exited
		return err
	}

	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		stopWith("immediate")
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	defer db.Close()
	for deadline := time.Now().Add(60 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			return func() error { return stopWith("fast") }, nil
		}
		if time.Now().After(deadline) {
			stopWith("immediate")
			return nil, fmt.Errorf("pgtest: postgres not ready after 60s: %w", err)
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("pgtest: postgres exited during start: %v\n%s", werr, log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// command runs a Postgres binary, as runAs when that is not nil.
func command(runAs *user.User, path string, args ...string) *exec.Cmd {
	if runAs == nil {
		return exec.Command(path, args...)
	}
	if runuser, err := exec.LookPath("runuser"); err == nil {
		return exec.Command(runuser, append([]string{"-u", runAs.Username, "--", path}, args...)...)
	}
	quoted := make([]string, 0, len(args)+1)
	for _, a := range append([]string{path}, args...) {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	// exec, so that the signals su passes on reach the server, not the shell.
	return exec.Command("su", runAs.Username, "-s", "/bin/sh", "-c", "exec "+strings.Join(quoted, " "))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
