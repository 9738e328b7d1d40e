package analyzer

import (
	"strings"
	"testing"
	"time"
)

func TestHealthConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"15s interval", func(c *Config) { c.Health.Interval = 15 * time.Second }, ""},
		{"too long", func(c *Config) { c.Health.Interval = time.Minute }, "want 15s to 30s"},
		{"bad threshold", func(c *Config) { c.Health.NVLinkRatio = 1.2 }, "nvlink_ratio"},
		{"disabled skips checks", func(c *Config) { c.Health.Enabled, c.Health.Interval = false, time.Hour }, ""},
		{"name clash", func(c *Config) { c.Health.Name = c.Drift.Name }, "used twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := NewDefaultConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
