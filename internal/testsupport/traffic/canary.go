package traffic

import (
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
)

// BadCanary is ranker v8's canary against v7, started at t0 (recorded by
// argo), and d of requests from t0 on: each second 45 to v7 with 0.5 %
// errors and 5 to v8 with 10 %, latencies 5–11 ms alike.
func BadCanary(t0 time.Time, d time.Duration) (storage.ModelDeploymentBlock, storage.InferenceEventBlock) {
	var dep storage.ModelDeploymentBlock
	dep.Append(&storage.ModelDeployment{Time: t0, Model: "ranker", ModelVersion: "v8", PreviousVersion: "v7", Change: "canary", Actor: "argo"})
	var ev storage.InferenceEventBlock
	id := 0
	for s := range int(d / time.Second) {
		ts := t0.Add(time.Duration(s) * time.Second)
		for k := range 50 {
			id++
			version, failed := "v7", id%200 == 0
			if k < 5 {
				version, failed = "v8", (s*5+k)%10 == 0
			}
			status := "ok"
			if failed {
				status = "error"
			}
			ev.Append(&fleet.InferenceEvent{Time: ts, Model: "ranker", ModelVersion: version, RequestID: fmt.Sprint(id),
				LatencyMs: 5 + float64(k%7), Status: status})
		}
	}
	return dep, ev
}
