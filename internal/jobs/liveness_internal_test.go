package jobs

import (
	"testing"
	"time"
)

func TestLivenessPeriod(t *testing.T) {
	for _, tc := range []struct{ rescueAfter, want time.Duration }{
		{0, minLivenessPeriod},
		{100 * time.Millisecond, minLivenessPeriod},
		{time.Second, 200 * time.Millisecond},
		{2 * time.Second, 400 * time.Millisecond},
		{DefaultRescueAfter, 6 * time.Second},
		{5 * time.Minute, maxLivenessPeriod},
	} {
		if got := livenessPeriod(tc.rescueAfter); got != tc.want {
			t.Errorf("livenessPeriod(%s) = %s, want %s", tc.rescueAfter, got, tc.want)
		}
	}
}

// Replica ids are River client ids (at most 100 bytes) and differ between
// processes on one host.
func TestNewReplicaID(t *testing.T) {
	a, b := newReplicaID(), newReplicaID()
	if a == b {
		t.Errorf("two replicas share id %s", a)
	}
	for _, id := range []string{a, b} {
		if len(id) > 100 || len(id) < 14 {
			t.Errorf("id %q: %d bytes, want 14 to 100", id, len(id))
		}
	}
}
