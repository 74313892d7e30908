package pgtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel send cmd SIGTERM when the thread that started
// it exits; Go only ends a thread when a goroutine locked to it returns, so
// in practice this is when the test process dies.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
