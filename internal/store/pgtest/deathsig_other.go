//go:build !linux

package pgtest

import "os/exec"

// dieWithParent does nothing where there is no parent-death signal: a test
// binary killed before its cleanup leaves its server running.
func dieWithParent(*exec.Cmd) {}
