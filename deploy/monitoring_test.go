package deploy_test

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// externalMetrics are series the rules may use that Lowrank does not
// export, each with who does.
var externalMetrics = map[string]string{
	"up":                                    "Prometheus itself, per scrape target",
	"kube_deployment_status_replicas_ready": "kube-state-metrics",
}

var promqlParser = parser.NewParser(parser.Options{})

// targetLabels are the labels Prometheus (with the prometheus-operator's
// ServiceMonitor) adds to every series of a target; queries may use them
// though the server's own exposition has none.
var targetLabels = map[string]bool{"job": true, "instance": true, "namespace": true, "pod": true,
	"service": true, "endpoint": true, "container": true}

// selector is one metric a query reads, with the labels it filters or
// groups that metric's series by.
type selector struct {
	name   string
	labels []string
}

// selectorsOf parses a PromQL expression and returns the metrics its
// selectors name (by name or by a __name__ equality matcher), each with
// the labels of its matchers and of the by (...) clauses above it.
func selectorsOf(expr string) ([]selector, error) {
	e, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var out []selector
	parser.Inspect(e, func(n parser.Node, path []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		s := selector{name: vs.Name}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				if m.Type == labels.MatchEqual {
					s.name = m.Value
				}
				continue
			}
			s.labels = append(s.labels, m.Name)
		}
		for _, p := range path {
			if a, ok := p.(*parser.AggregateExpr); ok && !a.Without {
				s.labels = append(s.labels, a.Grouping...)
			}
		}
		out = append(out, s)
		return nil
	})
	return out, nil
}

// metricsOf is the names selectorsOf finds.
func metricsOf(expr string) ([]string, error) {
	sels, err := selectorsOf(expr)
	var names []string
	for _, s := range sels {
		names = append(names, s.name)
	}
	return names, err
}

func TestMetricsOf(t *testing.T) {
	got, err := metricsOf(`sum(rate(a_total{x="1"}[5m])) / on() group_left b or {__name__="c"}`)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if !slices.Equal(got, []string{"a_total", "b", "c"}) {
		t.Errorf("metricsOf = %v", got)
	}
	if _, err := metricsOf(`rate(a[5m]`); err == nil {
		t.Errorf("a broken expression parsed")
	}
	sels, err := selectorsOf(`sum by (route, le) (rate(h_bucket{code=~"5.."}[5m]))`)
	if err != nil || len(sels) != 1 || !slices.Equal(sels[0].labels, []string{"code", "route", "le"}) {
		t.Errorf("selectorsOf = %+v, %v", sels, err)
	}
}

// scrape runs the server with the base's settings, runs one job so the job
// metrics have series, and returns what /metrics serves (see
// scrapeMetrics).
func scrape(t *testing.T) map[string]map[string]bool {
	t.Helper()
	ts := startServer(t, renderBase(t).config.Data)
	ts.runJob(t)
	metrics := ts.scrapeMetrics(t)
	for _, want := range []string{"lowrank_jobs_total", "lowrank_job_duration_seconds_bucket", "lowrank_jobs_queued"} {
		if metrics[want] == nil {
			t.Fatalf("/metrics has no %s after a job ran; got %v", want, metrics)
		}
	}
	return metrics
}

