package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/yaml"
)

// newObject is the Go type each apiVersion/kind we ship decodes into.
// A kind missing here fails the strict decoding test, so adding a manifest
// means adding its type.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 Secret":
		return &corev1.Secret{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}, true
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}, true
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &monitoringv1.PrometheusRule{}, true
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, true
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		return &types.Kustomization{}, true
	}
	return nil, false
}

// decodeStrict decodes one YAML document into its Go type; an unknown or
// duplicate field is an error, as it would be for kubectl --validate=strict.
func decodeStrict(doc []byte) (any, error) {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	obj, ok := newObject(tm.APIVersion, tm.Kind)
	if !ok {
		return nil, fmt.Errorf("no Go type known for apiVersion %q kind %q", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	return obj, nil
}

// splitDocuments splits a multi-document YAML stream.
func splitDocuments(b []byte) ([][]byte, error) {
	var docs [][]byte
	r := kyaml.NewDecoder(bytes.NewReader(b))
	for {
		var n kyaml.Node
		err := r.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		out, err := kyaml.Marshal(&n)
		if err != nil {
			return nil, err
		}
		docs = append(docs, out)
	}
}

// render runs kustomize build on dir and decodes every object strictly.
func render(t *testing.T, dir string) []any {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []any
	for _, r := range m.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		obj, err := decodeStrict(b)
		if err != nil {
			t.Fatalf("kustomize build %s: %s/%s: %v", dir, r.GetKind(), r.GetName(), err)
		}
		objs = append(objs, obj)
	}
	return objs
}

// optional returns the one object of type T among objs, or the zero value
// when there is none.
func optional[T any](t *testing.T, objs []any) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.(T); ok {
			found = append(found, v)
		}
	}
	var zero T
	switch len(found) {
	case 0:
		return zero
	case 1:
		return found[0]
	}
	t.Fatalf("want at most one %T, found %d", zero, len(found))
	return zero
}

// only returns the one object of type T among objs.
func only[T any](t *testing.T, objs []any) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T, found %d", zero, len(found))
	}
	return found[0]
}

// manifestDirs are the kustomizations we ship.
var manifestDirs = []string{"base", "scale-out", "prometheus", "grafana"}

func TestManifestFilesDecodeStrictly(t *testing.T) {
	n := 0
	for _, dir := range manifestDirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			docs, err := splitDocuments(b)
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			for i, doc := range docs {
				if _, err := decodeStrict(doc); err != nil {
					t.Errorf("%s, document %d: %v", f, i+1, err)
				}
				n++
			}
		}
	}
	if n < 10 {
		t.Errorf("decoded only %d manifests; are the globs right?", n)
	}
}

func TestDecodeStrictRejects(t *testing.T) {
	// The strict decoding must be able to fail: a misspelt field, a field at
	// the wrong level and an unknown kind are each an error.
	for name, doc := range map[string]string{
		"misspelt field": "apiVersion: v1\nkind: Service\nspec:\n  selectr: {a: b}\n",
		"wrong level":    "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      readOnlyRootFilesystem: true\n",
		"unknown kind":   "apiVersion: v1\nkind: Servic\n",
		"duplicate":      "apiVersion: v1\nkind: ConfigMap\ndata: {}\ndata: {}\n",
	} {
		if _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// checkMeta checks what the API server would refuse in an object's
// metadata: its name and its labels' syntax.
func checkMeta(t *testing.T, dir string, o any) {
	t.Helper()
	m, ok := o.(metav1.Object)
	if !ok {
		t.Errorf("%s: %T has no object metadata", dir, o)
		return
	}
	for _, msg := range validation.IsDNS1123Subdomain(m.GetName()) {
		t.Errorf("%s: %T name %q: %s", dir, o, m.GetName(), msg)
	}
	for k, v := range m.GetLabels() {
		for _, msg := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...) {
			t.Errorf("%s: %s label %s=%s: %s", dir, m.GetName(), k, v, msg)
		}
	}
}

func TestKustomizationsRender(t *testing.T) {
	want := map[string][]string{
		"base":       {"Deployment", "PersistentVolumeClaim", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"},
		"scale-out":  {"Deployment", "HorizontalPodAutoscaler", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor"},
		"prometheus": {"PrometheusRule"},
		"grafana":    {"ConfigMap"},
	}
	for _, dir := range manifestDirs {
		kinds := map[string]int{}
		for _, o := range render(t, dir) {
			kinds[strings.TrimPrefix(fmt.Sprintf("%T", o), "*")]++
			checkMeta(t, dir, o)
		}
		for _, k := range want[dir] {
			found := false
			for got := range kinds {
				if strings.HasSuffix(got, "."+k) {
					found = true
				}
			}
			if !found {
				t.Errorf("kustomize build %s: no %s (got %v)", dir, k, kinds)
			}
		}
	}
}
