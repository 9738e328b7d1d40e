package record

import (
	"fmt"
	"math"
	"testing"
)

func TestKeepIsDeterministicAndHonoursTheRate(t *testing.T) {
	for _, rate := range []float64{0.01, 0.1, 0.5, 0.9} {
		kept := 0
		const n = 20000
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("req-%d", i)
			k := Keep(id, rate)
			if k != Keep(id, rate) {
				t.Fatal("not deterministic")
			}
			if k {
				kept++
			}
		}
		sd := math.Sqrt(n * rate * (1 - rate))
		if math.Abs(float64(kept)-n*rate) > 4*sd {
			t.Errorf("rate %v kept %d of %d (want %.0f ± %.0f)", rate, kept, n, n*rate, 4*sd)
		}
	}
	if !Keep("x", 1) || Keep("x", 0) {
		t.Fatal("rate 1 must keep and rate 0 must drop")
	}
}
