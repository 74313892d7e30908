package s3test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindBinary(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	fake := func(dir string) string {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "versitygw")
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Nothing anywhere: PATH holds only the go command, GOBIN and GOPATH
	// are empty dirs.
	t.Setenv(EnvBinary, "")
	t.Setenv("PATH", filepath.Dir(goBin))
	gopath := t.TempDir()
	t.Setenv("GOPATH", gopath)
	t.Setenv("GOBIN", "")
	if _, err := findBinary(); !errors.Is(err, errNotFound) {
		t.Fatalf("no binary: %v, want errNotFound", err)
	}
	if !strings.Contains(errNotFound.Error(), Install) {
		t.Errorf("skip message %q does not say how to install", errNotFound)
	}

	// GOPATH/bin, then GOBIN, then PATH, then $LOWRANK_VERSITYGW win in turn.
	want := fake(filepath.Join(gopath, "bin"))
	if got, err := findBinary(); err != nil || got != want {
		t.Fatalf("GOPATH/bin: %q, %v; want %q", got, err, want)
	}
	gobin := t.TempDir()
	t.Setenv("GOBIN", gobin)
	want = fake(gobin)
	if got, err := findBinary(); err != nil || got != want {
		t.Fatalf("GOBIN: %q, %v; want %q", got, err, want)
	}
	onPath := t.TempDir()
	want = fake(onPath)
	t.Setenv("PATH", onPath+string(os.PathListSeparator)+filepath.Dir(goBin))
	if got, err := findBinary(); err != nil || got != want {
		t.Fatalf("PATH: %q, %v; want %q", got, err, want)
	}
	want = fake(t.TempDir())
	t.Setenv(EnvBinary, want)
	if got, err := findBinary(); err != nil || got != want {
		t.Fatalf("%s: %q, %v; want %q", EnvBinary, got, err, want)
	}
	// Naming a binary that is not there is a broken setup: fail, not skip.
	t.Setenv(EnvBinary, filepath.Join(t.TempDir(), "missing"))
	if _, err := findBinary(); err == nil || errors.Is(err, errNotFound) {
		t.Fatalf("missing %s: %v, want an error other than errNotFound", EnvBinary, err)
	}
}

// TestRequireServers checks that a server that is absent skips a test,
// unless LOWRANK_REQUIRE_SERVERS=1 makes that a failure.
func TestRequireServers(t *testing.T) {
	for _, require := range []string{"", "1"} {
		t.Setenv(EnvRequire, require)
		var s Server
		s.once.Do(func() { s.err, s.skip = errNotFound, true })
		ft := &fakeT{}
		func() {
			defer func() { recover() }() // fakeT ends the "test" by panicking, as FailNow ends a goroutine
			s.NewBucket(ft)
		}()
		if wantFail := require == "1"; ft.failed != wantFail || ft.skipped == wantFail {
			t.Errorf("%s=%q: failed %v skipped %v", EnvRequire, require, ft.failed, ft.skipped)
		}
	}
}

type fakeT struct {
	testing.TB
	failed, skipped bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Skip(...any)           { f.skipped = true; panic("skip") }
func (f *fakeT) Fatal(...any)          { f.failed = true; panic("fatal") }
func (f *fakeT) Fatalf(string, ...any) { f.failed = true; panic("fatal") }
