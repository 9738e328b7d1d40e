package chartest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// valueSets are the configurations every structural test renders.
var valueSets = map[string][]string{
	"defaults":  nil,
	"options":   {"-f", "testdata/options.yaml"},
	"inline":    {"-f", "testdata/inline.yaml"},
	"plaintext": {"-f", "testdata/plaintext.yaml"},
}

func eachValueSet(t *testing.T, f func(t *testing.T, r *release)) {
	for name, args := range valueSets {
		t.Run(name, func(t *testing.T) { f(t, render(t, args...)) })
	}
}

func TestLint(t *testing.T) {
	for name, args := range valueSets {
		t.Run(name, func(t *testing.T) {
			out, err := helm(append([]string{"lint", "--strict", chartDir}, args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(string(out), "0 chart(s) failed") {
				t.Fatalf("helm lint:\n%s", out)
			}
		})
	}
}

// TestDecoderIsStrict shows that the decoder the other tests rely on refuses
// what the API server would: an unknown field, a field in the wrong case, a
// duplicate key, a wrong type and a kind it does not know.
func TestDecoderIsStrict(t *testing.T) {
	good := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n"
	if objs, err := decode([]byte(good)); err != nil || len(objs) != 1 {
		t.Fatalf("a good ConfigMap: %v (%d objects)", err, len(objs))
	}
	for name, doc := range map[string]string{
		"unknown field": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndatta: {k: v}\n",
		"wrong case":    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nData: {k: v}\n",
		"duplicate key": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\ndata: {k: w}\n",
		"wrong type":    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: two}\n",
		"nested field":  "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: a}\nspec: {template: {spec: {containers: [{name: c, readonlyRootFilesystem: true}]}}}\n",
		"unknown kind":  "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a}\n",
	} {
		if _, err := decode([]byte(good + "---\n" + doc)); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
}

// TestRefusals: settings the chart must refuse at render time.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"two analyzers without ZooKeeper", []string{"--set", "analyzer.replicas=2"}, "set analyzer.coordination.zookeeper"},
		{"no analyzer replica", []string{"--set", "analyzer.replicas=0"}, "want at least 1"},
		{"a ZooKeeper server without its port", []string{"--set", "analyzer.replicas=2", "--set", "analyzer.coordination.zookeeper={zk-0}"}, "/analyzer/coordination/zookeeper/0"},
		{"password in the DSN", []string{"--set", "clickhouse.dsn=clickhouse://u:p@ch:9000/fleetwatch"}, "without user or password"},
		{"not a clickhouse DSN", []string{"--set", "clickhouse.dsn=http://ch:8123/"}, "clickhouse.dsn"},
		{"a password missing", []string{"--set", "clickhouse.passwords.collector=x"}, "clickhouse.passwords.analyzer is empty"},
		{"a certificate missing", []string{"--set", "tls.files.token=x"}, "tls.files.ca.pem is empty"},
		{"a misspelt value (values.schema.json)", []string{"--set", "agent.nodeLabel.rack=x"}, "additional properties 'nodeLabel' not allowed"},
		{"a value of the wrong type", []string{"--set", "collector.replicas=two"}, "/collector/replicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := renderErr(tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error mentioning %q, got %v", tc.want, err)
			}
		})
	}
}

