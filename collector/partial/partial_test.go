package partial

import (
	"context"
	"sync"
	"testing"
)

func TestTallyCountsByReason(t *testing.T) {
	ctx, tally := NewContext(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			Reject(ctx, "non_finite", 2)
			Reject(ctx, "timestamp_out_of_range", 1)
			Reject(ctx, "ignored", 0)
		}()
	}
	wg.Wait()
	if got := tally.Rejected(); got != 24 {
		t.Fatalf("Rejected() = %d, want 24", got)
	}
	r := tally.Reasons()
	if r["non_finite"] != 16 || r["timestamp_out_of_range"] != 8 || len(r) != 2 {
		t.Fatalf("Reasons() = %v", r)
	}
	want := `rejected 24 of the request's items: 16 non_finite, 8 timestamp_out_of_range (reasons: Fleetwatch docs/TELEMETRY.md, "What lands where")`
	if got := tally.Message(); got != want {
		t.Fatalf("Message() = %q\nwant       %q", got, want)
	}
}

func TestRejectWithoutTallyIsANoOp(t *testing.T) {
	Reject(context.Background(), "non_finite", 3) // must not panic
	if FromContext(context.Background()) != nil {
		t.Fatal("a plain context has no tally")
	}
	_, tally := NewContext(context.Background())
	if tally.Message() != "" || tally.Rejected() != 0 {
		t.Fatal("an empty tally has no message")
	}
}
