// Package labelmatch holds what silences and routing rules share about
// matching incident labels.
package labelmatch

import "regexp"

// Anchored compiles a label regular expression the way Alertmanager does:
// anchored at both ends, so it must match the whole value.
func Anchored(expr string) (*regexp.Regexp, error) {
	return regexp.Compile("^(?:" + expr + ")$")
}
