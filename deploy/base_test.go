package deploy_test

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
)

// base is the rendered kustomize base with its parts picked out.
type base struct {
	objs       []any
	deploy     *appsv1.Deployment
	pod        *corev1.PodSpec
	container  *corev1.Container
	config     *corev1.ConfigMap
	service    *corev1.Service
	monitor    *monitoringv1.ServiceMonitor
	pdb        *policyv1.PodDisruptionBudget
	netpol     *networkingv1.NetworkPolicy
	pvc        *corev1.PersistentVolumeClaim
	secret     *corev1.Secret
	containerE map[string]string                   // the container's environment: envFrom ConfigMaps, then env
	secretEnv  map[string]corev1.SecretKeySelector // env set from Secret keys ("" in containerE)
}

func renderBase(t *testing.T) *base { t.Helper(); return renderApp(t, "base") }

// apps are the kustomizations that deploy the server: the embedded base
// and the scale-out overlay. Checks that hold for any deployment run on
// each.
var apps = []string{"base", "scale-out"}

func forApps(t *testing.T, check func(t *testing.T, b *base)) {
	t.Helper()
	for _, dir := range apps {
		t.Run(dir, func(t *testing.T) { check(t, renderApp(t, dir)) })
	}
}

// renderApp renders the kustomization in dir (the base or an overlay of it).
func renderApp(t *testing.T, dir string) *base {
	t.Helper()
	b := &base{objs: render(t, dir)}
	b.deploy = only[*appsv1.Deployment](t, b.objs)
	b.config = only[*corev1.ConfigMap](t, b.objs)
	b.service = only[*corev1.Service](t, b.objs)
	b.monitor = only[*monitoringv1.ServiceMonitor](t, b.objs)
	b.pdb = only[*policyv1.PodDisruptionBudget](t, b.objs)
	b.netpol = only[*networkingv1.NetworkPolicy](t, b.objs)
	b.pvc = optional[*corev1.PersistentVolumeClaim](t, b.objs)
	b.secret = only[*corev1.Secret](t, b.objs)
	b.pod = &b.deploy.Spec.Template.Spec
	if len(b.pod.Containers) != 1 {
		t.Fatalf("Deployment has %d containers, want 1", len(b.pod.Containers))
	}
	b.container = &b.pod.Containers[0]
	b.containerE = map[string]string{}
	for _, ef := range b.container.EnvFrom {
		if ef.ConfigMapRef == nil || ef.ConfigMapRef.Name != b.config.Name || ef.Prefix != "" {
			t.Fatalf("envFrom %+v: want the ConfigMap %s without prefix", ef, b.config.Name)
		}
		for k, v := range b.config.Data {
			b.containerE[k] = v
		}
	}
	b.secretEnv = map[string]corev1.SecretKeySelector{}
	for _, e := range b.container.Env {
		switch {
		case e.ValueFrom == nil:
			b.containerE[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			// Connection secrets (a database URL with its password, S3
			// keys) come from a Secret the operator creates.
			b.containerE[e.Name] = ""
			b.secretEnv[e.Name] = *e.ValueFrom.SecretKeyRef
		default:
			t.Fatalf("env %s: only values and secretKeyRefs are expected", e.Name)
		}
	}
	return b
}

// setting is the value the server sees for name: the manifests', else the
// server's default.
func (b *base) setting(t *testing.T, name string) string {
	t.Helper()
	if v, ok := b.containerE[name]; ok {
		return v
	}
	def, ok := serverEnv(t)[name]
	if !ok {
		t.Fatalf("the server reads no %s", name)
	}
	return def
}

func TestBaseEnvIsWhatTheServerReads(t *testing.T) { forApps(t, checkEnv) }

func checkEnv(t *testing.T, b *base) {
	t.Helper()
	known := serverEnv(t)
	for name := range b.containerE {
		if _, ok := known[name]; !ok {
			t.Errorf("the manifests set %s, which the server does not read (lowrank --help)", name)
		}
	}
	// Settings that size the pod must be explicit, not the server's
	// defaults, which depend on the machine.
	for _, name := range []string{"LOWRANK_WORKERS", "LOWRANK_DATA_DIR", "LOWRANK_SHUTDOWN_GRACE", "LOWRANK_JOB_TIMEOUT", "LOWRANK_MAX_ELEMENTS", "LOWRANK_API_KEYS_FILE"} {
		if _, ok := b.containerE[name]; !ok {
			t.Errorf("the manifests leave %s to the server's default", name)
		}
	}
	// Keys come from the Secret as a file, never as a plain value.
	if _, ok := b.containerE["LOWRANK_API_KEYS"]; ok {
		// Neither plainly nor from a Secret: the keys file is re-read, an
		// environment variable is fixed at start.
		t.Errorf("LOWRANK_API_KEYS is set in plain text; keys belong in the Secret")
	}
}

// TestBaseConfigStartsServer runs the server with the ConfigMap's settings
// (address, data directory and keys file replaced by the test's): they
// parse and validate, and the probes and the info endpoint agree with them.
func TestBaseConfigStartsServer(t *testing.T) {
	b := renderBase(t)
	ts := startServer(t, b.config.Data)
	for _, p := range []*corev1.Probe{b.container.StartupProbe, b.container.LivenessProbe, b.container.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			continue
		}
		code, body := ts.do(t, http.MethodGet, p.HTTPGet.Path, nil)
		if code != http.StatusOK {
			t.Errorf("probe path %s answers %d %s, want 200", p.HTTPGet.Path, code, body)
		}
	}
	// The same request to a path the router lacks shows the check can fail.
	if code, _ := ts.do(t, http.MethodGet, "/no-such-probe", nil); code != http.StatusNotFound {
		t.Errorf("GET /no-such-probe: %d, want 404", code)
	}
	code, body := ts.do(t, http.MethodGet, "/v1/info", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/info: %d %s", code, body)
	}
	var info struct {
		Workers int
		Auth    bool
		Limits  struct {
			MaxUploadBytes int64 `json:"max_upload_bytes"`
			MaxElements    int64 `json:"max_elements"`
			QueueCapacity  int   `json:"queue_capacity"`
		}
	}
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	if want := atoi(t, b.setting(t, "LOWRANK_WORKERS")); info.Workers != want {
		t.Errorf("/v1/info workers = %d, the ConfigMap says %d", info.Workers, want)
	}
	if want := int64(atoi(t, b.setting(t, "LOWRANK_MAX_ELEMENTS"))); info.Limits.MaxElements != want {
		t.Errorf("/v1/info max_elements = %d, the ConfigMap says %d", info.Limits.MaxElements, want)
	}
	if !info.Auth {
		t.Errorf("/v1/info: auth is off with a keys file")
	}
}

