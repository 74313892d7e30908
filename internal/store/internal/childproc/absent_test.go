package childproc

import (
	"errors"
	"testing"
)

// An absent server skips, unless EnvRequire=1 makes that a failure; a
// server that failed always fails.
func TestUnavailable(t *testing.T) {
	for _, c := range []struct {
		require              string
		absent               bool
		wantFailed, wantSkip bool
	}{
		{"", true, false, true},
		{"1", true, true, false},
		{"", false, true, false},
		{"1", false, true, false},
	} {
		t.Setenv(EnvRequire, c.require)
		ft := &fakeT{}
		func() {
			defer func() { recover() }() // fakeT ends the "test" by panicking, as FailNow ends a goroutine
			Unavailable(ft, errors.New("no server"), c.absent)
		}()
		if ft.failed != c.wantFailed || ft.skipped != c.wantSkip {
			t.Errorf("%s=%q absent=%v: failed %v skipped %v", EnvRequire, c.require, c.absent, ft.failed, ft.skipped)
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
