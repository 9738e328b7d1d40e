package cgroupres_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"

	"github.com/fleetwatch/fleetwatch/agent/cgroupres"
	"github.com/fleetwatch/fleetwatch/agent/record"
)

// Real /proc/<pid>/cgroup contents, one per layout.
var cgroups = map[string]string{
	"slurm v1":          "12:memory:/slurm/uid_1000/job_12345/step_0/task_0\n11:devices:/slurm/uid_1000/job_12345/step_0/task_0\n1:name=systemd:/system.slice/slurmd.service\n",
	"slurm v2":          "0::/system.slice/slurmstepd.scope/job_4242/step_batch/user/task_0\n",
	"slurmstepd itself": "0::/system.slice/slurmstepd.scope/system\n",
	"kubernetes v1":     "11:devices:/kubepods/burstable/pod0e9b7b2a-5f1e-4c4d-9a1e-2f9e8d7c6b5a/8f3c1d2e4b5a\n",
	"kubernetes v2":     "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0e9b7b2a_5f1e_4c4d_9a1e_2f9e8d7c6b5a.slice/cri-containerd-8f3c1d2e4b5a.scope\n",
	"docker v1":         "4:devices:/docker/5d8e1c2b3a4f\n",
	"docker v2":         "0::/system.slice/docker-5d8e1c2b3a4f.scope\n",
	"systemd unit":      "0::/system.slice/trainer.service\n",
	"login session":     "0::/user.slice/user-1000.slice/session-3.scope\n",
}