// TestObjects: what each configuration renders, by kind and name.
func TestObjects(t *testing.T) {
	want := map[string][]string{
		"defaults": {"ConfigMap/fw-fleetwatch-agent", "ServiceAccount/fw-fleetwatch-agent", "ClusterRole/fw-fleetwatch-agent-fleet",
			"ClusterRoleBinding/fw-fleetwatch-agent-fleet", "DaemonSet/fw-fleetwatch-agent",
			"ConfigMap/fw-fleetwatch-collector", "ServiceAccount/fw-fleetwatch-collector", "Service/fw-fleetwatch-collector",
			"Deployment/fw-fleetwatch-collector", "HorizontalPodAutoscaler/fw-fleetwatch-collector", "PodDisruptionBudget/fw-fleetwatch-collector",
			"Secret/fw-fleetwatch-analyzer", "ServiceAccount/fw-fleetwatch-analyzer", "Service/fw-fleetwatch-analyzer",
			"StatefulSet/fw-fleetwatch-analyzer", "PodDisruptionBudget/fw-fleetwatch-analyzer",
			"NetworkPolicy/fw-fleetwatch-agent", "NetworkPolicy/fw-fleetwatch-collector", "NetworkPolicy/fw-fleetwatch-analyzer",
			"ConfigMap/fw-fleetwatch-datasources"},
		"options": {"StatefulSet/fw-fleetwatch-collector", "Service/fw-fleetwatch-collector-headless", "Job/fw-fleetwatch-migrate",
			"NetworkPolicy/fw-fleetwatch-migrate", "HorizontalPodAutoscaler/fw-fleetwatch-collector"},
		"inline":    {"Secret/fw-fleetwatch-clickhouse", "Secret/fw-fleetwatch-tls", "Deployment/fw-fleetwatch-collector"},
		"plaintext": {"DaemonSet/fw-fleetwatch-agent", "Deployment/fw-fleetwatch-collector", "StatefulSet/fw-fleetwatch-analyzer"},
	}
	absent := map[string][]string{
		"defaults":  {"Secret/fw-fleetwatch-clickhouse", "Secret/fw-fleetwatch-tls", "Job/fw-fleetwatch-migrate", "StatefulSet/fw-fleetwatch-collector"},
		"options":   {"Secret/fw-fleetwatch-clickhouse", "Secret/fw-fleetwatch-tls", "Secret/ch-passwords", "Secret/fw-certs", "Deployment/fw-fleetwatch-collector"},
		"inline":    {"HorizontalPodAutoscaler/fw-fleetwatch-collector"},
		"plaintext": {"NetworkPolicy/fw-fleetwatch-agent", "NetworkPolicy/fw-fleetwatch-collector", "ClusterRole/fw-fleetwatch-agent-fleet", "PodDisruptionBudget/fw-fleetwatch-collector", "ConfigMap/fw-fleetwatch-datasources"},
	}
	eachValueSet(t, func(t *testing.T, r *release) {
		name := strings.TrimPrefix(t.Name(), "TestObjects/")
		got := map[string]bool{}
		for _, o := range r.objs {
			got[o.kind[strings.LastIndex(o.kind, "/")+1:]+"/"+o.meta.Name] = true
			if o.meta.Namespace != "" && o.meta.Namespace != "fleet" && !(name == "options" && o.meta.Namespace == "monitoring") {
				t.Errorf("%s/%s in namespace %s", o.kind, o.meta.Name, o.meta.Namespace)
			}
			if o.meta.Labels["app.kubernetes.io/instance"] != "fw" || o.meta.Labels["app.kubernetes.io/part-of"] != "fleetwatch" {
				t.Errorf("%s/%s lacks the release labels: %v", o.kind, o.meta.Name, o.meta.Labels)
			}
		}
		for _, w := range want[name] {
			if !got[w] {
				t.Errorf("%s not rendered", w)
			}
		}
		for _, a := range absent[name] {
			if got[a] {
				t.Errorf("%s rendered", a)
			}
		}
	})
}

// TestAgentDaemonSet: GPU access, the pod-resources socket, topology and
// the buffer.
func TestAgentDaemonSet(t *testing.T) {
	r := render(t)
	ds := named[*appsv1.DaemonSet](t, r, "fw-fleetwatch-agent")
	spec := ds.Spec.Template.Spec
	if spec.RuntimeClassName == nil || *spec.RuntimeClassName != "nvidia" {
		t.Errorf("runtimeClassName %v, want nvidia", spec.RuntimeClassName)
	}
	c := spec.Containers[0]
	if v := env(c, "NVIDIA_VISIBLE_DEVICES"); v != "all" {
		t.Errorf("NVIDIA_VISIBLE_DEVICES=%q, want all", v)
	}
	if _, ok := c.Resources.Limits["nvidia.com/gpu"]; ok {
		t.Error("the agent allocates a GPU: it must only read them")
	}
	nodeName := envVar(c, "NODE_NAME")
	if nodeName == nil || nodeName.ValueFrom == nil || nodeName.ValueFrom.FieldRef == nil || nodeName.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME is not the downward API's spec.nodeName: %+v", nodeName)
	}
	m := mountAt(t, c, "/var/lib/kubelet/pod-resources")
	if !m.ReadOnly {
		t.Error("the pod-resources socket is mounted writable")
	}
	if v := volume(t, spec, m.Name); v.HostPath == nil || v.HostPath.Path != "/var/lib/kubelet/pod-resources" {
		t.Errorf("pod-resources volume %+v, want the host's /var/lib/kubelet/pod-resources", v.VolumeSource)
	}
	if v := volume(t, spec, mountAt(t, c, "/var/lib/fleetwatch-agent").Name); v.HostPath == nil {
		t.Errorf("the disk buffer is not on the node: %+v", v.VolumeSource)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Error("the agent shares a host namespace")
	}
	// Topology from node labels and cost labels from the GPUs' pods: the
	// agent reads its Node and those pods, so its service account may get
	// nodes and pods and nothing else.
	if spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
		t.Error("node labels need the service account token")
	}
	role := named[*rbacv1.ClusterRole](t, r, "fw-fleetwatch-agent-fleet")
	if len(role.Rules) != 2 || !slices.Equal(role.Rules[0].Resources, []string{"nodes"}) || !slices.Equal(role.Rules[0].Verbs, []string{"get"}) ||
		!slices.Equal(role.Rules[1].Resources, []string{"pods"}) || !slices.Equal(role.Rules[1].Verbs, []string{"get"}) {
		t.Errorf("agent ClusterRole rules %+v, want get nodes and get pods only", role.Rules)
	}
	binding := named[*rbacv1.ClusterRoleBinding](t, r, "fw-fleetwatch-agent-fleet")
	if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 || binding.Subjects[0].Name != spec.ServiceAccountName || binding.Subjects[0].Namespace != "fleet" {
		t.Errorf("binding %+v does not give the role to the agent's service account %s", binding, spec.ServiceAccountName)
	}
	cfg := r.configData(t, "fw-fleetwatch-agent", "agent.yaml")
	for _, want := range []string{"datacenter: topology.kubernetes.io/zone", "endpoint: fw-fleetwatch-collector.fleet.svc:4317", "token_file: /etc/fleetwatch/tls/token",
		"socket: /var/lib/kubelet/pod-resources/kubelet.sock", "- cost_center"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("agent config lacks %q:\n%s", want, cfg)
		}
	}

	opt := render(t, "-f", "testdata/options.yaml")
	spec = named[*appsv1.DaemonSet](t, opt, "fw-fleetwatch-agent").Spec.Template.Spec
	if spec.RuntimeClassName == nil || *spec.RuntimeClassName != "nvidia-cdi" {
		t.Errorf("runtimeClassName %v, want the configured nvidia-cdi", spec.RuntimeClassName)
	}
	if m := mountAt(t, spec.Containers[0], "/var/log/model-server"); !m.ReadOnly {
		t.Error("model-server logs mounted writable")
	}
	cfg = opt.configData(t, "fw-fleetwatch-agent", "agent.yaml")
	for _, want := range []string{"rack: example.com/rack", "cluster: train-a", "cert_file: /etc/fleetwatch/tls/client.pem", "url: http://127.0.0.1:9400/metrics"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("agent config lacks %q:\n%s", want, cfg)
		}
	}

	plain := render(t, "-f", "testdata/plaintext.yaml")
	spec = named[*appsv1.DaemonSet](t, plain, "fw-fleetwatch-agent").Spec.Template.Spec
	if spec.RuntimeClassName != nil {
		t.Errorf("runtimeClassName %q with runtimeClassName \"\"", *spec.RuntimeClassName)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the service account token is mounted without node labels")
	}
	for _, m := range spec.Containers[0].VolumeMounts {
		if m.MountPath == "/var/lib/kubelet/pod-resources" {
			t.Error("pod-resources mounted with podResources.enabled=false")
		}
	}
	if cfg := plain.configData(t, "fw-fleetwatch-agent", "agent.yaml"); strings.Contains(cfg, "pod_resources") || strings.Contains(cfg, "node_labels") {
		t.Errorf("agent config reads the kubelet or the node with both off:\n%s", cfg)
	}
	if v := volume(t, spec, "buffer"); v.EmptyDir == nil {
		t.Errorf("buffer %+v, want an emptyDir with bufferHostPath \"\"", v.VolumeSource)
	}
}

