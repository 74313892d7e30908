// Package pyfind finds a Python interpreter with given modules, for the
// tests and benchmarks that compare Lowrank with NumPy, SciPy or PyTorch.
//
// The candidates are $LOWRANK_PYTHON, then python3 on PATH, then
// /usr/bin/python3: a python3 from a version manager often lacks the
// distribution's python3-numpy and python3-torch, which the system one has.
package pyfind

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Env names an interpreter to try first.
const Env = "LOWRANK_PYTHON"

// Find returns the first candidate that imports every module, or an error
// that names the modules and the candidates tried.
func Find(modules ...string) (string, error) {
	var tried []string
	for _, py := range []string{os.Getenv(Env), "python3", "/usr/bin/python3"} {
		if py == "" {
			continue
		}
		tried = append(tried, py)
		if exec.Command(py, "-c", "import "+strings.Join(modules, ", ")).Run() == nil {
			return py, nil
		}
	}
	return "", fmt.Errorf("no Python interpreter imports %s (tried %s); install the Debian packages (python3-numpy, python3-torch, …) or set %s", strings.Join(modules, ", "), strings.Join(tried, ", "), Env)
}

// Require is Find for a test: without such an interpreter it skips tb,
// saying why.
func Require(tb testing.TB, modules ...string) string {
	tb.Helper()
	py, err := Find(modules...)
	if err != nil {
		tb.Skip(err)
	}
	return py
}
