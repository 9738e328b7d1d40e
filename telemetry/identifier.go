package telemetry

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxIdentifierBytes is the longest identifier the policy accepts, in bytes.
const MaxIdentifierBytes = 256

// IdentifierAttributes are the resource attributes and data-point, log-record
// and span attributes whose values name things: nodes, GPUs, topology,
// models, jobs. They become table keys and dashboard variables, so the
// collector checks them against CheckIdentifier at ingest (docs/TELEMETRY.md,
// "Identifier policy"). The keys of AttrFeatures (feature names, a dashboard
// variable too) are checked the same way.
var IdentifierAttributes = []string{
	AttrDatacenter, AttrRow, AttrRack, AttrCluster, AttrHostName, AttrK8sNode, AttrServiceName,
	LabelUUID, LabelGPU, LabelModelName, LabelHostname, LabelHostnameNew, LabelMIGProfile,
	LabelJob, LabelJobLegacy,
	AttrModel, AttrModelVersion, AttrGPUUUID, AttrEnvironment, AttrGPUEvent, AttrLabel,
}

// IsIdentifierAttribute reports whether key is one of IdentifierAttributes.
func IsIdentifierAttribute(key string) bool {
	_, ok := identifierKeys[key]
	return ok
}

var identifierKeys = func() map[string]struct{} {
	m := make(map[string]struct{}, len(IdentifierAttributes))
	for _, k := range IdentifierAttributes {
		m[k] = struct{}{}
	}
	return m
}()

// ErrBadIdentifier is what CheckIdentifier's errors wrap.
var ErrBadIdentifier = errors.New("bad identifier")

// CheckIdentifier checks s against the identifier policy: at most
// MaxIdentifierBytes bytes of valid UTF-8, printable characters or the ASCII
// space, and none of the quoting characters ' " \ and ` (a name that cannot
// break out of a string literal in SQL, PromQL or a Grafana variable,
// whatever escaping the query uses). The empty string passes: an absent
// identifier is the consumers' business. The error names the first offence.
func CheckIdentifier(s string) error {
	if len(s) > MaxIdentifierBytes {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrBadIdentifier, len(s), MaxIdentifierBytes)
	}
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !validAt(s, i):
			return fmt.Errorf("%w: invalid UTF-8 at byte %d", ErrBadIdentifier, i)
		case r == '\'' || r == '"' || r == '\\' || r == '`':
			return fmt.Errorf("%w: quoting character %q at byte %d", ErrBadIdentifier, r, i)
		case r != ' ' && !unicode.IsPrint(r):
			return fmt.Errorf("%w: non-printable character %U at byte %d", ErrBadIdentifier, r, i)
		}
	}
	return nil
}

// validAt reports whether the U+FFFD decoded at s[i] is really there, not
// the mark of an invalid byte.
func validAt(s string, i int) bool {
	_, size := utf8.DecodeRuneInString(s[i:])
	return size == 3
}