// TestPodLabelsLeastPrivilege: the agent may get pods only when it copies
// pod labels; with podLabels [] the agent's lookup is off too.
func TestPodLabelsLeastPrivilege(t *testing.T) {
	rules := func(r *release) [][]string {
		var out [][]string
		for _, o := range r.objs {
			if role, ok := o.obj.(*rbacv1.ClusterRole); ok && role.Name == "fw-fleetwatch-agent-fleet" {
				for _, rule := range role.Rules {
					out = append(out, rule.Resources)
				}
			}
		}
		return out
	}
	off := render(t, "--set", "agent.podLabels=null")
	if got := rules(off); len(got) != 1 || !slices.Equal(got[0], []string{"nodes"}) {
		t.Errorf("podLabels empty: rules on %v, want nodes only", got)
	}
	if cfg := off.configData(t, "fw-fleetwatch-agent", "agent.yaml"); !strings.Contains(cfg, "pod_labels: []") {
		t.Errorf("podLabels empty: the agent's own default would still read pods:\n%s", cfg)
	}
	only := render(t, "--set", "agent.nodeLabels.enabled=false", "--set", "agent.podLabels={team=example.com/team}")
	if got := rules(only); len(got) != 1 || !slices.Equal(got[0], []string{"pods"}) {
		t.Errorf("pod labels without node labels: rules on %v, want pods only", got)
	}
	spec := named[*appsv1.DaemonSet](t, only, "fw-fleetwatch-agent").Spec.Template.Spec
	if spec.AutomountServiceAccountToken == nil || !*spec.AutomountServiceAccountToken {
		t.Error("pod labels need the service account token")
	}
	if cfg := only.configData(t, "fw-fleetwatch-agent", "agent.yaml"); !strings.Contains(cfg, "- team=example.com/team") {
		t.Errorf("agent config lacks the pod label:\n%s", cfg)
	}
	none := render(t, "--set", "agent.nodeLabels.enabled=false", "--set", "agent.podResources.enabled=false")
	if got := rules(none); got != nil {
		t.Errorf("neither node nor pod labels: a ClusterRole with rules on %v", got)
	}
	if err := renderErr("--set", "agent.podLabels={owner}"); err == nil {
		t.Error("a pod label outside the contract rendered")
	}
}

