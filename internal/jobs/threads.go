package jobs

import "sync"

// threadBudget shares C kernel threads between the jobs running at once.
// A job's share is decided when it starts and kept until it ends: the
// threads nobody holds, but never fewer than its even share C/W, so a large
// job alone on the pool takes all C while a full pool still gives every
// job its C/W. Jobs starting while others hold the threads can therefore
// oversubscribe the cores (by less than C in all), but never starve.
type threadBudget struct {
	total, share int // C, and C/W (at least 1)

	mu   sync.Mutex
	held int
}

func newThreadBudget(total, workers int) *threadBudget {
	total = max(1, total)
	return &threadBudget{total: total, share: max(1, total/max(1, workers))}
}

// take reserves a starting job's threads and returns how many it got.
func (b *threadBudget) take() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := max(b.share, b.total-b.held)
	b.held += n
	return n
}

// give returns the n threads a job took.
func (b *threadBudget) give(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= n
}