func TestBaseDeployment(t *testing.T) {
	b := renderBase(t)
	d := b.deploy
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas = %v, want 1: SQLite has one writer", d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy = %q, want Recreate: two pods must never share the database", d.Spec.Strategy.Type)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("the Deployment's selector %v does not select its own pods %v", sel, d.Spec.Template.Labels)
	}
}

// portOf is the TCP port of a Go listen address such as ":8080".
func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("listen address %q: %v", addr, err)
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil || n <= 0 {
		t.Fatalf("listen address %q: no fixed port", addr)
	}
	return int32(n)
}

// containerPort resolves a probe's or Service's port (a name or a number)
// against the container's ports.
func (b *base) containerPort(t *testing.T, p intstr.IntOrString) int32 {
	t.Helper()
	for _, cp := range b.container.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort
		}
	}
	t.Fatalf("port %s is not one of the container's ports", p.String())
	return 0
}

func TestBasePorts(t *testing.T) {
	forApps(t, func(t *testing.T, b *base) {
		listen := portOf(t, b.setting(t, "LOWRANK_ADDR"))
		if def := portOf(t, serverEnv(t)["LOWRANK_ADDR"]); listen != def {
			t.Logf("the manifests move the server from its default port %d to %d", def, listen)
		}
		if len(b.container.Ports) != 1 || b.container.Ports[0].ContainerPort != listen || b.container.Ports[0].Protocol != corev1.ProtocolTCP {
			t.Errorf("container ports %+v, want one TCP port %d (LOWRANK_ADDR)", b.container.Ports, listen)
		}
		for name, p := range map[string]*corev1.Probe{"startup": b.container.StartupProbe, "liveness": b.container.LivenessProbe, "readiness": b.container.ReadinessProbe} {
			if p == nil || p.HTTPGet == nil {
				continue
			}
			if got := b.containerPort(t, p.HTTPGet.Port); got != listen {
				t.Errorf("%s probe port %d, the server listens on %d", name, got, listen)
			}
		}
		svcPorts := map[string]bool{}
		for _, sp := range b.service.Spec.Ports {
			if got := b.containerPort(t, sp.TargetPort); got != listen {
				t.Errorf("Service port %s targets %d, the server listens on %d", sp.Name, got, listen)
			}
			svcPorts[sp.Name] = true
		}
		if len(b.service.Spec.Selector) == 0 || !labels.SelectorFromSet(b.service.Spec.Selector).Matches(labels.Set(b.deploy.Spec.Template.Labels)) {
			t.Errorf("the Service's selector %v does not select the pods %v", b.service.Spec.Selector, b.deploy.Spec.Template.Labels)
		}

		msel, err := metav1.LabelSelectorAsSelector(&b.monitor.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		if msel.Empty() || !msel.Matches(labels.Set(b.service.Labels)) {
			t.Errorf("the ServiceMonitor's selector %v does not select the Service %v", msel, b.service.Labels)
		}
		if len(b.monitor.Spec.Endpoints) != 1 {
			t.Fatalf("ServiceMonitor has %d endpoints, want 1", len(b.monitor.Spec.Endpoints))
		}
		ep := b.monitor.Spec.Endpoints[0]
		if !svcPorts[ep.Port] {
			t.Errorf("ServiceMonitor scrapes port %q, which the Service does not name", ep.Port)
		}
		if ep.Path != "/metrics" {
			t.Errorf("ServiceMonitor scrapes %q, want /metrics", ep.Path)
		}
	})
}

func TestBaseProbes(t *testing.T) {
	forApps(t, func(t *testing.T, b *base) {
		want := map[string]struct {
			p    *corev1.Probe
			path string
		}{
			"liveness":  {b.container.LivenessProbe, "/healthz"},
			"readiness": {b.container.ReadinessProbe, "/readyz"},
		}
		for name, w := range want {
			if w.p == nil || w.p.HTTPGet == nil {
				t.Errorf("no HTTP %s probe", name)
				continue
			}
			if w.p.HTTPGet.Path != w.path {
				t.Errorf("%s probe path %q, want %q", name, w.p.HTTPGet.Path, w.path)
			}
		}
		// That these paths answer 200 on a running server is checked by
		// TestBaseConfigStartsServer.

		// The pod's grace is long so jobs can finish; a wedged server should
		// not get as long when its liveness probe fails.
		if lp := b.container.LivenessProbe; lp != nil && (lp.TerminationGracePeriodSeconds == nil || *lp.TerminationGracePeriodSeconds > 60) {
			t.Errorf("the liveness probe should set its own terminationGracePeriodSeconds (≤ 60s)")
		}
	})
}

func TestBaseResources(t *testing.T) { forApps(t, checkResources) }

func checkResources(t *testing.T, b *base) {
	t.Helper()
	res := b.container.Resources
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okr := res.Requests[name]
		lim, okl := res.Limits[name]
		if !okr || !okl {
			t.Fatalf("%s: requests and limits must both be set (requests %v, limits %v)", name, res.Requests, res.Limits)
		}
		// Guaranteed QoS: a BLAS kernel that is throttled below its thread
		// count, or a job killed for memory it was promised, is the worst case.
		if req.Cmp(lim) != 0 {
			t.Errorf("%s request %s ≠ limit %s", name, req.String(), lim.String())
		}
	}
	cpu := res.Limits[corev1.ResourceCPU]
	if cpu.MilliValue()%1000 != 0 {
		t.Fatalf("CPU limit %s is not whole cores: GOMAXPROCS rounds it, and the thread budget with it", cpu.String())
	}
	cores := int(cpu.Value())
	workers := atoi(t, b.setting(t, "LOWRANK_WORKERS"))
	if workers < 1 || cores < workers || cores%workers != 0 {
		t.Errorf("%d cores for %d workers: each job gets cores/workers kernel threads, so the cores must be a multiple of the workers", cores, workers)
	}
	// Rule of thumb (deploy/README.md): a job holds about four float64
	// copies of its input (the input, a working copy, U and Vᵀ), so memory
	// is at least workers × 4 × 8 B × LOWRANK_MAX_ELEMENTS, plus 512 MiB
	// for the server, the upload buffers and SQLite.
	maxElements := int64(atoi(t, b.setting(t, "LOWRANK_MAX_ELEMENTS")))
	need := int64(workers)*4*8*maxElements + 512<<20
	mem := res.Limits[corev1.ResourceMemory]
	if mem.Value() < need {
		t.Errorf("memory limit %s < %s needed for %d workers on inputs of %d elements", mem.String(), resource.NewQuantity(need, resource.BinarySI), workers, maxElements)
	}
}