// TestLeastPrivilege: every container of every configuration.
func TestLeastPrivilege(t *testing.T) {
	eachValueSet(t, func(t *testing.T, r *release) {
		for _, w := range r.workloads() {
			spec := w.tmpl.Spec
			podSeccomp := spec.SecurityContext != nil && spec.SecurityContext.SeccompProfile != nil &&
				spec.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
			for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
				where := w.kind + "/" + w.name + "/" + c.Name
				sc := c.SecurityContext
				if sc == nil {
					t.Errorf("%s: no securityContext", where)
					continue
				}
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s: privilege escalation allowed", where)
				}
				if sc.Privileged != nil && *sc.Privileged {
					t.Errorf("%s: privileged", where)
				}
				if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("%s: writable root file system", where)
				}
				if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
					t.Errorf("%s: capabilities %+v, want all dropped and none added", where, sc.Capabilities)
				}
				if !podSeccomp && (sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
					t.Errorf("%s: no RuntimeDefault seccomp profile", where)
				}
				component := w.tmpl.Labels["app.kubernetes.io/component"]
				nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) ||
					(sc.RunAsNonRoot == nil && spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot)
				if component != "agent" && !nonRoot {
					t.Errorf("%s: may run as root", where)
				}
				for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					if q, ok := c.Resources.Requests[res]; !ok || q.IsZero() {
						t.Errorf("%s: no %s request", where, res)
					}
				}
				if q, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok || q.Cmp(c.Resources.Requests[corev1.ResourceMemory]) < 0 {
					t.Errorf("%s: memory limit %v below the request or missing", where, q.String())
				}
			}
			if spec.HostNetwork || spec.HostPID || spec.HostIPC {
				t.Errorf("%s/%s shares a host namespace", w.kind, w.name)
			}
			component := w.tmpl.Labels["app.kubernetes.io/component"]
			if component != "agent" && (spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken) {
				t.Errorf("%s/%s mounts a service account token it does not use", w.kind, w.name)
			}
			for _, v := range spec.Volumes {
				if v.HostPath != nil && component != "agent" {
					t.Errorf("%s/%s mounts the host's %s", w.kind, w.name, v.HostPath.Path)
				}
			}
		}
	})
}

// TestRequestsFollowTheMeasuredCost: the defaults are the ones
// values.yaml derives from docs/BENCHMARKS.md: the agent's requests cover its
// measured resident memory (≤ 60 MiB) and CPU (≈ 6 millicores per 8-GPU
// node), the collector's memory limit its measured peak (≤ 702 MiB) with the
// memory_limiter's 75%, the analyzer's its soak (≤ 27 MiB).
func TestRequestsFollowTheMeasuredCost(t *testing.T) {
	r := render(t)
	for _, tc := range []struct {
		component       string
		minMemRequestMi int64
		minMemLimitMi   int64
		minCPUMilli     int64
	}{
		{"agent", 60, 120, 6},
		{"collector", 702, 702 * 4 / 3, 500},
		{"analyzer", 27, 256, 100},
	} {
		c := r.component(t, tc.component).tmpl.Spec.Containers[0]
		req, lim, cpu := c.Resources.Requests[corev1.ResourceMemory], c.Resources.Limits[corev1.ResourceMemory], c.Resources.Requests[corev1.ResourceCPU]
		if req.Value() < tc.minMemRequestMi<<20 || lim.Value() < tc.minMemLimitMi<<20 || cpu.MilliValue() < tc.minCPUMilli {
			t.Errorf("%s: requests %s / %s, limit %s: below the measured cost", tc.component, cpu.String(), req.String(), lim.String())
		}
	}
}

