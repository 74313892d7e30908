package linalg

import "runtime"

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
