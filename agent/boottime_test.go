package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestBootTime(t *testing.T) {
	bt, err := bootTime()
	if err != nil {
		t.Fatal(err)
	}
	if bt.After(time.Now()) || bt.Before(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("boot time %v is not in the past", bt)
	}
	again, _ := bootTime()
	if !again.Equal(bt) {
		t.Fatalf("boot time moved: %v then %v", bt, again)
	}
	dir := t.TempDir()
	for content, ok := range map[string]bool{"cpu 1 2 3\nbtime 1764800000\n": true, "cpu 1\n": false, "btime x\n": false} {
		p := filepath.Join(dir, "stat")
		os.WriteFile(p, []byte(content), 0o644)
		got, err := bootTimeFrom(p)
		if (err == nil) != ok || (ok && got.Unix() != 1764800000) {
			t.Errorf("%q: %v, %v", content, got, err)
		}
	}
}
