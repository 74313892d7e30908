package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/store"
)

// BenchmarkNoopJobs measures the queue alone: jobs that do nothing, 2
// workers, on each database with River's fetch settings as named.
//
//	go test -run '^$' -bench NoopJobs -benchtime 200x ./internal/jobs
func BenchmarkNoopJobs(b *testing.B) {
	for _, tc := range []struct {
		name               string
		database           string
		cooldown, interval time.Duration
	}{
		{"sqlite/lowrank", onSQLite, jobs.DefaultFetchCooldown, jobs.DefaultFetchPollInterval},
		{"sqlite/riverDefaults", onSQLite, river.FetchCooldownDefault, river.FetchPollIntervalDefault},
		{"postgres/lowrank", onPostgres, jobs.PostgresFetchCooldown, jobs.PostgresFetchPollInterval},
		{"postgres/riverDefaults", onPostgres, river.FetchCooldownDefault, river.FetchPollIntervalDefault},
		{"postgres/sqliteSettings", onPostgres, jobs.DefaultFetchCooldown, jobs.DefaultFetchPollInterval},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bb := setupAt(b, newPlace(b, tc.database), true, func(c *jobs.Config) {
				c.Workers, c.QueueCapacity = 2, 0
				c.FetchCooldown, c.FetchPollInterval = tc.cooldown, tc.interval
			})
			ctx := context.Background()
			in := randMatrix(1, 1, 1)
			b.ResetTimer()
			ids := make([]string, b.N)
			for i := range b.N {
				j, err := bb.svc.Submit(ctx, jobs.SubmitRequest{Inline: in, Method: "sleep", Params: []byte(`{}`)})
				if err != nil {
					b.Fatal(err)
				}
				ids[i] = j.ID
			}
			for _, id := range ids {
				for {
					j, err := bb.meta.GetJobByID(ctx, id)
					if err != nil {
						b.Fatal(err)
					}
					if j.Status == store.JobSucceeded {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
		})
	}
}
