package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/user"
	"sync"
	"testing"
	"time"

	"github.com/lowrank/lowrank/internal/store/internal/childproc"
)

// Instance is a PostgreSQL server of one test's own, which the test may stop
// and start again on the same port and data directory, to see how its
// clients ride out a database outage:
//
//	pg := pgtest.Start(t)
//	... connect to pg.URL ...
//	pg.Stop(t)  // clients now get connection errors
//	pg.Start(t) // same URL, same data
//
// Unlike Server it never uses LOWRANK_TEST_DATABASE_URL: a shared server
// cannot be stopped by one test.
type Instance struct {
	// URL is a database of its own on the server, created empty.
	URL string

	bin   string
	runAs *user.User
	dir   string
	port  int
	run   func(name string, args ...string) error

	mu   sync.Mutex
	stop func(mode string) error // nil while stopped
}

// Start initialises and starts a server for t, stopped and removed when t
// ends. It skips t when there are no Postgres binaries, or fails it when
// LOWRANK_REQUIRE_SERVERS=1 says they must be there.
func Start(t testing.TB) *Instance {
	t.Helper()
	bin, err := findBinDir(debianBinDirs)
	if err != nil {
		skipInstance(t, err)
	}
	var runAs *user.User
	if os.Geteuid() == 0 {
		if runAs, err = user.Lookup("postgres"); err != nil {
			skipInstance(t, fmt.Errorf("pgtest: running as root and there is no postgres user to run the server as (%v)", err))
		}
	}
	dir, run, err := initCluster(bin, runAs)
	if err != nil {
		t.Fatal(err)
	}
	in := &Instance{bin: bin, runAs: runAs, dir: dir, run: run}
	t.Cleanup(func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		if in.stop != nil {
			if err := in.stop("fast"); err != nil {
				t.Errorf("pgtest: stop: %v", err)
			}
			in.stop = nil
		}
		os.RemoveAll(dir)
	})
	// A free port can be taken between picking and binding it; try a few.
	for attempt := 0; ; attempt++ {
		if in.port, err = freePort(); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		if in.stop, err = serve(bin, runAs, dir, in.port, maintenanceURL(in.port), run); err == nil {
			break
		}
		if attempt == 2 {
			t.Fatal(err)
		}
	}
	admin, err := sql.Open("pgx", maintenanceURL(in.port))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE lowrank_test`); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	in.URL = fmt.Sprintf("postgres://lowrank@127.0.0.1:%d/lowrank_test?sslmode=disable", in.port)
	return in
}

// Stop shuts the server down cleanly (pg_ctl's "fast" mode: sessions are
// told and closed) and waits until it has exited. Stopping a stopped server
// does nothing.
func (in *Instance) Stop(t testing.TB) {
	t.Helper()
	in.stopMode(t, "fast")
}

// Crash stops the server as a crash would (pg_ctl's "immediate" mode: every
// process quits at once, without a checkpoint; the next Start recovers from
// the write-ahead log) and waits until it has exited.
func (in *Instance) Crash(t testing.TB) {
	t.Helper()
	in.stopMode(t, "immediate")
}

func (in *Instance) stopMode(t testing.TB, mode string) {
	t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stop == nil {
		return
	}
	err := in.stop(mode)
	in.stop = nil
	if err != nil {
		t.Fatalf("pgtest: stop (%s): %v", mode, err)
	}
}

// Start starts a stopped server again on the same port and data and waits
// until it accepts connections. Starting a running server does nothing.
func (in *Instance) Start(t testing.TB) {
	t.Helper()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stop != nil {
		return
	}
	stop, err := serve(in.bin, in.runAs, in.dir, in.port, maintenanceURL(in.port), in.run)
	if err != nil {
		t.Fatalf("pgtest: restart on port %d: %v", in.port, err)
	}
	in.stop = stop
}

// skipInstance skips t for a missing server, unless LOWRANK_REQUIRE_SERVERS=1
// (as in CI) makes that a failure.
func skipInstance(t testing.TB, err error) {
	t.Helper()
	childproc.Unavailable(t, err, true)
}