// TestCollector: Service, HPA, PDB, the queue and the ClickHouse user.
func TestCollector(t *testing.T) {
	for _, tc := range []struct {
		values []string
		kind   string
		hpa    bool
	}{
		{nil, "Deployment", true},
		{[]string{"-f", "testdata/options.yaml"}, "StatefulSet", true},
		{[]string{"-f", "testdata/inline.yaml"}, "Deployment", false},
	} {
		r := render(t, tc.values...)
		w := r.component(t, "collector")
		if w.kind != tc.kind {
			t.Errorf("%v: collector is a %s, want %s", tc.values, w.kind, tc.kind)
		}
		svc := named[*corev1.Service](t, r, "fw-fleetwatch-collector")
		wantPorts := map[string]int32{"otlp-grpc": 4317, "otlp-http": 4318, "metrics": 8888}
		if len(svc.Spec.Ports) != len(wantPorts) {
			t.Errorf("collector Service ports %+v", svc.Spec.Ports)
		}
		for _, p := range svc.Spec.Ports {
			if wantPorts[p.Name] != p.Port || !containerHasPort(w.tmpl.Spec.Containers[0], p.TargetPort, p.Port) {
				t.Errorf("collector Service port %s %d → %s does not reach the container", p.Name, p.Port, p.TargetPort.String())
			}
		}
		selects(t, "collector Service", svc.Spec.Selector, r, "collector")
		hpas := all[*autoscalingv2.HorizontalPodAutoscaler](r)
		if tc.hpa {
			if len(hpas) != 1 {
				t.Fatalf("%d HPAs", len(hpas))
			}
			ref := hpas[0].Spec.ScaleTargetRef
			if ref.Kind != tc.kind || ref.Name != w.name || ref.APIVersion != "apps/v1" {
				t.Errorf("HPA targets %+v, want the collector %s %s", ref, tc.kind, w.name)
			}
			if hpas[0].Spec.MinReplicas == nil || *hpas[0].Spec.MinReplicas < 2 || hpas[0].Spec.MaxReplicas < *hpas[0].Spec.MinReplicas {
				t.Errorf("HPA replicas %v..%d", hpas[0].Spec.MinReplicas, hpas[0].Spec.MaxReplicas)
			}
		} else if len(hpas) != 0 {
			t.Errorf("HPA rendered with autoscaling off")
		}
		c := w.tmpl.Spec.Containers[0]
		dsn := env(c, "FLEETWATCH_CLICKHOUSE_DSN")
		if user, _, _ := strings.Cut(strings.TrimPrefix(dsn, "clickhouse://"), "@"); user != "fleetwatch_collector" {
			t.Errorf("collector DSN %q: want user fleetwatch_collector and no password", dsn)
		}
		pw := env(c, "FLEETWATCH_CLICKHOUSE_PASSWORD_FILE")
		m := mountAt(t, c, filepath.Dir(pw))
		if v := volume(t, w.tmpl.Spec, m.Name); v.Secret == nil || len(v.Secret.Items) != 1 || v.Secret.Items[0].Path != filepath.Base(pw) {
			t.Errorf("the password file %s is not one key of a Secret: %+v", pw, v.VolumeSource)
		}
		q := mountAt(t, c, "/var/lib/fleetwatch-collector")
		if tc.kind == "StatefulSet" {
			ss := named[*appsv1.StatefulSet](t, r, w.name)
			if len(ss.Spec.VolumeClaimTemplates) != 1 || ss.Spec.VolumeClaimTemplates[0].Name != q.Name {
				t.Errorf("the queue %s is not a volume claim per collector", q.Name)
			}
			if ss.Spec.ServiceName != "fw-fleetwatch-collector-headless" || !has[*corev1.Service](r, ss.Spec.ServiceName) {
				t.Errorf("StatefulSet serviceName %q is not rendered", ss.Spec.ServiceName)
			}
		} else if v := volume(t, w.tmpl.Spec, q.Name); v.EmptyDir == nil {
			t.Errorf("queue volume %+v", v.VolumeSource)
		}
		cfg := r.configData(t, "fw-fleetwatch-collector", "collector.yaml")
		if !strings.Contains(cfg, "drain_on_shutdown: 50s") || w.tmpl.Spec.TerminationGracePeriodSeconds == nil || *w.tmpl.Spec.TerminationGracePeriodSeconds <= 50 {
			t.Errorf("the grace period %v does not cover the drain:\n%s", w.tmpl.Spec.TerminationGracePeriodSeconds, cfg)
		}
	}
}

// TestAnalyzer: one StatefulSet with its governing Service; its config is a
// Secret.
func TestAnalyzer(t *testing.T) {
	r := render(t, "-f", "testdata/options.yaml")
	ss := named[*appsv1.StatefulSet](t, r, "fw-fleetwatch-analyzer")
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 3 {
		t.Errorf("analyzer replicas %v, want 3", ss.Spec.Replicas)
	}
	svc := named[*corev1.Service](t, r, ss.Spec.ServiceName)
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("governing Service %s is not headless", svc.Name)
	}
	selects(t, "analyzer Service", svc.Spec.Selector, r, "analyzer")
	c := ss.Spec.Template.Spec.Containers[0]
	if dsn := env(c, "FLEETWATCH_CLICKHOUSE_DSN"); dsn != "clickhouse://fleetwatch_analyzer@ch-0.ch.svc:9440,ch-1.ch.svc:9440/fleet?secure=true&cluster=fleet&dial_timeout=5s&ca_file=/etc/fleetwatch/clickhouse-ca/ca.crt" {
		t.Errorf("analyzer DSN %q", dsn)
	}
	if v := volume(t, ss.Spec.Template.Spec, mountAt(t, c, "/etc/fleetwatch/clickhouse-ca").Name); v.ConfigMap == nil || v.ConfigMap.Name != "ch-ca" {
		t.Errorf("ClickHouse CA volume %+v", v.VolumeSource)
	}
	if v := volume(t, ss.Spec.Template.Spec, "clickhouse-password"); v.Secret.SecretName != "ch-passwords" {
		t.Errorf("analyzer password from Secret %s, want the existing ch-passwords", v.Secret.SecretName)
	}
	cfg := r.configData(t, "fw-fleetwatch-analyzer", "fleetwatch.yaml")
	for _, want := range []string{"listen: :9465", "catalog: /etc/fleetwatch/catalog.yaml", "url: https://hooks.example/fleetwatch", "interval: 10m"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("analyzer config lacks %q:\n%s", want, cfg)
		}
	}
	var parsed struct {
		Analyzer struct {
			Coordination struct {
				Enabled   bool     `json:"enabled"`
				ZooKeeper []string `json:"zookeeper"`
				AuthFile  string   `json:"auth_file"`
				TLS       struct {
					CAFile string `json:"ca_file"`
				} `json:"tls"`
			} `json:"coordination"`
		} `json:"analyzer"`
	}
	if err := yaml.Unmarshal([]byte(cfg), &parsed); err != nil {
		t.Fatalf("analyzer config: %v", err)
	}
	if co := parsed.Analyzer.Coordination; !co.Enabled || !slices.Equal(co.ZooKeeper, []string{"zk-0.zk.svc:2181", "zk-1.zk.svc:2181", "zk-2.zk.svc:2181"}) {
		t.Errorf("three analyzers without shared coordination: %+v", co)
	}
	if f := parsed.Analyzer.Coordination.AuthFile; f != "/etc/fleetwatch/zookeeper/auth" {
		t.Errorf("ZooKeeper auth_file %q", f)
	} else if v := volume(t, ss.Spec.Template.Spec, mountAt(t, c, "/etc/fleetwatch/zookeeper").Name); v.Secret == nil || v.Secret.SecretName != "zk-analyzer" {
		t.Errorf("ZooKeeper credential volume %+v, want Secret zk-analyzer", v.VolumeSource)
	}
	if f := parsed.Analyzer.Coordination.TLS.CAFile; f != "/etc/fleetwatch/zookeeper-ca/ca.crt" {
		t.Errorf("ZooKeeper tls.ca_file %q", f)
	} else if v := volume(t, ss.Spec.Template.Spec, mountAt(t, c, "/etc/fleetwatch/zookeeper-ca").Name); v.ConfigMap == nil || v.ConfigMap.Name != "zk-ca" {
		t.Errorf("ZooKeeper CA volume %+v, want ConfigMap zk-ca", v.VolumeSource)
	}
	job := named[*batchv1.Job](t, r, "fw-fleetwatch-migrate")
	if !strings.Contains(job.Annotations["helm.sh/hook"], "pre-upgrade") {
		t.Errorf("migrate Job hook %q", job.Annotations["helm.sh/hook"])
	}
	if dsn := env(job.Spec.Template.Spec.Containers[0], "FLEETWATCH_CLICKHOUSE_DSN"); !strings.HasPrefix(dsn, "clickhouse://default@") {
		t.Errorf("migrate DSN %q: want the admin user", dsn)
	}
}

