package childproc

import (
	"os"
	"testing"
)

// EnvRequire, set to 1 (as CI does), turns "no server here, skip" into a
// failure, so a machine missing a server cannot pass by skipping.
const EnvRequire = "LOWRANK_REQUIRE_SERVERS"

// Unavailable ends t for a server that could not be had: err says why. A
// server that is absent (absent true: not installed, not configured) skips
// t unless EnvRequire is 1; one that is there but failed always fails t.
func Unavailable(t testing.TB, err error, absent bool) {
	t.Helper()
	if absent && os.Getenv(EnvRequire) != "1" {
		t.Skip(err)
	}
	if absent {
		t.Fatalf("%v (failing instead: %s=1)", err, EnvRequire)
	}
	t.Fatal(err)
}
