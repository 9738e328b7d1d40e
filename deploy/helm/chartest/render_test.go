package chartest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
	kyaml "k8s.io/apimachinery/pkg/util/yaml"
	sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// chartDir is the chart under test, relative to this package.
const chartDir = "../fleetwatch"

// workDir holds what TestMain and the tests build; helmBin is the helm
// built from this module's tool directive.
var workDir, helmBin string

func TestMain(m *testing.M) {
	var err error
	if workDir, err = os.MkdirTemp("", "chartest-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(workDir)
		helmBin = filepath.Join(workDir, "helm")
		// The tool directive pins helm; building it here keeps the test
		// independent of whatever helm is (or is not) on PATH.
		cmd := exec.Command("go", "build", "-o", helmBin, "helm.sh/helm/v4/cmd/helm")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building helm: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// helm runs the helm binary; it returns stdout, and an error carrying
// stderr when helm fails.
func helm(args ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helmBin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// newObject returns an empty typed object for each kind the chart may
// render; a kind missing here fails the test.
var newObject = map[string]func() any{
	"v1/ConfigMap":                                    func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                                       func() any { return &corev1.Secret{} },
	"v1/Service":                                      func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                               func() any { return &corev1.ServiceAccount{} },
	"apps/v1/DaemonSet":                               func() any { return &appsv1.DaemonSet{} },
	"apps/v1/Deployment":                              func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                             func() any { return &appsv1.StatefulSet{} },
	"autoscaling/v2/HorizontalPodAutoscaler":          func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"batch/v1/Job":                                    func() any { return &batchv1.Job{} },
	"networking.k8s.io/v1/NetworkPolicy":              func() any { return &networkingv1.NetworkPolicy{} },
	"policy/v1/PodDisruptionBudget":                   func() any { return &policyv1.PodDisruptionBudget{} },
	"rbac.authorization.k8s.io/v1/ClusterRole":        func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return &rbacv1.ClusterRoleBinding{} },
}

// object is one rendered document, decoded into its k8s.io/api type.
type object struct {
	kind string // apiVersion/kind
	meta metav1.ObjectMeta
	obj  any
}

// decode splits a multi-document YAML stream and decodes each document
// strictly: duplicate keys, unknown fields (case-sensitive) and wrong types
// are errors, as is a kind the chart is not expected to render.
func decode(stream []byte) ([]object, error) {
	r := kyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var objs []object
	var errs []error
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w in\n%s", err, doc))
			continue
		}
		if string(js) == "null" {
			continue // an empty document (a template that rendered nothing)
		}
		var tm metav1.TypeMeta
		if err := sjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
			errs = append(errs, err)
			continue
		}
		kind := tm.APIVersion + "/" + tm.Kind
		mk, ok := newObject[kind]
		if !ok {
			errs = append(errs, fmt.Errorf("unexpected kind %s in\n%s", kind, doc))
			continue
		}
		obj := mk()
		strict, err := sjson.UnmarshalStrict(js, obj, sjson.DisallowDuplicateFields, sjson.DisallowUnknownFields)
		if err == nil {
			err = errors.Join(strict...)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w in\n%s", kind, err, doc))
			continue
		}
		var om struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		_ = sjson.UnmarshalCaseSensitivePreserveInts(js, &om)
		objs = append(objs, object{kind: kind, meta: om.Metadata, obj: obj})
	}
	return objs, errors.Join(errs...)
}

// release is a rendered chart.
type release struct {
	objs []object
}

// render runs helm template on the chart with the given extra arguments
// (values files, --set); it fails the test when helm or decoding fails.
func render(t *testing.T, args ...string) *release {
	t.Helper()
	out, err := helm(append([]string{"template", "fw", chartDir, "--namespace", "fleet"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(out)
	if err != nil {
		t.Fatalf("decoding the rendered chart: %v", err)
	}
	if len(objs) == 0 {
		t.Fatal("the chart rendered nothing")
	}
	return &release{objs: objs}
}

// all returns the objects of one Go type.
func all[T any](r *release) []T {
	var out []T
	for _, o := range r.objs {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// named returns the object of type T called name, failing when absent.
func named[T any](t *testing.T, r *release, name string) T {
	t.Helper()
	for _, o := range r.objs {
		if v, ok := o.obj.(T); ok && o.meta.Name == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T named %s rendered", zero, name)
	return zero
}

// has reports whether an object of type T called name was rendered.
func has[T any](r *release, name string) bool {
	for _, o := range r.objs {
		if _, ok := o.obj.(T); ok && o.meta.Name == name {
			return true
		}
	}
	return false
}

// workload is a pod template with the name of what owns it.
type workload struct {
	kind, name string
	tmpl       corev1.PodTemplateSpec
}

// workloads returns every pod template the release renders.
func (r *release) workloads() []workload {
	var out []workload
	for _, o := range r.objs {
		switch v := o.obj.(type) {
		case *appsv1.DaemonSet:
			out = append(out, workload{"DaemonSet", v.Name, v.Spec.Template})
		case *appsv1.Deployment:
			out = append(out, workload{"Deployment", v.Name, v.Spec.Template})
		case *appsv1.StatefulSet:
			out = append(out, workload{"StatefulSet", v.Name, v.Spec.Template})
		case *batchv1.Job:
			out = append(out, workload{"Job", v.Name, v.Spec.Template})
		}
	}
	return out
}

// component returns the pod template of the component (agent, collector,
// analyzer, migrate).
func (r *release) component(t *testing.T, c string) workload {
	t.Helper()
	for _, w := range r.workloads() {
		if w.tmpl.Labels["app.kubernetes.io/component"] == c {
			return w
		}
	}
	t.Fatalf("no workload for component %s", c)
	return workload{}
}

// configData returns a key of a rendered ConfigMap or Secret.
func (r *release) configData(t *testing.T, name, key string) string {
	t.Helper()
	for _, o := range r.objs {
		if o.meta.Name != name {
			continue
		}
		if d, ok := tryConfigData(o, key); ok {
			return d
		}
	}
	t.Fatalf("no ConfigMap or Secret %s with key %s", name, key)
	return ""
}

// tryConfigData returns a key of o when it is a ConfigMap or a Secret.
func tryConfigData(o object, key string) (string, bool) {
	switch v := o.obj.(type) {
	case *corev1.ConfigMap:
		d, ok := v.Data[key]
		return d, ok
	case *corev1.Secret:
		if d, ok := v.StringData[key]; ok {
			return d, true
		}
		d, ok := v.Data[key]
		return string(d), ok
	}
	return "", false
}

// renderErr runs helm template and returns its error (nil when it rendered).
func renderErr(args ...string) error {
	_, err := helm(append([]string{"template", "fw", chartDir, "--namespace", "fleet"}, args...)...)
	return err
}