// TestPodDisruptionBudgets select exactly their component's pods, and never
// block a drain of the single analyzer.
func TestPodDisruptionBudgets(t *testing.T) {
	r := render(t)
	pdbs := all[*policyv1.PodDisruptionBudget](r)
	if len(pdbs) != 2 {
		t.Fatalf("%d PDBs, want the collector's and the analyzer's", len(pdbs))
	}
	for _, p := range pdbs {
		c := strings.TrimPrefix(p.Name, "fw-fleetwatch-")
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		selects(t, "PDB "+p.Name, nil, r, c, sel)
		if p.Spec.MinAvailable != nil || p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() < 1 {
			t.Errorf("PDB %s: want maxUnavailable ≥ 1 (a single analyzer must stay drainable), got %+v", p.Name, p.Spec)
		}
	}
}

// TestNetworkPolicies allow the flows Fleetwatch needs and no other ingress.
func TestNetworkPolicies(t *testing.T) {
	r := render(t, "-f", "testdata/options.yaml")
	pols := all[*networkingv1.NetworkPolicy](r)
	for _, w := range r.workloads() {
		n := 0
		for _, p := range pols {
			sel, _ := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
			if sel.Matches(labels.Set(w.tmpl.Labels)) {
				n++
				if !slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
					t.Errorf("%s: policy types %v", p.Name, p.Spec.PolicyTypes)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s/%s is selected by %d NetworkPolicies, want 1", w.kind, w.name, n)
		}
	}
	agentLabels := labels.Set(r.component(t, "agent").tmpl.Labels)
	collector := named[*networkingv1.NetworkPolicy](t, r, "fw-fleetwatch-collector")
	var otlp, metrics bool
	for _, rule := range collector.Spec.Ingress {
		ports := rulePorts(rule.Ports)
		switch {
		case slices.Equal(ports, []int{4317, 4318}):
			otlp = true
			sel, _ := metav1.LabelSelectorAsSelector(rule.From[0].PodSelector)
			if rule.From[0].NamespaceSelector != nil || !sel.Matches(agentLabels) || sel.Matches(labels.Set(r.component(t, "analyzer").tmpl.Labels)) {
				t.Errorf("OTLP ingress peer %+v is not exactly the agents", rule.From[0])
			}
			if len(rule.From) != 2 || rule.From[1].NamespaceSelector == nil {
				t.Errorf("OTLP ingress %+v lacks the configured otlpFrom peer", rule.From)
			}
		case slices.Equal(ports, []int{8888}):
			metrics = true
			if len(rule.From) != 1 || rule.From[0].NamespaceSelector == nil || rule.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
				t.Errorf("metrics ingress %+v is not Prometheus'", rule.From)
			}
		default:
			t.Errorf("unexpected collector ingress on %v", ports)
		}
	}
	if !otlp || !metrics {
		t.Errorf("collector ingress: OTLP %v, metrics %v", otlp, metrics)
	}
	for _, name := range []string{"fw-fleetwatch-collector", "fw-fleetwatch-analyzer", "fw-fleetwatch-migrate"} {
		p := named[*networkingv1.NetworkPolicy](t, r, name)
		var ch bool
		for _, e := range p.Spec.Egress {
			if slices.Equal(rulePorts(e.Ports), []int{9440}) {
				ch = true
				if len(e.To) != 2 || e.To[0].IPBlock == nil || e.To[0].IPBlock.CIDR != "10.20.0.0/16" || e.To[1].NamespaceSelector == nil {
					t.Errorf("%s: ClickHouse egress to %+v", name, e.To)
				}
			}
			if len(e.To) == 0 && !slices.Equal(rulePorts(e.Ports), []int{53, 53}) {
				t.Errorf("%s: egress to anywhere on %v", name, rulePorts(e.Ports))
			}
		}
		if !ch {
			t.Errorf("%s: no egress to ClickHouse", name)
		}
	}
	zk := false
	for _, e := range named[*networkingv1.NetworkPolicy](t, r, "fw-fleetwatch-analyzer").Spec.Egress {
		if slices.Equal(rulePorts(e.Ports), []int{2181}) {
			zk = len(e.To) == 1 && e.To[0].NamespaceSelector != nil && e.To[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "zk"
		}
	}
	if !zk {
		t.Error("the shared analyzers have no egress to ZooKeeper's namespace on 2181")
	}
	agent := named[*networkingv1.NetworkPolicy](t, r, "fw-fleetwatch-agent")
	for _, e := range agent.Spec.Egress {
		if ports := rulePorts(e.Ports); slices.Equal(ports, []int{443, 6443}) && (len(e.To) != 1 || e.To[0].IPBlock.CIDR != "10.0.0.1/32") {
			t.Errorf("agent → API server egress to %+v", e.To)
		}
	}
	if len(agent.Spec.Ingress) != 1 || !slices.Equal(rulePorts(agent.Spec.Ingress[0].Ports), []int{9401}) {
		t.Errorf("agent ingress %+v, want /metrics only", agent.Spec.Ingress)
	}
}

// TestSecrets: rendered only from values, never when an existing Secret is
// named; every Secret and ConfigMap a pod mounts is rendered or named.
func TestSecrets(t *testing.T) {
	inline := render(t, "-f", "testdata/inline.yaml")
	ch := named[*corev1.Secret](t, inline, "fw-fleetwatch-clickhouse")
	if string(ch.Data["collector-password"]) != "c-secret" || string(ch.Data["analyzer-password"]) != "a-secret" {
		t.Errorf("ClickHouse Secret data %v", ch.Data)
	}
	if _, ok := ch.Data["admin-password"]; ok {
		t.Error("an empty admin password rendered")
	}
	if tls := named[*corev1.Secret](t, inline, "fw-fleetwatch-tls"); string(tls.Data["token"]) != "t0ken\n" {
		t.Errorf("TLS Secret token %q", tls.Data["token"])
	}
	external := map[string][]string{
		"defaults":  {"fw-fleetwatch-clickhouse", "fw-fleetwatch-tls"},
		"options":   {"ch-passwords", "fw-certs", "ch-ca", "zk-analyzer", "zk-ca"},
		"inline":    nil,
		"plaintext": {"fw-fleetwatch-clickhouse"},
	}
	eachValueSet(t, func(t *testing.T, r *release) {
		ext := external[strings.TrimPrefix(t.Name(), "TestSecrets/")]
		for _, w := range r.workloads() {
			for _, v := range w.tmpl.Spec.Volumes {
				var ref string
				switch {
				case v.Secret != nil:
					ref = v.Secret.SecretName
					if !has[*corev1.Secret](r, ref) && !slices.Contains(ext, ref) {
						t.Errorf("%s mounts Secret %s, neither rendered nor named in the values", w.name, ref)
					}
				case v.ConfigMap != nil:
					ref = v.ConfigMap.Name
					if !has[*corev1.ConfigMap](r, ref) && !slices.Contains(ext, ref) {
						t.Errorf("%s mounts ConfigMap %s, neither rendered nor named in the values", w.name, ref)
					}
				default:
					continue
				}
				if slices.Contains(ext, ref) && (has[*corev1.Secret](r, ref) || has[*corev1.ConfigMap](r, ref)) {
					t.Errorf("%s is named as existing but rendered too", ref)
				}
			}
			for _, c := range w.tmpl.Spec.Containers {
				for _, m := range c.VolumeMounts {
					if !slices.Contains(claims(t, r, w), m.Name) {
						volume(t, w.tmpl.Spec, m.Name)
					}
				}
				for _, e := range c.Env {
					if strings.Contains(strings.ToLower(e.Name), "password") && !strings.HasSuffix(e.Name, "_FILE") {
						t.Errorf("%s: a password in the environment (%s)", w.name, e.Name)
					}
				}
			}
		}
	})
}

// TestGrafanaProvisioning: one ConfigMap per dashboard of dashboards/json,
// identical to it, with the sidecar's label; the data sources point at the
// DSN's first server as the reader.
func TestGrafanaProvisioning(t *testing.T) {
	r := render(t, "-f", "testdata/options.yaml")
	files, err := filepath.Glob("../../../dashboards/json/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in dashboards/json: %v", err)
	}
	var dashboards []*corev1.ConfigMap
	for _, cm := range all[*corev1.ConfigMap](r) {
		if cm.Labels["grafana_dashboard"] == "1" {
			dashboards = append(dashboards, cm)
			if cm.Namespace != "monitoring" {
				t.Errorf("%s in namespace %s, want grafana.namespace", cm.Name, cm.Namespace)
			}
		}
	}
	if len(dashboards) != len(files) {
		t.Errorf("%d dashboard ConfigMaps for %d dashboards", len(dashboards), len(files))
	}
	for _, f := range files {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, cm := range dashboards {
			if got, ok := cm.Data[filepath.Base(f)]; ok {
				found = true
				if strings.TrimRight(got, "\n") != strings.TrimRight(string(want), "\n") {
					t.Errorf("%s in ConfigMap %s differs from %s", filepath.Base(f), cm.Name, f)
				}
			}
		}
		if !found {
			t.Errorf("dashboard %s is in no ConfigMap (add a link in deploy/helm/fleetwatch/dashboards)", filepath.Base(f))
		}
	}
	ds := r.configData(t, "fw-fleetwatch-datasources", "fleetwatch-datasources.yaml")
	for _, want := range []string{"uid: fleetwatch-clickhouse", "uid: fleetwatch-prometheus", "host: ch-0.ch.svc", "port: 9440", "secure: true",
		"username: fleetwatch_reader", "defaultDatabase: fleet", "password: $FLEETWATCH_READER_PASSWORD", "url: http://prometheus.monitoring:9090"} {
		if !strings.Contains(ds, want) {
			t.Errorf("data sources lack %q:\n%s", want, ds)
		}
	}
	for _, cm := range all[*corev1.ConfigMap](r) {
		if cm.Labels["grafana_datasource"] == "1" && cm.Name != "fw-fleetwatch-datasources" {
			t.Errorf("unexpected data source ConfigMap %s", cm.Name)
		}
	}
}

