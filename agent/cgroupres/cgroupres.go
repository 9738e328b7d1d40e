// Package cgroupres says who holds a GPU outside Kubernetes' device plugin
// (issue 19 item 1, Slurm and bare metal): NVML's running processes on the
// GPU, each process's control group (/proc/<pid>/cgroup) mapped to a Slurm
// job and step, a systemd unit, a Kubernetes pod or a container, and for
// Slurm the job's user and account from the process's environment
// (SLURM_JOB_USER, SLURM_JOB_ACCOUNT in /proc/<pid>/environ; without
// SLURM_JOB_USER the cgroup v1 path's uid_N, or SLURM_JOB_UID, named by the
// host's user database, os/user, or left a number). No Slurm command is
// run. It implements nvmlsrc.Workloads: a Slurm job's id goes to
// Workload.Job, its user and account to HPCUser and HPCAccount, a systemd unit's
// name to Workload.Job too (the unit is the job on bare metal), a pod's UID
// and container ID to PodUID and Container.
//
// The cgroup layouts recognised (v1 lines "N:controller:/path", v2 "0::/path"):
//
//	/slurm/uid_1000/job_12345/step_0/task_0                      Slurm, cgroup v1
//	/system.slice/slurmstepd.scope/job_12345/step_batch/user/…   Slurm, cgroup v2
//	/kubepods/burstable/pod<uid>/<container>                     Kubernetes, v1
//	/kubepods.slice/…/kubepods-…-pod<uid_with_underscores>.slice/cri-containerd-<id>.scope   v2
//	/docker/<id>, /system.slice/docker-<id>.scope                Docker
//	/system.slice/<unit>.service                                 a systemd unit
//
// Layer: stage (the agent's).
package cgroupres

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/fleetwatch/fleetwatch/agent/record"
)

// Kinds of holder.
const (
	KindSlurm      = "slurm"
	KindKubernetes = "kubernetes"
	KindDocker     = "docker"
	KindSystemd    = "systemd"
)

// Holder is who runs a process, from its control group.
type Holder struct {
	Kind                     string // one of the kinds, or "" when unknown
	SlurmJob, SlurmStep, UID string // Slurm (UID from cgroup v1's uid_N)
	User, Account            string // Slurm, from the environment
	Unit                     string // systemd
	PodUID, ContainerID      string // Kubernetes, Docker
}

// ParseCgroup reads the contents of /proc/<pid>/cgroup. The unified (v2)
// line wins; otherwise the first v1 line that names a holder.
func ParseCgroup(data []byte) Holder {
	var paths []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			paths = slices.Insert(paths, 0, parts[2])
		} else {
			paths = append(paths, parts[2])
		}
	}
	for _, p := range paths {
		if h := parsePath(p); h.Kind != "" {
			return h
		}
	}
	return Holder{}
}

func parsePath(p string) Holder {
	els := strings.Split(strings.Trim(p, "/"), "/")
	var h Holder
	for i, e := range els {
		switch {
		case strings.HasPrefix(e, "job_") && (h.Kind == KindSlurm || slices.Contains(els[:i], "slurm") || slices.Contains(els[:i], "slurmstepd.scope")):
			h.Kind, h.SlurmJob = KindSlurm, strings.TrimPrefix(e, "job_")
		case e == "slurm" || e == "slurmstepd.scope":
			h.Kind = KindSlurm
		case strings.HasPrefix(e, "uid_") && h.Kind == KindSlurm:
			h.UID = strings.TrimPrefix(e, "uid_")
		case strings.HasPrefix(e, "step_") && h.SlurmJob != "":
			h.SlurmStep = strings.TrimPrefix(e, "step_")
		case strings.HasPrefix(e, "pod") && i > 0 && strings.HasPrefix(els[0], "kubepods"):
			h.Kind, h.PodUID = KindKubernetes, strings.TrimPrefix(e, "pod")
		case strings.HasPrefix(e, "kubepods") && strings.Contains(e, "-pod") && strings.HasSuffix(e, ".slice"):
			uid := e[strings.LastIndex(e, "-pod")+4 : len(e)-len(".slice")]
			h.Kind, h.PodUID = KindKubernetes, strings.ReplaceAll(uid, "_", "-")
		case h.Kind == KindKubernetes && i == len(els)-1:
			h.ContainerID = containerID(e)
		case e == "docker" && i+1 < len(els):
			h.Kind, h.ContainerID = KindDocker, els[i+1]
		case strings.HasPrefix(e, "docker-") && strings.HasSuffix(e, ".scope"):
			h.Kind, h.ContainerID = KindDocker, containerID(e)
		case h.Kind == "" && strings.HasSuffix(e, ".service"):
			h.Kind, h.Unit = KindSystemd, e
		}
	}
	if h.Kind == KindSlurm && h.SlurmJob == "" {
		return Holder{} // slurmstepd itself, no job
	}
	return h
}

