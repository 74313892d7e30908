package linalg

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestThreadGate checks the gate's invariants with a fake library: the
// thread count is 1 whenever a single-threaded call runs, a multi-threaded
// call runs alone with its own count, and the count is back at 1 after.
func TestThreadGate(t *testing.T) {
	var libThreads, running, maxShared atomic.Int32
	g := newThreadGate(func(n int) { libThreads.Store(int32(n)) })
	g.maxThreads = 4
	if libThreads.Load() != 1 {
		t.Fatalf("a new gate leaves the library at %d threads, want 1", libThreads.Load())
	}
	var wg sync.WaitGroup
	var bad atomic.Value
	for w := range 16 {
		budget := 1 + w%3 // 1, 2, 3
		wg.Go(func() {
			for range 50 {
				threads := g.threadsFor(budget, 1e9)
				g.do(threads, func() {
					r := running.Add(1)
					defer running.Add(-1)
					if threads == 1 {
						for {
							m := maxShared.Load()
							if r <= m || maxShared.CompareAndSwap(m, r) {
								break
							}
						}
					}
					if got := int(libThreads.Load()); got != threads {
						bad.Store("library thread count differs from the call's")
					}
					if threads > 1 && r != 1 {
						bad.Store("a multi-threaded call ran beside another call")
					}
					time.Sleep(50 * time.Microsecond)
				})
			}
		})
	}
	wg.Wait()
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}
	if maxShared.Load() < 2 {
		t.Errorf("single-threaded calls never overlapped (max %d at once)", maxShared.Load())
	}
	if libThreads.Load() != 1 {
		t.Errorf("library left at %d threads, want 1", libThreads.Load())
	}
}

func TestThreadsFor(t *testing.T) {
	g := newThreadGate(func(int) {})
	g.maxThreads = 2
	for _, c := range []struct {
		budget int
		work   float64
		want   int
	}{
		{1, 1e12, 1}, {2, 1e12, 2}, {8, 1e12, 2}, {2, parallelMinWork - 1, 1}, {2, parallelMinWork, 2}, {0, 1e12, 1},
	} {
		if got := g.threadsFor(c.budget, c.work); got != c.want {
			t.Errorf("threadsFor(%d, %g) = %d, want %d", c.budget, c.work, got, c.want)
		}
	}
}
