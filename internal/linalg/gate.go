package linalg

import (
	"runtime"
	"sync"
)

// OpenBLAS keeps one thread count for the whole process
// (openblas_set_num_threads; 0.3.21 has no per-call or per-thread setting),
// yet Backend promises that a kernel never runs more threads than the budget
// of the value it is called on. threadGate reconciles the two, like a
// read-write lock on the process-wide setting:
//
//   - OpenBLAS rests at 1 thread. A call that runs single-threaded (budget 1,
//     or a problem too small for threads to pay) takes the shared side, so any
//     number of them run at once, each on its caller's OS thread.
//   - A call with budget t > 1 takes the exclusive side: it waits until no
//     other call runs, sets OpenBLAS to t threads, runs, and sets it back to 1
//     before releasing.
//
// So W pool workers on C cores (W ≤ C) never run more than C threads between
// them, many small jobs run side by side, and one large job gets its whole
// budget. The price is that a large job waits for the single-threaded calls
// in flight to end, and holds up new ones while it runs; Go's RWMutex lets a
// waiting writer in before later readers, so it is not starved.
//
// Measured on 2 cores (BenchmarkGateSgemm1024, best of 3): two goroutines
// each running a single-threaded 1024³ sgemm reach 137 GFLOP/s together,
// one call at a time with 2 threads 136 GFLOP/s, one thread alone 78: both
// ways use the machine fully, so the gate costs large jobs nothing while it
// lets small ones overlap. OpenBLAS's idle workers spin for a while after a
// threaded call; BenchmarkGateAfterExclusive found no slowdown of the
// single-threaded calls that follow one.
type threadGate struct {
	mu sync.RWMutex
	// setThreads changes the process-wide thread count of the library.
	setThreads func(n int)
	// maxThreads caps a budget: more threads than cores only adds contention.
	maxThreads int
	// minWork is the size below which a call runs single-threaded
	// (parallelMinWork; benchmarks lower it to measure the gate's cost).
	minWork float64
}

func newThreadGate(setThreads func(n int)) *threadGate {
	setThreads(1)
	return &threadGate{setThreads: setThreads, maxThreads: runtime.NumCPU(), minWork: parallelMinWork}
}

// threadsFor returns how many threads a call of about work multiply-adds
// gets under a budget: 1 below g.minWork, else the budget capped at
// the number of cores.
func (g *threadGate) threadsFor(budget int, work float64) int {
	if work < g.minWork {
		return 1
	}
	return max(1, min(budget, g.maxThreads))
}

// do runs f with threads library threads, on the shared side of the gate
// when threads is 1 and on the exclusive side otherwise.
func (g *threadGate) do(threads int, f func()) {
	if threads <= 1 {
		g.mu.RLock()
		defer g.mu.RUnlock()
		f()
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.setThreads(threads)
	defer g.setThreads(1)
	f()
}

// parallelMinWork is the size, in multiply-adds (m·n·k for a product), below
// which a call runs single-threaded whatever its budget. From
// BenchmarkGateSmall (OpenBLAS 0.3.21, 2-core AMD EPYC, best of alternating
// calls): the exclusive side and the two openblas_set_num_threads calls cost
// about 60–70 ns per call (n = 8: 235 ns shared, 300 ns exclusive); a second
// thread loses up to n = 64, gains 13–20 % at n = 96–128 and 1.5× from
// n ≈ 160–256 on a quiet machine. Below 128³ the small gain is not worth
// stopping every other worker's kernels for the duration of the call.
const parallelMinWork = 128 * 128 * 128