func TestBaseSecurity(t *testing.T) {
	forApps(t, func(t *testing.T, b *base) {
		psc, csc := b.pod.SecurityContext, b.container.SecurityContext
		if psc == nil || csc == nil {
			t.Fatal("the pod and the container each need a securityContext")
		}
		if csc.RunAsNonRoot == nil || !*csc.RunAsNonRoot || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("runAsNonRoot must be true")
		}
		if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
			t.Errorf("readOnlyRootFilesystem must be true")
		}
		if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
			t.Errorf("allowPrivilegeEscalation must be false")
		}
		if csc.Privileged != nil && *csc.Privileged {
			t.Errorf("privileged must not be set")
		}
		if csc.Capabilities == nil || len(csc.Capabilities.Drop) != 1 || csc.Capabilities.Drop[0] != "ALL" || len(csc.Capabilities.Add) != 0 {
			t.Errorf("capabilities %+v: want drop [ALL] and nothing added", csc.Capabilities)
		}
		for name, sp := range map[string]*corev1.SeccompProfile{"pod": psc.SeccompProfile, "container": csc.SeccompProfile} {
			if sp == nil || sp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s seccompProfile %+v, want RuntimeDefault", name, sp)
			}
		}
		uid := dockerfileUID(t)
		if psc.RunAsUser == nil || *psc.RunAsUser != uid || psc.FSGroup == nil {
			t.Errorf("runAsUser %v, fsGroup %v: want the image's USER %d and an fsGroup so the volume is writable", psc.RunAsUser, psc.FSGroup, uid)
		}
		if b.pod.AutomountServiceAccountToken == nil || *b.pod.AutomountServiceAccountToken {
			t.Errorf("automountServiceAccountToken must be false: the server calls no Kubernetes API")
		}
	})
}

