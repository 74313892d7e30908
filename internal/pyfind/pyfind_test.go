package pyfind

import (
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	// A module no interpreter has: every candidate is tried and named.
	t.Setenv(Env, "")
	_, err := Find("lowrank_no_such_module")
	if err == nil || !strings.Contains(err.Error(), "lowrank_no_such_module") || !strings.Contains(err.Error(), "/usr/bin/python3") {
		t.Fatalf("Find of a missing module: %v", err)
	}
	// $LOWRANK_PYTHON is tried first, even when it does not exist.
	t.Setenv(Env, "lowrank-no-such-python")
	_, err = Find("lowrank_no_such_module")
	if err == nil || !strings.Contains(err.Error(), "tried lowrank-no-such-python, python3") {
		t.Fatalf("Find with %s set: %v", Env, err)
	}
	// The standard library is there wherever Python is.
	t.Setenv(Env, "")
	if py, err := Find("json"); err == nil && py == "" {
		t.Fatalf("Find(json) returned no path and no error")
	}
}
