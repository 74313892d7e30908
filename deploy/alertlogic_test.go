package deploy_test

import (
	"context"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// The alert expressions are evaluated by Prometheus's own query engine on
// synthetic series held in memory: each alert must fire on the situation
// it describes and stay quiet on its near misses. ("for" is not part of
// the expression and is not evaluated here.)

// scenario maps a series (in PromQL notation) to its value at each minute;
// a NaN value means no sample that minute.
type scenario map[string]func(minute float64) float64

const scenarioMinutes = 90

func constant(v float64) func(float64) float64 { return func(float64) float64 { return v } }
func perMinute(v float64) func(float64) float64 {
	return func(m float64) float64 { return v * m }
}

// alertFires evaluates expr at the scenario's last minute and reports
// whether it returns any series.
func alertFires(t *testing.T, expr string, sc scenario) bool {
	t.Helper()
	var all []storage.Series
	for metric, value := range sc {
		lset, err := promqlParser.ParseMetric(metric)
		if err != nil {
			t.Fatalf("%s: %v", metric, err)
		}
		var samples []chunks.Sample
		for m := 0; m <= scenarioMinutes; m++ {
			if v := value(float64(m)); !math.IsNaN(v) {
				samples = append(samples, floatSample{t: int64(m) * time.Minute.Milliseconds(), f: v})
			}
		}
		all = append(all, storage.NewListSeries(lset, samples))
	}
	sort.Slice(all, func(i, j int) bool { return labels.Compare(all[i].Labels(), all[j].Labels()) < 0 })
	q := &storage.MockQueryable{MockQuerier: &storage.MockQuerier{
		SelectMockFunction: func(_ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
			var out []storage.Series
			for _, s := range all {
				ok := true
				for _, m := range ms {
					ok = ok && m.Matches(s.Labels().Get(m.Name))
				}
				if ok {
					out = append(out, s)
				}
			}
			return &seriesSet{series: out}
		},
	}}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	at := time.UnixMilli(0).Add(scenarioMinutes * time.Minute)
	query, err := engine.NewInstantQuery(context.Background(), q, nil, expr, at)
	if err != nil {
		t.Fatalf("%v\n%s", err, expr)
	}
	defer query.Close()
	res := query.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%v\n%s", res.Err, expr)
	}
	v, err := res.Vector()
	if err != nil {
		t.Fatal(err)
	}
	return len(v) > 0
}

type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }

type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i <= len(s.series) }
func (s *seriesSet) At() storage.Series                { return s.series[s.i-1] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// latency is a request-duration histogram for route with n requests a
// minute, a share slow of them taking 2.5–5s and the rest under 0.1s.
func latency(sc scenario, route string, n, slow float64) {
	sel := func(le string) string {
		return `lowrank_http_request_duration_seconds_bucket{namespace="ns",job="lowrank",route="` + route + `",method="GET",code="200",le="` + le + `"}`
	}
	sc[sel("0.1")] = perMinute(n * (1 - slow))
	sc[sel("2.5")] = perMinute(n * (1 - slow))
	sc[sel("5")] = perMinute(n)
	sc[sel("+Inf")] = perMinute(n)
}

func TestAlertLogic(t *testing.T) {
	exprs := map[string]string{}
	for _, g := range ruleGroups(t).Groups {
		for _, r := range g.Rules {
			exprs[r.Alert] = r.Expr
		}
	}
	queued := `lowrank_jobs_queued{namespace="ns",pod="p"}`
	jobs := func(outcome string) string {
		return `lowrank_jobs_total{namespace="ns",job="lowrank",method="svd",outcome="` + outcome + `"}`
	}
	withLatency := func(route string, n, slow float64, other ...func(scenario)) scenario {
		sc := scenario{}
		latency(sc, route, n, slow)
		for _, o := range other {
			o(sc)
		}
		return sc
	}
	up, ready := `up{namespace="ns",job="lowrank",pod="p"}`, `kube_deployment_status_replicas_ready{namespace="ns",deployment="lowrank"}`
	nan := math.NaN()

	cases := []struct {
		alert, name string
		sc          scenario
		fires       bool
	}{
		{"LowrankQueueBacklogGrowing", "growing queue", scenario{queued: func(m float64) float64 { return 5 + m }}, true},
		{"LowrankQueueBacklogGrowing", "long but steady queue", scenario{queued: constant(40)}, false},
		{"LowrankQueueBacklogGrowing", "queue that empties every 20 minutes", scenario{queued: func(m float64) float64 { return math.Mod(m, 20) }}, false},
		{"LowrankQueueBacklogGrowing", "empty queue", scenario{queued: constant(0)}, false},

		{"LowrankJobFailureRatio", "20% failing", scenario{jobs("succeeded"): perMinute(8), jobs("failed"): perMinute(2)}, true},
		{"LowrankJobFailureRatio", "5% failing", scenario{jobs("succeeded"): perMinute(9.5), jobs("failed"): perMinute(0.5)}, false},
		{"LowrankJobFailureRatio", "cancellations are not failures", scenario{jobs("succeeded"): perMinute(5), jobs("canceled"): perMinute(5), jobs("failed"): perMinute(0)}, false},
		{"LowrankJobFailureRatio", "no jobs", scenario{jobs("succeeded"): constant(100), jobs("failed"): constant(3)}, false},

		{"LowrankHighRequestLatency", "fast API", withLatency("/v1/jobs/", 600, 0), false},
		{"LowrankHighRequestLatency", "2% of API requests take seconds", withLatency("/v1/jobs/{id}", 600, 0.02), true},
		{"LowrankHighRequestLatency", "slow uploads only", withLatency("/v1/tensors/", 60, 0.5, func(sc scenario) { latency(sc, "/v1/jobs/", 600, 0) }), false},
		{"LowrankHighRequestLatency", "slow factor downloads only", withLatency("/v1/jobs/{id}/factors/{name}", 60, 0.5, func(sc scenario) { latency(sc, "/v1/jobs/", 600, 0) }), false},

		{"LowrankNoReadyReplicas", "up and ready", scenario{up: constant(1), ready: constant(1)}, false},
		{"LowrankNoReadyReplicas", "up, no kube-state-metrics", scenario{up: constant(1)}, false},
		{"LowrankNoReadyReplicas", "scrape failing", scenario{up: constant(0), ready: constant(1)}, true},
		{"LowrankNoReadyReplicas", "no target at all", scenario{ready: constant(0)}, true},
		{"LowrankNoReadyReplicas", "target gone for the last 10 minutes", scenario{up: func(m float64) float64 {
			if m > 80 {
				return nan
			}
			return 1
		}}, true},
		{"LowrankNoReadyReplicas", "scrapeable but not ready", scenario{up: constant(1), ready: constant(0)}, true},
	}
	for _, c := range cases {
		expr, ok := exprs[c.alert]
		if !ok {
			t.Errorf("no alert %s", c.alert)
			continue
		}
		if got := alertFires(t, expr, c.sc); got != c.fires {
			t.Errorf("%s, %s: fires = %v, want %v", c.alert, c.name, got, c.fires)
		}
	}
}
