package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/lowrank/lowrank/internal/compress"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/store"
)

// BenchmarkCompression compares one compression of 24 layers of 128×128
// (small, so the kernels take milliseconds and the sub-jobs' cost shows)
// run by compress.Run in process with 2 layers at once and by the service
// with 2 workers, on each database: the difference is what running every
// layer's phase as a queued sub-job costs.
//
//	go test -run '^$' -bench Compression -benchtime 5x ./internal/jobs
func BenchmarkCompression(b *testing.B) {
	const policy = `{"budget": 0.4, "min_elements": 1}`
	src := manyLayers(b, 24, 128)
	b.Run("run", func(b *testing.B) {
		p, err := compress.ParsePolicy([]byte(policy))
		if err != nil {
			b.Fatal(err)
		}
		for range b.N {
			if _, err := compress.Run(context.Background(), linalg.Default(1), bytes.NewReader(src), int64(len(src)), p, io.Discard,
				compress.Options{Workers: 2}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, database := range []string{onSQLite, onPostgres} {
		b.Run("service/"+database, func(b *testing.B) {
			bb := setupAt(b, newPlace(b, database), true, func(c *jobs.Config) {
				withCompressions(c)
				c.Workers, c.Backend = 2, linalg.Default(1)
			})
			upload(b, bb, "ckpt", "safetensors", src)
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				rec, err := bb.svc.SubmitCompression(ctx, jobs.CompressionRequest{TensorID: "ckpt", Policy: json.RawMessage(policy)})
				if err != nil {
					b.Fatal(err)
				}
				for {
					c, err := bb.svc.GetCompression(ctx, "", rec.ID)
					if err != nil {
						b.Fatal(err)
					}
					if c.Status == store.JobSucceeded {
						break
					}
					if c.Status.Finished() {
						b.Fatalf("compression %s: %+v", c.Status, c.Error)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
		})
	}
}