// ruleGroups renders deploy/prometheus and checks its rules the way
// Prometheus loads a rules file (promtool check rules).
func ruleGroups(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	pr := only[*monitoringv1.PrometheusRule](t, render(t, "prometheus"))
	b, err := yaml.Marshal(pr.Spec)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(b, false, model.UTF8Validation, promqlParser, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("rules: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	return groups
}

func TestAlertRules(t *testing.T) {
	groups := ruleGroups(t)
	want := []string{"LowrankQueueBacklogGrowing", "LowrankJobFailureRatio", "LowrankHighRequestLatency", "LowrankNoReadyReplicas"}
	var got []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			got = append(got, r.Alert)
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			for _, a := range []string{"summary", "description"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			if r.For == 0 {
				t.Errorf("%s: no 'for': one bad scrape would page", r.Alert)
			}
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("no alert %s (have %v)", w, got)
		}
	}
}

// TestMonitoringUsesExportedMetrics checks every metric the alert rules
// and the dashboard query against a scrape of a running server.
func TestMonitoringUsesExportedMetrics(t *testing.T) {
	exported := scrape(t)
	// check reports a metric the server does not serve, or a label it
	// filters or groups by that the metric's series do not carry.
	check := func(where, expr string) []string {
		sels, err := selectorsOf(expr)
		if err != nil {
			t.Errorf("%s: %v\n%s", where, err, expr)
		}
		var names []string
		for _, s := range sels {
			names = append(names, s.name)
			if _, ext := externalMetrics[s.name]; ext {
				continue
			}
			have, ok := exported[s.name]
			if !ok {
				t.Errorf("%s uses %s, which the server does not export", where, s.name)
				continue
			}
			for _, l := range s.labels {
				if !have[l] && !targetLabels[l] {
					t.Errorf("%s uses label %s of %s, which its series do not have", where, l, s.name)
				}
			}
		}
		return names
	}
	for _, g := range ruleGroups(t).Groups {
		for _, r := range g.Rules {
			check("alert "+r.Alert, r.Expr)
		}
	}
	shown := map[string]bool{}
	for _, q := range dashboardQueries(t) {
		for _, n := range check("dashboard panel "+strconv.Quote(q.panel), q.expr) {
			shown[n] = true
		}
	}
	// The other way round: every Lowrank metric is on the dashboard (a
	// histogram by any of its series).
	family := func(n string) string {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if f, ok := strings.CutSuffix(n, suffix); ok && exported[f+"_bucket"] != nil {
				return f
			}
		}
		return n
	}
	shownFamilies := map[string]bool{}
	for n := range shown {
		shownFamilies[family(n)] = true
	}
	for n := range exported {
		if strings.HasPrefix(n, "lowrank_") && !shownFamilies[family(n)] {
			t.Errorf("the dashboard shows nothing of %s", n)
		}
	}
}

type dashboardQuery struct{ panel, expr string }

// grafanaVars are what Grafana substitutes before it sends a query.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$namespace", ".*")

// dashboardQueries reads deploy/grafana/lowrank.json, checks its shape and
// returns every panel's PromQL with Grafana's variables substituted.
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("grafana", "lowrank.json"))
	if err != nil {
		t.Fatal(err)
	}
	type datasource struct{ Type, UID string }
	var d struct {
		UID        string
		Title      string
		Templating struct{ List []struct{ Name, Type string } }
		Panels     []struct {
			ID         int
			Type       string
			Title      string
			Datasource *datasource
			GridPos    *struct{ H, W, X, Y int }
			Targets    []struct {
				Expr       string
				RefID      string `json:"refId"`
				Datasource *datasource
			}
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("lowrank.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("the dashboard needs a uid and a title")
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" {
		t.Errorf("no datasource variable: the dashboard would be tied to one Prometheus")
	}
	var qs []dashboardQuery
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: want the ${datasource} variable and at least one query", p.Title)
		}
		for _, q := range p.Targets {
			if strings.TrimSpace(q.Expr) == "" || q.RefID == "" {
				t.Errorf("panel %q: a query without expr or refId", p.Title)
			}
			qs = append(qs, dashboardQuery{p.Title, grafanaVars.Replace(q.Expr)})
		}
	}
	if len(qs) < 8 {
		t.Errorf("only %d queries on the dashboard", len(qs))
	}
	return qs
}

// TestDashboardConfigMap: the ConfigMap deploy/grafana renders holds the
// dashboard file unchanged, labelled for Grafana's sidecar.
func TestDashboardConfigMap(t *testing.T) {
	cm := only[*corev1.ConfigMap](t, render(t, "grafana"))
	b, err := os.ReadFile(filepath.Join("grafana", "lowrank.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["lowrank.json"] != string(b) {
		t.Errorf("the ConfigMap's lowrank.json differs from grafana/lowrank.json")
	}
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("the ConfigMap lacks the grafana_dashboard label")
	}
}
