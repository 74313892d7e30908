package pgtest

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindBinDir(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // nothing on PATH
	root := t.TempDir()
	pattern := filepath.Join(root, "*", "bin")
	if _, err := findBinDir(pattern); !errors.Is(err, errNotFound) {
		t.Fatalf("no binaries: %v, want errNotFound", err)
	}
	if !strings.Contains(errNotFound.Error(), "apt-get install postgresql") {
		t.Errorf("skip message %q does not say how to install", errNotFound)
	}
	// 17 has only pg_ctl, so it is not usable; 16 is the newest complete one.
	for ver, files := range map[string][]string{
		"9.6": {"pg_ctl", "initdb"}, "13": {"pg_ctl", "initdb"}, "16": {"pg_ctl", "initdb"}, "17": {"pg_ctl"},
	} {
		dir := filepath.Join(root, ver, "bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := findBinDir(pattern)
	if want := filepath.Join(root, "16", "bin"); err != nil || got != want {
		t.Fatalf("findBinDir = %q, %v; want %q", got, err, want)
	}
	// PATH wins over the versioned directories.
	onPath := filepath.Join(root, "9.6", "bin")
	t.Setenv("PATH", onPath)
	if got, err := findBinDir(pattern); err != nil || got != onPath {
		t.Fatalf("findBinDir with PATH = %q, %v; want %q", got, err, onPath)
	}
}

func TestCommandAsOtherUser(t *testing.T) {
	if cmd := command(nil, "/bin/initdb", "-D", "d"); strings.Join(cmd.Args, " ") != "/bin/initdb -D d" {
		t.Errorf("as self: %q", cmd.Args)
	}
	u := &user.User{Username: "postgres"}
	t.Setenv("PATH", t.TempDir()) // no runuser: falls back to su with a quoted command line
	cmd := command(u, "/bin/pg_ctl", "-o", "-p 5 -k it's")
	want := `su postgres -s /bin/sh -c exec '/bin/pg_ctl' '-o' '-p 5 -k it'\''s'`
	if got := strings.Join(cmd.Args, " "); got != want {
		t.Errorf("su command\n got %s\nwant %s", got, want)
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
			s.NewDatabase(ft)
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