// containerID strips a runtime prefix and ".scope": cri-containerd-<id>.scope,
// crio-<id>.scope, docker-<id>.scope.
func containerID(e string) string {
	e = strings.TrimSuffix(e, ".scope")
	for _, p := range []string{"cri-containerd-", "crio-", "docker-"} {
		e = strings.TrimPrefix(e, p)
	}
	return e
}

// ParseEnviron fills a Slurm holder's user and account from the contents
// of /proc/<pid>/environ (NUL-separated KEY=value).
func (h *Holder) ParseEnviron(data []byte) {
	for _, kv := range bytes.Split(data, []byte{0}) {
		k, v, ok := bytes.Cut(kv, []byte{'='})
		if !ok {
			continue
		}
		switch string(k) {
		case "SLURM_JOB_USER":
			h.User = string(v)
		case "SLURM_JOB_ACCOUNT":
			h.Account = string(v)
		case "SLURM_JOB_UID":
			if h.UID == "" {
				h.UID = string(v)
			}
		case "SLURM_JOB_ID":
			if h.SlurmJob == "" && h.Kind == "" {
				h.Kind, h.SlurmJob = KindSlurm, string(v)
			}
		}
	}
}

// Workload is the holder as the agent labels a GPU.
func (h Holder) Workload() record.Workload {
	switch h.Kind {
	case KindSlurm:
		user := h.User
		if user == "" {
			user = h.UID
		}
		return record.Workload{Job: h.SlurmJob, HPCUser: user, HPCAccount: h.Account}
	case KindSystemd:
		return record.Workload{Job: h.Unit}
	case KindKubernetes:
		return record.Workload{PodUID: h.PodUID, Container: h.ContainerID}
	case KindDocker:
		return record.Workload{Container: h.ContainerID}
	}
	return record.Workload{}
}

// Config says where /proc is and how often a GPU's holders are read again.
type Config struct {
	// ProcRoot is /proc, or the host's /proc mounted into a container.
	ProcRoot string `yaml:"proc_root"`
	// Refresh is how long a GPU's workload is reused before its processes
	// are read again (the NVML source asks every interval).
	Refresh time.Duration `yaml:"refresh"`
}

// NewDefaultConfig reads /proc every 30 s.
func NewDefaultConfig() Config { return Config{ProcRoot: "/proc", Refresh: 30 * time.Second} }

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.ProcRoot == "" {
		errs = append(errs, errors.New("processes: proc_root is empty"))
	}
	if c.Refresh < 0 {
		errs = append(errs, fmt.Errorf("processes: refresh %s is negative", c.Refresh))
	}
	return errors.Join(errs...)
}

// Mapper maps GPU UUIDs to the holders of their processes. It is safe for
// concurrent use.
type Mapper struct {
	lib nvml.Interface
	cfg Config
	now func() time.Time
	// lookupUser names a uid (os/user.LookupId by default).
	lookupUser func(uid string) (string, error)

	mu    sync.Mutex
	cache map[string]cached
	users map[string]string // uid → name, or the uid when it has none
}

type cached struct {
	at time.Time
	ws []record.Workload
}

// NewMapper reads processes through lib (initialised by the caller, as the
// NVML source does) and their control groups under cfg.ProcRoot.
func NewMapper(lib nvml.Interface, cfg Config) (*Mapper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Mapper{lib: lib, cfg: cfg, now: time.Now, cache: map[string]cached{}, users: map[string]string{}, lookupUser: lookupUser}, nil
}

func lookupUser(uid string) (string, error) {
	u, err := user.LookupId(uid)
	if err != nil {
		return "", err
	}
	return u.Username, nil
}

