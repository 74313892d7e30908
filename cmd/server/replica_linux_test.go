package main

import (
	"os/exec"
	"syscall"
)

// dieWithTest has the kernel kill a replica when the thread that started it
// exits, which in practice is when the test process dies (go test's
// -timeout, a kill), so no server outlives its test.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