func TestParseCgroup(t *testing.T) {
	pod := "0e9b7b2a-5f1e-4c4d-9a1e-2f9e8d7c6b5a"
	for name, want := range map[string]cgroupres.Holder{
		"slurm v1":          {Kind: cgroupres.KindSlurm, SlurmJob: "12345", SlurmStep: "0", UID: "1000"},
		"slurm v2":          {Kind: cgroupres.KindSlurm, SlurmJob: "4242", SlurmStep: "batch"},
		"slurmstepd itself": {},
		"kubernetes v1":     {Kind: cgroupres.KindKubernetes, PodUID: pod, ContainerID: "8f3c1d2e4b5a"},
		"kubernetes v2":     {Kind: cgroupres.KindKubernetes, PodUID: pod, ContainerID: "8f3c1d2e4b5a"},
		"docker v1":         {Kind: cgroupres.KindDocker, ContainerID: "5d8e1c2b3a4f"},
		"docker v2":         {Kind: cgroupres.KindDocker, ContainerID: "5d8e1c2b3a4f"},
		"systemd unit":      {Kind: cgroupres.KindSystemd, Unit: "trainer.service"},
		"login session":     {},
	} {
		if got := cgroupres.ParseCgroup([]byte(cgroups[name])); got != want {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
}

// proc writes a /proc tree: pid → cgroup contents and environment.
func proc(t *testing.T, procs map[uint32][2]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, files := range procs {
		dir := filepath.Join(root, strconv.Itoa(int(pid)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(files[0]), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "environ"), []byte(files[1]), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestMapperSlurmAndUnits(t *testing.T) {
	env := "PATH=/usr/bin\x00SLURM_JOB_ID=12345\x00SLURM_JOB_USER=alice\x00SLURM_JOB_ACCOUNT=recsys\x00"
	root := proc(t, map[uint32][2]string{
		100: {cgroups["slurm v1"], env},
		101: {cgroups["slurm v1"], env}, // a second rank of the same job
		200: {cgroups["systemd unit"], "PATH=/usr/bin\x00"},
		300: {cgroups["login session"], ""},
		// 400 has ended: NVML still lists it, /proc does not
	})
	procs := map[string][]nvml.ProcessInfo{
		"GPU-a": {{Pid: 101}, {Pid: 100}},
		"GPU-b": {{Pid: 200}, {Pid: 400}},
		"GPU-c": {{Pid: 300}},
		"GPU-d": {},
	}
	lib := &mock.Interface{DeviceGetHandleByUUIDFunc: func(uuid string) (nvml.Device, nvml.Return) {
		ps, ok := procs[uuid]
		if !ok {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return &mock.Device{
			GetComputeRunningProcessesFunc:  func() ([]nvml.ProcessInfo, nvml.Return) { return ps, nvml.SUCCESS },
			GetGraphicsRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.ERROR_NOT_SUPPORTED },
		}, nvml.SUCCESS
	}}
	m, err := cgroupres.NewMapper(lib, cgroupres.Config{ProcRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := m.Holders("GPU-a")
	if err != nil || len(hs) != 1 || hs[0] != (cgroupres.Holder{Kind: cgroupres.KindSlurm, SlurmJob: "12345", SlurmStep: "0", UID: "1000", User: "alice", Account: "recsys"}) {
		t.Errorf("GPU-a: %+v %v", hs, err)
	}
	for uuid, want := range map[string]record.Workload{
		"GPU-a": {Job: "12345", HPCUser: "alice", HPCAccount: "recsys"},
		"GPU-b": {Job: "trainer.service"},
		"GPU-c": {}, // a login session is nobody's job
		"GPU-d": {},
		"GPU-x": {}, // unknown GPU
	} {
		if got := m.Workload(uuid); got != want {
			t.Errorf("%s: %+v, want %+v", uuid, got, want)
		}
	}
	if _, err := m.Holders("GPU-x"); err == nil {
		t.Error("an unknown GPU gave no error")
	}
}

func TestMapperRefresh(t *testing.T) {
	root := proc(t, map[uint32][2]string{1: {cgroups["slurm v2"], ""}, 2: {cgroups["systemd unit"], ""}})
	pid := uint32(1)
	lib := &mock.Interface{DeviceGetHandleByUUIDFunc: func(string) (nvml.Device, nvml.Return) {
		return &mock.Device{
			GetComputeRunningProcessesFunc:  func() ([]nvml.ProcessInfo, nvml.Return) { return []nvml.ProcessInfo{{Pid: pid}}, nvml.SUCCESS },
			GetGraphicsRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS },
		}, nvml.SUCCESS
	}}
	m, err := cgroupres.NewMapper(lib, cgroupres.Config{ProcRoot: root, Refresh: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	cgroupres.SetNow(m, func() time.Time { return now })
	if w := m.Workload("GPU-a"); w.Job != "4242" {
		t.Fatalf("first read %+v", w)
	}
	pid = 2 // the job ended, a unit took the GPU
	now = now.Add(59 * time.Second)
	if w := m.Workload("GPU-a"); w.Job != "4242" {
		t.Errorf("within refresh: %+v", w)
	}
	now = now.Add(time.Second)
	if w := m.Workload("GPU-a"); w.Job != "trainer.service" {
		t.Errorf("after refresh: %+v", w)
	}
	if _, err := cgroupres.NewMapper(lib, cgroupres.Config{Refresh: -1}); err == nil {
		t.Error("empty proc_root and negative refresh accepted")
	}
}

// Without SLURM_JOB_USER in the environment the user comes from the uid:
// cgroup v1's uid_N or SLURM_JOB_UID, named by the user database, or the
// uid itself when the database does not know it. Each uid is looked up once.
func TestMapperSlurmUserFromUID(t *testing.T) {
	root := proc(t, map[uint32][2]string{
		1: {cgroups["slurm v1"], "SLURM_JOB_ID=12345\x00SLURM_JOB_ACCOUNT=recsys\x00"}, // uid_1000 in the path
		2: {"0::/slurm/uid_4242/job_7/step_0/task_0\n", ""},                            // a uid the database lacks
		3: {cgroups["slurm v2"], "SLURM_JOB_UID=1000\x00"},                             // v2: no uid in the path
		4: {"0::/slurm/uid_1000/job_8/step_0/task_0\n", ""},
	})
	lib := &mock.Interface{DeviceGetHandleByUUIDFunc: func(uuid string) (nvml.Device, nvml.Return) {
		pid, _ := strconv.Atoi(uuid[len("GPU-"):])
		return &mock.Device{
			GetComputeRunningProcessesFunc:  func() ([]nvml.ProcessInfo, nvml.Return) { return []nvml.ProcessInfo{{Pid: uint32(pid)}}, nvml.SUCCESS },
			GetGraphicsRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS },
		}, nvml.SUCCESS
	}}
	m, err := cgroupres.NewMapper(lib, cgroupres.Config{ProcRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	lookups := map[string]int{}
	cgroupres.SetLookupUser(m, func(uid string) (string, error) {
		lookups[uid]++
		if uid == "1000" {
			return "carol", nil
		}
		return "", errors.New("unknown user")
	})
	for uuid, want := range map[string]record.Workload{
		"GPU-1": {Job: "12345", HPCUser: "carol", HPCAccount: "recsys"},
		"GPU-2": {Job: "7", HPCUser: "4242"},
		"GPU-3": {Job: "4242", HPCUser: "carol"},
		"GPU-4": {Job: "8", HPCUser: "carol"},
	} {
		if got := m.Workload(uuid); got != want {
			t.Errorf("%s: %+v, want %+v", uuid, got, want)
		}
	}
	if lookups["1000"] != 1 || lookups["4242"] != 1 {
		t.Errorf("lookups %v, want each uid once", lookups)
	}
}

// A GPU shared by MPS between two Slurm jobs is held by both (each job
// once, however many ranks); the MPS daemon's unit is no holder beside them.
func TestSharedHoldersAreTheJobs(t *testing.T) {
	root := proc(t, map[uint32][2]string{
		1: {cgroups["slurm v1"], "SLURM_JOB_USER=alice\x00"},
		2: {cgroups["slurm v1"], "SLURM_JOB_USER=alice\x00"},
		3: {cgroups["slurm v2"], "SLURM_JOB_USER=bob\x00SLURM_JOB_ACCOUNT=ml\x00"},
		4: {"0::/system.slice/nvidia-mps.service\n", ""},
	})
	lib := &mock.Interface{DeviceGetHandleByUUIDFunc: func(string) (nvml.Device, nvml.Return) {
		return &mock.Device{
			GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
				return []nvml.ProcessInfo{{Pid: 4}, {Pid: 3}, {Pid: 2}, {Pid: 1}}, nvml.SUCCESS
			},
			GetGraphicsRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS },
		}, nvml.SUCCESS
	}}
	m, err := cgroupres.NewMapper(lib, cgroupres.Config{ProcRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	got := cgroupres.Shared{Mapper: m}.Holders("GPU-a")
	want := []record.Workload{{Job: "12345", HPCUser: "alice"}, {Job: "4242", HPCUser: "bob", HPCAccount: "ml"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("holders %+v, want %+v", got, want)
	}
	if w := m.Workload("GPU-a"); w != want[0] {
		t.Errorf("Workload %+v, want %+v", w, want[0])
	}
}
