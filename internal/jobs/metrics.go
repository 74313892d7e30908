package jobs

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lowrank/lowrank/internal/store"
)

type metrics struct {
	jobs      *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	queueWait *prometheus.HistogramVec
	expired   *prometheus.CounterVec
	takeovers *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, meta store.MetaStore) (*metrics, error) {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	// Job durations range from milliseconds (a small SVD) to hours.
	buckets := prometheus.ExponentialBuckets(0.001, 4, 12)
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lowrank_jobs_total", Help: "Jobs finished, by method and outcome (succeeded, failed, canceled).",
		}, []string{"method", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lowrank_job_duration_seconds", Help: "Time from a job's start to its end, by method.", Buckets: buckets,
		}, []string{"method"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lowrank_job_queue_wait_seconds", Help: "Time a job waited in the queue before it started, by method.", Buckets: buckets,
		}, []string{"method"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lowrank_expired_total", Help: "Records removed by retention, by kind (tensor, job, compression).",
		}, []string{"kind"}),
		takeovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lowrank_job_takeovers_total",
			Help: "Running jobs of replicas that stopped heartbeating that this replica took over, by action (requeued, given_up, canceled).",
		}, []string{"action"}),
	}
	// Zero until the first takeover, so rate() and alerts see the series.
	for _, a := range []string{"requeued", "given_up", "canceled"} {
		m.takeovers.WithLabelValues(a)
	}
	// Queue depth is counted from metadata at scrape time, so it is right
	// after a restart and across replicas.
	count := func(st store.JobStatus) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := meta.CountJobs(ctx, st)
			if err != nil {
				return -1
			}
			return float64(n)
		}
	}
	for _, c := range []prometheus.Collector{
		m.jobs, m.duration, m.queueWait, m.expired, m.takeovers,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lowrank_jobs_queued", Help: "Jobs waiting in the queue."}, count(store.JobQueued)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lowrank_jobs_running", Help: "Jobs running now."}, count(store.JobRunning)),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) finished(method, outcome string) {
	m.jobs.WithLabelValues(method, outcome).Inc()
}