// selects checks that a selector (a map, or a parsed one) matches the pods of
// component c and of no other component.
func selects(t *testing.T, what string, set map[string]string, r *release, c string, parsed ...labels.Selector) {
	t.Helper()
	sel := labels.SelectorFromSet(set)
	if len(parsed) > 0 {
		sel = parsed[0]
	}
	if sel.Empty() {
		t.Errorf("%s: empty selector", what)
		return
	}
	for _, w := range r.workloads() {
		got := sel.Matches(labels.Set(w.tmpl.Labels))
		if want := w.tmpl.Labels["app.kubernetes.io/component"] == c; got != want {
			t.Errorf("%s selects %s/%s: %v, want %v", what, w.kind, w.name, got, want)
		}
	}
}

// claims are the names of a StatefulSet's volume claim templates.
func claims(t *testing.T, r *release, w workload) []string {
	var out []string
	if w.kind == "StatefulSet" {
		for _, c := range named[*appsv1.StatefulSet](t, r, w.name).Spec.VolumeClaimTemplates {
			out = append(out, c.Name)
		}
	}
	return out
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func env(c corev1.Container, name string) string {
	if e := envVar(c, name); e != nil {
		return e.Value
	}
	return ""
}

func mountAt(t *testing.T, c corev1.Container, path string) corev1.VolumeMount {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath == path {
			return m
		}
	}
	t.Fatalf("container %s mounts nothing at %s", c.Name, path)
	return corev1.VolumeMount{}
}

