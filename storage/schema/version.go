package schema

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a ClickHouse server version, as reported by SELECT version().
type Version struct {
	Major, Minor, Patch int
}

// ParseVersion reads "18.16.1", "24.8.4.13" or "26.5.1.1-stable" style strings.
func ParseVersion(s string) (Version, error) {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "-+ "); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("parse ClickHouse version %q: want at least major.minor", s)
	}
	var v Version
	dst := []*int{&v.Major, &v.Minor, &v.Patch}
	for i := 0; i < len(parts) && i < len(dst); i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil || n < 0 {
			return Version{}, fmt.Errorf("parse ClickHouse version %q: part %d is not a number", s, i+1)
		}
		*dst[i] = n
	}
	return v, nil
}

// AtLeast reports whether v >= major.minor.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Features are the optional DDL extras Fleetwatch uses when the server has them.
// The zero value is the legacy profile (ClickHouse 18.16, Debian's package).
type Features struct {
	// LowCardinality wraps repetitive string columns (metric, node, model...) in
	// LowCardinality(String). On 18.16 it exists only behind an experimental flag.
	LowCardinality bool
	// Codecs adds column compression codecs (DoubleDelta for time, Gorilla for gauges).
	Codecs bool
	// TTL adds table TTL clauses for retention; without it retention drops whole partitions.
	TTL bool
	// SkipIndexes adds data-skipping indexes (bloom filter on trace ids).
	SkipIndexes bool
	// ReplicatedComments keeps column comments on Replicated tables (cluster
	// mode); 18.16's replicas reject a second CREATE of such a table.
	ReplicatedComments bool
}

// ModernSince is the first release where every extra in Features is generally
// available (20.3 LTS). Older servers get the legacy profile.
var ModernSince = Version{Major: 20, Minor: 3}

// Modern is the feature set of current ClickHouse releases.
var Modern = Features{LowCardinality: true, Codecs: true, TTL: true, SkipIndexes: true, ReplicatedComments: true}

// FeaturesFor returns the features to use against a server of version v.
func FeaturesFor(v Version) Features {
	if v.AtLeast(ModernSince.Major, ModernSince.Minor) {
		return Modern
	}
	return Features{}
}

// Name is "modern" or "legacy" (or "custom" for a hand-picked mix).
func (f Features) Name() string {
	switch f {
	case Modern:
		return "modern"
	case Features{}:
		return "legacy"
	default:
		return "custom"
	}
}
