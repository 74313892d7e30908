package deploy_test

import (
	"net/url"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The scale-out overlay: replicas on Postgres and S3, scaled by an HPA.
func TestScaleOutOverlay(t *testing.T) {
	b := renderApp(t, "scale-out")
	hpa := only[*autoscalingv2.HorizontalPodAutoscaler](t, b.objs)

	if b.pvc != nil {
		t.Errorf("the overlay keeps the PersistentVolumeClaim %s: replicas share no volume", b.pvc.Name)
	}
	d := b.deploy
	if d.Spec.Replicas != nil {
		t.Errorf("replicas = %d: the HorizontalPodAutoscaler owns the count, a fixed one fights it on every apply", *d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate == nil ||
		d.Spec.Strategy.RollingUpdate.MaxUnavailable == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("strategy %+v: want RollingUpdate with maxUnavailable 0", d.Spec.Strategy)
	}

	ref := hpa.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
		t.Errorf("the HPA scales %+v, not the Deployment %s", ref, d.Name)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 || hpa.Spec.MaxReplicas < *hpa.Spec.MinReplicas {
		t.Errorf("HPA replicas %v..%d: want at least 2 (one replica is no scale-out) and max ≥ min", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	cpu := false
	for _, m := range hpa.Spec.Metrics {
		cpu = cpu || (m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
			m.Resource.Target.AverageUtilization != nil && *m.Resource.Target.AverageUtilization > 0 && *m.Resource.Target.AverageUtilization <= 100)
	}
	if !cpu {
		t.Errorf("HPA metrics %+v: want CPU utilisation (it needs the CPU requests checkResources requires)", hpa.Spec.Metrics)
	}
	if bd := hpa.Spec.Behavior; bd == nil || bd.ScaleDown == nil || bd.ScaleDown.StabilizationWindowSeconds == nil || *bd.ScaleDown.StabilizationWindowSeconds < 300 {
		t.Errorf("HPA scale-down behaviour %+v: a removed pod restarts its jobs elsewhere, so scale down slowly", bd)
	}

	// Backends: Postgres and S3, with their secrets from a Secret.
	for name, key := range map[string]string{"LOWRANK_DATABASE_URL": "database-url", "LOWRANK_S3_ACCESS_KEY": "s3-access-key", "LOWRANK_S3_SECRET_KEY": "s3-secret-key"} {
		ref, ok := b.secretEnv[name]
		if !ok || ref.Key != key || ref.Optional != nil && *ref.Optional {
			t.Errorf("%s: want it from the Secret key %s, required (a missing Secret must stop the pod, not fall back to SQLite); got %+v", name, key, ref)
		}
	}
	blob, err := url.Parse(b.setting(t, "LOWRANK_BLOB_URL"))
	if err != nil || blob.Scheme != "s3" || blob.Host == "" {
		t.Errorf("LOWRANK_BLOB_URL %q: want s3://bucket/prefix", b.setting(t, "LOWRANK_BLOB_URL"))
	}
	if b.setting(t, "LOWRANK_S3_ENDPOINT") == "" {
		t.Errorf("LOWRANK_S3_ENDPOINT is empty")
	}
	// A dead replica's jobs go elsewhere once its heartbeat is this old,
	// whatever the job timeout: shorter than a few seconds, a database
	// hiccup would run jobs twice; longer than minutes, they wait idle.
	if rescue := duration(t, b.setting(t, "LOWRANK_RESCUE_AFTER")); rescue < 5*time.Second || rescue > 5*time.Minute {
		t.Errorf("LOWRANK_RESCUE_AFTER %s: want between 5s and 5m", rescue)
	}

	// Uploads are spooled to /tmp before they go to the bucket.
	vols := map[string]corev1.Volume{}
	for _, v := range b.pod.Volumes {
		vols[v.Name] = v
		if v.PersistentVolumeClaim != nil {
			t.Errorf("volume %s is a claim: replicas share no volume", v.Name)
		}
	}
	for _, m := range b.container.VolumeMounts {
		if m.MountPath != "/tmp" {
			continue
		}
		ed := vols[m.Name].EmptyDir
		uploads, _ := strconv.ParseInt(b.setting(t, "LOWRANK_MAX_CONCURRENT_UPLOADS"), 10, 64)
		size, _ := strconv.ParseInt(b.setting(t, "LOWRANK_MAX_UPLOAD_BYTES"), 10, 64)
		need := resource.NewQuantity(uploads*size, resource.BinarySI)
		if ed == nil || ed.SizeLimit == nil || ed.SizeLimit.Cmp(*need) < 0 {
			t.Errorf("/tmp %+v: want an emptyDir of at least %s (LOWRANK_MAX_CONCURRENT_UPLOADS × LOWRANK_MAX_UPLOAD_BYTES)", ed, need)
		}
	}

	// Egress: DNS, Postgres and S3.
	open := map[int]bool{}
	for _, r := range b.netpol.Spec.Egress {
		for _, p := range r.Ports {
			if p.Port != nil {
				open[p.Port.IntValue()] = true
			}
		}
	}
	for _, p := range []int{53, 5432, 443} {
		if !open[p] {
			t.Errorf("the NetworkPolicy allows no egress to port %d", p)
		}
	}
}