// TestBaseRestrictedPodSecurity runs the Pod Security admission
// controller's own checks: the pod is admitted to a namespace enforcing the
// "restricted" standard.
func TestBaseRestrictedPodSecurity(t *testing.T) {
	forApps(t, func(t *testing.T, b *base) {
		ev, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
		if err != nil {
			t.Fatal(err)
		}
		lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
		check := func(spec *corev1.PodSpec) []string {
			var denied []string
			for _, r := range ev.EvaluatePod(lv, &b.deploy.Spec.Template.ObjectMeta, spec) {
				if !r.Allowed {
					denied = append(denied, r.ForbiddenReason+": "+r.ForbiddenDetail)
				}
			}
			return denied
		}
		for _, d := range check(b.pod) {
			t.Errorf("restricted Pod Security Standard: %s", d)
		}
		// The evaluator must be able to refuse: without the container's
		// securityContext the same pod is denied.
		weak := b.pod.DeepCopy()
		weak.Containers[0].SecurityContext = nil
		if len(check(weak)) == 0 {
			t.Errorf("the evaluator admitted a container without a securityContext")
		}
	})
}

func TestBaseVolumes(t *testing.T) {
	b := renderBase(t)
	vols := map[string]corev1.Volume{}
	for _, v := range b.pod.Volumes {
		vols[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range b.container.VolumeMounts {
		if _, ok := vols[m.Name]; !ok {
			t.Errorf("mount %s names no volume", m.Name)
		}
		mounts[m.MountPath] = m
	}
	// The data directory is the claim, writable.
	dataDir := b.setting(t, "LOWRANK_DATA_DIR")
	m, ok := mounts[dataDir]
	switch {
	case !ok:
		t.Errorf("LOWRANK_DATA_DIR %s is not a mount: the read-only root filesystem would refuse the database", dataDir)
	case m.ReadOnly || m.SubPath != "":
		t.Errorf("the data mount %+v must be writable and whole", m)
	case vols[m.Name].PersistentVolumeClaim == nil || vols[m.Name].PersistentVolumeClaim.ClaimName != b.pvc.Name:
		t.Errorf("the data directory is volume %+v, want the claim %s", vols[m.Name], b.pvc.Name)
	}
	if len(b.pvc.Spec.AccessModes) != 1 || b.pvc.Spec.AccessModes[0] != corev1.ReadWriteOnce {
		t.Errorf("PVC access modes %v, want [ReadWriteOnce]", b.pvc.Spec.AccessModes)
	}
	if _, ok := b.pvc.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
		t.Errorf("the PVC requests no storage")
	}
	// Temporary files (Go's and SQLite's) go to /tmp.
	if m, ok := mounts["/tmp"]; !ok || vols[m.Name].EmptyDir == nil {
		t.Errorf("/tmp must be an emptyDir: the root filesystem is read-only")
	}
	// The keys file is a key of the Secret, mounted read-only.
	keysFile := b.setting(t, "LOWRANK_API_KEYS_FILE")
	m, ok = mounts[path.Dir(keysFile)]
	if !ok || !m.ReadOnly || vols[m.Name].Secret == nil || vols[m.Name].Secret.SecretName != b.secret.Name {
		t.Fatalf("LOWRANK_API_KEYS_FILE %s is not in a read-only mount of the Secret %s", keysFile, b.secret.Name)
	}
	if _, ok := b.secret.Data[path.Base(keysFile)]; !ok {
		t.Errorf("the Secret %s has no key %s", b.secret.Name, path.Base(keysFile))
	}
}

// TestBaseShipsNoKeys: the keys file in the base has comments only, so the
// server refuses to start until an overlay supplies keys.
func TestBaseShipsNoKeys(t *testing.T) {
	b := renderBase(t)
	for name, v := range b.secret.Data {
		for _, line := range strings.Split(string(v), "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				t.Errorf("the base's Secret %s key %s holds a key: %q", b.secret.Name, name, l)
			}
		}
	}
}