func volume(t *testing.T, spec corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %s", name)
	return corev1.Volume{}
}

func containerHasPort(c corev1.Container, target intstr.IntOrString, port int32) bool {
	for _, p := range c.Ports {
		if (target.Type == intstr.String && p.Name == target.StrVal) || (target.Type == intstr.Int && p.ContainerPort == target.IntVal) {
			return p.ContainerPort == port
		}
	}
	return false
}

func rulePorts(ps []networkingv1.NetworkPolicyPort) []int {
	var out []int
	for _, p := range ps {
		if p.Port != nil {
			out = append(out, p.Port.IntValue())
		}
	}
	slices.Sort(out)
	return out
}

// TestNotes: what `helm install` prints names the Secrets the pods mount when
// the chart does not render them, and says nothing of them when it does.
func TestNotes(t *testing.T) {
	notes := func(args ...string) string {
		t.Helper()
		out, err := helm(append([]string{"install", "fw", chartDir, "--namespace", "fleet", "--dry-run=client"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		_, n, ok := strings.Cut(string(out), "\nNOTES:\n")
		if !ok {
			t.Fatalf("no NOTES in:\n%s", out)
		}
		return n
	}
	def := notes()
	r := render(t)
	for _, secret := range []string{volume(t, r.component(t, "collector").tmpl.Spec, "clickhouse-password").Secret.SecretName,
		volume(t, r.component(t, "collector").tmpl.Spec, "tls").Secret.SecretName} {
		if !strings.Contains(def, "create secret generic "+secret+" ") {
			t.Errorf("NOTES do not say how to create %s:\n%s", secret, def)
		}
	}
	if strings.Contains(def, "ca-key.pem \\") || !strings.Contains(def, "fw-fleetwatch-collector.fleet.svc") {
		t.Errorf("NOTES' certificate commands:\n%s", def)
	}
	if n := notes("-f", "testdata/inline.yaml"); strings.Contains(n, "create secret") {
		t.Errorf("NOTES ask for Secrets the chart rendered:\n%s", n)
	}
	if n := notes("-f", "testdata/plaintext.yaml"); !strings.Contains(n, "WARNING: tls.enabled=false") {
		t.Errorf("no plaintext warning:\n%s", n)
	}
}
