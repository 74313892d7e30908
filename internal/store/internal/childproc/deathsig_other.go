//go:build !linux

// Package childproc holds what the test-server harnesses (pgtest, s3test)
// share about the servers they run as child processes.
package childproc

import "os/exec"

// DieWithParent does nothing where there is no parent-death signal: a test
// binary killed before its cleanup leaves its server running.
func DieWithParent(*exec.Cmd) {}
