package podres_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fleetwatch/fleetwatch/agent/podres"
	"github.com/fleetwatch/fleetwatch/agent/podres/podrestest"
	"github.com/fleetwatch/fleetwatch/agent/record"
)

var fleet = []podrestest.Pod{
	{Name: "trainer-0", Namespace: "ml", Containers: []podrestest.Container{
		{Name: "sidecar", CPUs: []uint64{1, 2}},
		{Name: "trainer", Devices: []podrestest.Device{
			{Resource: "nvidia.com/gpu", IDs: []string{"GPU-aaaa", "GPU-bbbb"}},
			{Resource: "example.com/nic", IDs: []string{"nic-0"}},
		}},
	}},
	{Name: "scorer-7d9f", Namespace: "fraud", Containers: []podrestest.Container{
		{Name: "scorer", Devices: []podrestest.Device{{Resource: "nvidia.com/mig-1g.10gb", IDs: []string{"MIG-cccc"}}}},
	}},
	{Name: "shared-a", Namespace: "dev", Containers: []podrestest.Container{
		{Name: "nb", Devices: []podrestest.Device{{Resource: "nvidia.com/gpu", IDs: []string{"GPU-dddd::0"}}}},
	}},
	{Name: "shared-b", Namespace: "dev", Containers: []podrestest.Container{
		{Name: "nb", Devices: []podrestest.Device{{Resource: "nvidia.com/gpu", IDs: []string{"GPU-dddd::1"}}}},
	}},
}

func TestMapperReadsTheKubelet(t *testing.T) {
	k := podrestest.Start(t, fleet)
	cfg := podres.NewDefaultConfig()
	cfg.Socket = k.Socket
	m, err := podres.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for uuid, want := range map[string]record.Workload{
		"GPU-aaaa": {Namespace: "ml", Pod: "trainer-0", Container: "trainer"},
		"GPU-bbbb": {Namespace: "ml", Pod: "trainer-0", Container: "trainer"},
		"MIG-cccc": {Namespace: "fraud", Pod: "scorer-7d9f", Container: "scorer"},
		"GPU-dddd": {Namespace: "dev", Pod: "shared-a", Container: "nb"},
		"nic-0":    {},
		"GPU-eeee": {},
	} {
		if got := m.Workload(uuid); got != want {
			t.Errorf("%s: %+v, want %+v", uuid, got, want)
		}
	}
	if n := m.Errors()["pod_resources_gpu_shared"]; n != 1 {
		t.Errorf("shared GPUs counted %d, want 1 (GPU-dddd's second replica)", n)
	}
	// The time-sliced GPU has both pods, in the kubelet's order.
	if hs := m.Holders("GPU-dddd"); len(hs) != 2 || hs[0].Pod != "shared-a" || hs[1].Pod != "shared-b" {
		t.Errorf("GPU-dddd's holders %+v, want shared-a and shared-b", hs)
	}
	if hs := m.Holders("GPU-aaaa"); len(hs) != 1 {
		t.Errorf("GPU-aaaa's holders %+v, want trainer-0 once", hs)
	}
	if n := len(m.Pods()); n != 4 {
		t.Errorf("%d pods hold GPUs, want 4: %+v", n, m.Pods())
	}
	// The trainer finishes: its GPUs are free at the next read.
	k.Set(fleet[1:2])
	if err := m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := m.Workload("GPU-aaaa"); got != (record.Workload{}) {
		t.Errorf("a released GPU still maps to %+v", got)
	}
}

func TestMapperSaysWhenTheKubeletFails(t *testing.T) {
	k := podrestest.Start(t, fleet[:1])
	k.Fail(true)
	cfg := podres.NewDefaultConfig()
	cfg.Socket, cfg.Interval = k.Socket, time.Second
	var logs bytes.Buffer
	m, err := podres.New(cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	for m.Errors()["pod_resources_read_failed"] < 2 {
		time.Sleep(10 * time.Millisecond)
	}
	k.Fail(false)
	for m.Workload("GPU-aaaa").Pod == "" {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "cannot read the kubelet's pod-resources API"); n != 1 {
		t.Errorf("the failure was logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "reading the kubelet's pod-resources API again") {
		t.Errorf("the recovery was not logged:\n%s", logs.String())
	}
}

func TestMalformedAnswersAreErrors(t *testing.T) {
	for _, b := range [][]byte{{0x0a, 0x05, 0x01}, {0x0a, 0x02, 0x0a, 0x7f}, {0xff}} {
		if _, _, err := podres.DecodeList(b, []string{"nvidia.com/"}); err == nil {
			t.Errorf("%x decoded without an error", b)
		}
	}
	if err := (podres.Config{}).Validate(); err == nil || !strings.Contains(err.Error(), "socket") || !strings.Contains(err.Error(), "resources") {
		t.Errorf("empty config: %v", err)
	}
}
