package chartest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// programs builds fleetwatch-agent, -collector and -analyzer from the
// repository once per test binary; they judge the configurations the chart
// writes.
var programs = sync.OnceValues(func() (string, error) {
	dir := filepath.Join(workDir, "bin")
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"./cmd/fleetwatch-agent", "./cmd/fleetwatch-collector", "./cmd/fleetwatch-analyzer", "./cmd/fleetctl")
	cmd.Dir = "../../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &exec.ExitError{Stderr: out}
	}
	// Certificates for the files the pods mount (the programs read them).
	if out, err := exec.Command(filepath.Join(dir, "fleetctl"), "certs", "--dir", filepath.Join(dir, "tls")).CombinedOutput(); err != nil {
		return "", &exec.ExitError{Stderr: out}
	}
	return dir, nil
})

// mountFiles writes, under root, the files the component's container sees
// at its mount paths: rendered ConfigMap and Secret keys as rendered,
// certificates from `fleetctl certs`, any other Secret key (a password) as a
// placeholder.
func mountFiles(t *testing.T, r *release, w workload, certs, root string) {
	t.Helper()
	content := func(object, key string) []byte {
		for _, o := range r.objs {
			if o.meta.Name == object {
				if d, ok := tryConfigData(o, key); ok {
					return []byte(d)
				}
			}
		}
		name := key
		if name == "ca.crt" {
			name = "ca.pem"
		}
		if b, err := os.ReadFile(filepath.Join(certs, name)); err == nil {
			return b
		}
		if key == "auth" { // a ZooKeeper digest credential: user:password
			return []byte("analyzer:placeholder\n")
		}
		return []byte("placeholder\n")
	}
	write := func(path string, b []byte) {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range w.tmpl.Spec.Containers[0].VolumeMounts {
		var object string
		var items []corev1.KeyToPath
		for _, v := range w.tmpl.Spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			switch {
			case v.Secret != nil:
				object, items = v.Secret.SecretName, v.Secret.Items
			case v.ConfigMap != nil:
				object, items = v.ConfigMap.Name, v.ConfigMap.Items
			}
		}
		switch {
		case object == "":
		case m.SubPath != "":
			write(m.MountPath, content(object, m.SubPath))
		default:
			for _, it := range items {
				write(filepath.Join(m.MountPath, it.Path), content(object, it.Key))
			}
		}
	}
}

// component files: where each program's configuration is rendered, and how
// the program checks it.
var checks = []struct {
	component, object, key string
	args                   func(file string) []string
}{
	{"agent", "fw-fleetwatch-agent", "agent.yaml", func(f string) []string { return []string{"fleetwatch-agent", "--config", f, "--check-config"} }},
	{"collector", "fw-fleetwatch-collector", "collector.yaml", func(f string) []string { return []string{"fleetwatch-collector", "validate", "--config", f} }},
	{"analyzer", "fw-fleetwatch-analyzer", "fleetwatch.yaml", func(f string) []string { return []string{"fleetwatch-analyzer", "--config", f, "--check-config"} }},
}

// checkConfig runs a component's program on its rendered configuration with
// the environment its pod gets; it returns the program's error and output.
func checkConfig(t *testing.T, r *release, component string) (string, error) {
	t.Helper()
	bin, err := programs()
	if err != nil {
		t.Fatalf("building the programs: %v\n%s", err, err.(*exec.ExitError).Stderr)
	}
	for _, c := range checks {
		if c.component != component {
			continue
		}
		// The pod's files under a temporary root; paths in the configuration
		// and the environment follow them there.
		root, w := t.TempDir(), r.component(t, component)
		mountFiles(t, r, w, filepath.Join(bin, "tls"), root)
		rebase := func(s string) string { return strings.ReplaceAll(s, "/etc/fleetwatch/", root+"/etc/fleetwatch/") }
		file := filepath.Join(root, c.key)
		if err := os.WriteFile(file, []byte(rebase(r.configData(t, c.object, c.key))), 0o600); err != nil {
			t.Fatal(err)
		}
		args := c.args(file)
		cmd := exec.Command(filepath.Join(bin, args[0]), args[1:]...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		for _, e := range w.tmpl.Spec.Containers[0].Env {
			if e.ValueFrom == nil {
				cmd.Env = append(cmd.Env, e.Name+"="+rebase(e.Value))
			}
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Fatalf("no check for %s", component)
	return "", nil
}

// TestProgramsAcceptTheirConfigs: the agent, the collector and the analyzer
// accept (strictly: unknown keys are errors in all three) the configuration
// each configuration of the chart writes for them.
func TestProgramsAcceptTheirConfigs(t *testing.T) {
	eachValueSet(t, func(t *testing.T, r *release) {
		for _, c := range checks {
			if out, err := checkConfig(t, r, c.component); err != nil {
				t.Errorf("%s refuses the chart's configuration: %v\n%s\n%s", c.component, err, out, r.configData(t, c.object, c.key))
			}
		}
	})
}

// TestProgramsRefuseABadMerge: a misspelt key merged through <component>.config
// reaches the program and fails its check, so the test above can fail.
func TestProgramsRefuseABadMerge(t *testing.T) {
	for _, tc := range []struct{ component, set, want string }{
		{"agent", "agent.config.nvml.intervall=1s", "intervall"},
		{"collector", "collector.config.exporters.fleetwatch_clickhouse.queue.drain_on_shutdwn=1s", "drain_on_shutdwn"},
		{"analyzer", "analyzer.config.drift.intervall=1m", "intervall"},
	} {
		t.Run(tc.component, func(t *testing.T) {
			out, err := checkConfig(t, render(t, "--set", tc.set), tc.component)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("%s accepted %s: %v\n%s", tc.component, tc.set, err, out)
			}
		})
	}
}
