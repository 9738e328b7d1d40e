package netsec

import (
	"bufio"
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
)

// TokenFile is a file of bearer tokens, one per line (blank lines and
// lines starting with # are ignored), re-read when it changes. A client
// sends the first token; a server accepts any of them, so a token rotates
// without a failed request: add the new one as a second line, move the
// clients to it, then remove the old one.
type TokenFile struct {
	path string
	w    *watched[[]string]
}

// OpenTokenFile reads the tokens at path; a missing, unreadable or empty
// file is an error.
func OpenTokenFile(path string) (*TokenFile, error) {
	t := &TokenFile{path: path}
	w, err := newWatched(func() ([]string, error) { return readTokens(path) }, path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	t.w = w
	return t, nil
}

func readTokens(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		out = append(out, string(line))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", path, errNoToken)
	}
	return out, nil
}

var errNoToken = errors.New("no token in the file")

// Path is the file's path.
func (t *TokenFile) Path() string { return t.path }

// Token returns the token a client sends: the file's first.
func (t *TokenFile) Token() string { return t.w.get()[0] }

// Valid reports whether tok is one of the file's tokens, comparing in
// constant time.
func (t *TokenFile) Valid(tok string) bool {
	ok := 0
	for _, want := range t.w.get() {
		ok |= subtle.ConstantTimeCompare([]byte(tok), []byte(want))
	}
	return ok == 1
}

// ReloadError is the last failed reload (the previous tokens stay in use),
// nil once a reload succeeded.
func (t *TokenFile) ReloadError() error { return t.w.lastError() }