// TestReadmeOverlay renders the overlay example of deploy/README.md (the
// yaml block after its overlay-example marker) against a copy of the base:
// the users' keys reach the pod, the settings and resources it changes
// still follow the sizing rules.
func TestReadmeOverlay(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "<!-- overlay-example")
	if !ok {
		t.Fatal("README.md has no overlay-example marker")
	}
	_, after, ok = strings.Cut(after, "```yaml\n")
	example, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 {
		t.Fatal("README.md: no yaml block after the overlay-example marker")
	}
	dir := t.TempDir()
	copyDir(t, "base", filepath.Join(dir, "deploy", "base"))
	overlay := filepath.Join(dir, "overlays", "prod")
	write(t, filepath.Join(overlay, "kustomization.yaml"), example)
	write(t, filepath.Join(overlay, "api-keys.txt"), "# team keys\nalice-0123456789\nbob-9876543210\n")

	b := renderApp(t, overlay)
	if got := string(b.secret.Data["api-keys"]); !strings.Contains(got, "alice-0123456789") || !strings.Contains(got, "bob-9876543210") {
		t.Errorf("the overlay's Secret holds %q", got)
	}
	found := false
	for _, v := range b.pod.Volumes {
		found = found || (v.Secret != nil && v.Secret.SecretName == b.secret.Name)
	}
	if !found {
		t.Errorf("the Deployment does not mount the overlay's Secret %s", b.secret.Name)
	}
	if b.containerE["LOWRANK_WORKERS"] != "4" || b.containerE["LOWRANK_DATA_DIR"] == "" {
		t.Errorf("the ConfigMap merge lost or missed settings: %v", b.containerE)
	}
	if !strings.HasPrefix(b.container.Image, "registry.example.com/lowrank:") {
		t.Errorf("image %q: the overlay's images entry did not apply", b.container.Image)
	}
	if b.deploy.Namespace != "lowrank" {
		t.Errorf("namespace %q", b.deploy.Namespace)
	}
	checkEnv(t, b)
	checkResources(t, b)
}

