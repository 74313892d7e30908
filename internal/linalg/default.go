package linalg

import (
	"fmt"
	"runtime"
)

// openBLAS is set by the cgo backend's init when the binary is built with
// the "openblas" tag; it makes a backend with the given thread budget.
var openBLAS func(threads int) Backend

// Default returns the fastest backend compiled in, with a budget of threads
// (threads < 1 means GOMAXPROCS).
func Default(threads int) Backend {
	if threads < 1 {
		threads = runtime.GOMAXPROCS(0)
	}
	if openBLAS != nil {
		return openBLAS(threads)
	}
	return NewGonum(threads)
}

// Backends returns every backend compiled in, fastest first, each with the
// given thread budget. Conformance tests run over all of them.
func Backends(threads int) []Backend {
	bs := []Backend{}
	if openBLAS != nil {
		bs = append(bs, openBLAS(max(1, threads)))
	}
	return append(bs, NewGonum(threads))
}

// Describe names a backend with its build and thread budget, for the log at
// start-up, e.g. "openblas 0.3.21 (Haswell, pthreads), threads=2" or
// "gonum (pure Go), threads=2". A backend may describe itself with a
// Describe() string method.
func Describe(b Backend) string {
	if d, ok := b.(interface{ Describe() string }); ok {
		return d.Describe()
	}
	if _, ok := b.(Gonum); ok {
		return fmt.Sprintf("gonum (pure Go), threads=%d", b.Threads())
	}
	return fmt.Sprintf("%s, threads=%d", b.Name(), b.Threads())
}