// userName is uid's user name, the uid itself when the host's user
// database does not know it (a directory-service user the agent's
// container cannot resolve); remembered for the agent's life.
func (m *Mapper) userName(uid string) string {
	m.mu.Lock()
	name, ok := m.users[uid]
	m.mu.Unlock()
	if ok {
		return name
	}
	name = uid
	if n, err := m.lookupUser(uid); err == nil && n != "" {
		name = n
	}
	m.mu.Lock()
	m.users[uid] = name
	m.mu.Unlock()
	return name
}

// Holders returns the distinct holders of the GPU's compute and graphics
// processes, Slurm jobs first, then by kind and ID; processes that ended or
// cannot be read are skipped.
func (m *Mapper) Holders(uuid string) ([]Holder, error) {
	dev, ret := m.lib.DeviceGetHandleByUUID(uuid)
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("cgroupres: GPU %s: %s", uuid, nvml.ErrorString(ret))
	}
	var pids []uint32
	for _, get := range []func() ([]nvml.ProcessInfo, nvml.Return){dev.GetComputeRunningProcesses, dev.GetGraphicsRunningProcesses} {
		ps, ret := get()
		if ret != nvml.SUCCESS && ret != nvml.ERROR_NOT_SUPPORTED {
			return nil, fmt.Errorf("cgroupres: GPU %s processes: %s", uuid, nvml.ErrorString(ret))
		}
		for _, p := range ps {
			pids = append(pids, p.Pid)
		}
	}
	slices.Sort(pids)
	var out []Holder
	for _, pid := range slices.Compact(pids) {
		dir := filepath.Join(m.cfg.ProcRoot, strconv.FormatUint(uint64(pid), 10))
		cg, err := os.ReadFile(filepath.Join(dir, "cgroup"))
		if err != nil {
			continue // the process ended
		}
		h := ParseCgroup(cg)
		if env, err := os.ReadFile(filepath.Join(dir, "environ")); err == nil {
			h.ParseEnviron(env)
		}
		if h.Kind == KindSlurm && h.User == "" && h.UID != "" {
			h.User = m.userName(h.UID)
		}
		if h.Kind != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	slices.SortFunc(out, func(a, b Holder) int {
		if (a.Kind == KindSlurm) != (b.Kind == KindSlurm) {
			if a.Kind == KindSlurm {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Kind+a.SlurmJob+a.Unit+a.PodUID+a.ContainerID, b.Kind+b.SlurmJob+b.Unit+b.PodUID+b.ContainerID)
	})
	return out, nil
}

// Workload implements nvmlsrc.Workloads: the first holder's workload, or
// none when the GPU runs nothing that can be attributed; read again once
// Refresh has passed.
func (m *Mapper) Workload(uuid string) record.Workload {
	if ws := m.workloads(uuid); len(ws) > 0 {
		return ws[0]
	}
	return record.Workload{}
}

// workloads is what Shared's Holders returns: the distinct
// workloads of the GPU's holders of the first holder's kind (a GPU shared
// by MPS between Slurm jobs is held by each job; the MPS daemon's systemd
// unit is not a holder beside them), Workload's first. The caller must not
// modify them.
func (m *Mapper) workloads(uuid string) []record.Workload {
	now := m.now()
	m.mu.Lock()
	c, ok := m.cache[uuid]
	m.mu.Unlock()
	if ok && now.Sub(c.at) < m.cfg.Refresh {
		return c.ws
	}
	var ws []record.Workload
	if hs, err := m.Holders(uuid); err == nil {
		for _, h := range hs {
			if w := h.Workload(); h.Kind == hs[0].Kind && !slices.Contains(ws, w) {
				ws = append(ws, w)
			}
		}
	}
	m.mu.Lock()
	m.cache[uuid] = cached{at: now, ws: ws}
	m.mu.Unlock()
	return ws
}

// Shared is the Mapper as nvmlsrc.SharedWorkloads: every holder of a GPU
// shared by several jobs (MPS) goes out, so cost splits the GPU among them.
type Shared struct{ *Mapper }

// Holders are the workloads holding the GPU, Workload's first.
func (s Shared) Holders(uuid string) []record.Workload { return s.workloads(uuid) }