func TestBaseShutdown(t *testing.T) {
	forApps(t, func(t *testing.T, b *base) {
		grace := duration(t, b.setting(t, "LOWRANK_SHUTDOWN_GRACE"))
		timeout := duration(t, b.setting(t, "LOWRANK_JOB_TIMEOUT"))
		// A job that started just before SIGTERM may run to its timeout: give
		// it that, so a rollout never requeues work that could have finished.
		if timeout == 0 || grace < timeout {
			t.Errorf("LOWRANK_SHUTDOWN_GRACE %s < LOWRANK_JOB_TIMEOUT %s: a running job could be cut off at shutdown", grace, timeout)
		}
		// Kubernetes kills the container after terminationGracePeriodSeconds;
		// the server needs its grace plus a few seconds to close the database.
		tgps := b.pod.TerminationGracePeriodSeconds
		if tgps == nil {
			t.Fatalf("no terminationGracePeriodSeconds: Kubernetes' 30s default would cut jobs off")
		}
		if time.Duration(*tgps)*time.Second < grace+10*time.Second {
			t.Errorf("terminationGracePeriodSeconds %d < LOWRANK_SHUTDOWN_GRACE %s + 10s", *tgps, grace)
		}
	})
}

func TestBaseDisruptionAndNetwork(t *testing.T) {
	forApps(t, func(t *testing.T, b *base) {
		podLabels := labels.Set(b.deploy.Spec.Template.Labels)
		for name, ls := range map[string]*metav1.LabelSelector{"PodDisruptionBudget": b.pdb.Spec.Selector, "NetworkPolicy": &b.netpol.Spec.PodSelector} {
			sel, err := metav1.LabelSelectorAsSelector(ls)
			if err != nil {
				t.Fatal(err)
			}
			if sel.Empty() || !sel.Matches(podLabels) {
				t.Errorf("the %s's selector %v does not select the pods", name, sel)
			}
		}
		// With one replica a budget that allows no eviction would block node
		// drains for good; eviction is safe since SIGTERM requeues jobs.
		// Under an HPA (no fixed count) the fewest replicas it keeps.
		replicas := 1
		if r := b.deploy.Spec.Replicas; r != nil {
			replicas = int(*r)
		} else if hpa := optional[*autoscalingv2.HorizontalPodAutoscaler](t, b.objs); hpa != nil && hpa.Spec.MinReplicas != nil {
			replicas = int(*hpa.Spec.MinReplicas)
		}
		allowed := 0
		switch {
		case b.pdb.Spec.MaxUnavailable != nil:
			v, err := intstr.GetScaledValueFromIntOrPercent(b.pdb.Spec.MaxUnavailable, replicas, true)
			if err != nil {
				t.Fatal(err)
			}
			allowed = v
		case b.pdb.Spec.MinAvailable != nil:
			v, err := intstr.GetScaledValueFromIntOrPercent(b.pdb.Spec.MinAvailable, replicas, true)
			if err != nil {
				t.Fatal(err)
			}
			allowed = replicas - v
		}
		if allowed < 1 {
			t.Errorf("the PodDisruptionBudget allows %d evictions of %d replicas: the node could never be drained", allowed, replicas)
		}

		np := b.netpol.Spec
		types := map[networkingv1.PolicyType]bool{}
		for _, pt := range np.PolicyTypes {
			types[pt] = true
		}
		if !types[networkingv1.PolicyTypeIngress] || !types[networkingv1.PolicyTypeEgress] {
			t.Errorf("NetworkPolicy types %v, want Ingress and Egress", np.PolicyTypes)
		}
		// The embedded server calls nothing; scale-out egress is checked
		// port by port in TestScaleOutOverlay.
		if b.pvc != nil && len(np.Egress) != 0 {
			t.Errorf("NetworkPolicy allows egress %+v: the embedded server calls nothing", np.Egress)
		}
		listen := portOf(t, b.setting(t, "LOWRANK_ADDR"))
		for _, rule := range np.Ingress {
			if len(rule.Ports) == 0 {
				t.Errorf("an ingress rule allows every port")
			}
			for _, p := range rule.Ports {
				if p.Port == nil || b.containerPort(t, *p.Port) != listen {
					t.Errorf("ingress port %v is not the API port %d", p.Port, listen)
				}
			}
		}
	})
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func duration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			copyDir(t, filepath.Join(from, e.Name()), filepath.Join(to, e.Name()))
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(to, e.Name()), string(b))
	}
}
