// Package childproc holds what the test-server harnesses (pgtest, s3test)
// share about the servers they run as child processes.
package childproc

import (
	"os/exec"
	"syscall"
)

// DieWithParent has the kernel send cmd SIGTERM when the thread that started
// it exits; Go only ends a thread when a goroutine locked to it returns, so
// in practice this is when the test process dies.
func DieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
