package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// ConnectCause is why Open, ResolveTarget or CreateDatabase could not reach
// ClickHouse, in terms a person can act on.
type ConnectCause int

// Causes that DiagnoseConnect tells apart.
const (
	// CauseUnknown is any other failure (the error says what it is).
	CauseUnknown ConnectCause = iota
	// CauseRefused: nothing listens at the address.
	CauseRefused
	// CauseAuth: the server refused the user or the password.
	CauseAuth
	// CauseHTTPPort: the address is ClickHouse's HTTP interface, which does
	// not speak the native protocol.
	CauseHTTPPort
	// CauseNoDatabase: the server is there but the database is not.
	CauseNoDatabase
)

// ClickHouse error codes of failed authentication: UNKNOWN_USER,
// WRONG_PASSWORD, REQUIRED_PASSWORD, and AUTHENTICATION_FAILED (what
// current servers answer for all of them).
var authCodes = map[int32]bool{192: true, 193: true, 194: true, 516: true}

const codeUnknownDatabase = 81

// Diagnosis is DiagnoseConnect's answer.
type Diagnosis struct {
	Cause ConnectCause
	// Addr is where the cause was found: for CauseHTTPPort the address that
	// answered over HTTP, otherwise every configured address.
	Addr string
	cfg  Config
}

// DiagnoseConnect says why err, returned by Open, ResolveTarget or
// CreateDatabase with cfg, happened. A handshake that failed without an
// answer from ClickHouse (a timeout, a closed connection) is checked by
// asking each address for ClickHouse's HTTP /ping: a server that answers
// it there was given its HTTP port.
func DiagnoseConnect(ctx context.Context, cfg Config, err error) Diagnosis {
	d := Diagnosis{Addr: strings.Join(cfg.Addrs, ", "), cfg: cfg}
	ex, isEx := Exception(err)
	switch {
	case err == nil || errors.Is(err, context.Canceled):
	case errors.Is(err, syscall.ECONNREFUSED):
		d.Cause = CauseRefused
	case isEx && authCodes[ex.Code]:
		d.Cause = CauseAuth
	case isEx && ex.Code == codeUnknownDatabase:
		d.Cause = CauseNoDatabase
	case isEx:
	default:
		if a := httpAddr(ctx, cfg); a != "" {
			d.Cause, d.Addr = CauseHTTPPort, a
		}
	}
	return d
}

// Hint is one sentence for a person about what to check, or "" for
// CauseUnknown. It never shows the password.
func (d Diagnosis) Hint() string {
	switch d.Cause {
	case CauseRefused:
		return fmt.Sprintf("is ClickHouse running at %s? Nothing accepts connections there", d.Addr)
	case CauseAuth:
		pw := "no password"
		if d.cfg.Password != "" {
			pw = "a password"
		}
		return fmt.Sprintf("check the user and password (user %q with %s; a DSN carries them as clickhouse://USER:PASSWORD@host:port/db)", d.cfg.Username, pw)
	case CauseHTTPPort:
		return fmt.Sprintf("%s looks like ClickHouse's HTTP port; the native protocol is usually 9000 (9440 with TLS)", d.Addr)
	case CauseNoDatabase:
		return fmt.Sprintf("database %s does not exist at %s yet; the migrations create it", d.cfg.Database, d.Addr)
	}
	return ""
}

// httpAddr returns the first address of cfg where ClickHouse's HTTP
// interface answers /ping, or "".
func httpAddr(ctx context.Context, cfg Config) string {
	scheme, client := "http", &http.Client{Timeout: 2 * time.Second}
	if cfg.TLS.Enabled {
		tc, err := cfg.TLS.LoadTLSConfig(ctx)
		if err != nil {
			return ""
		}
		scheme, client.Transport = "https", &http.Transport{TLSClientConfig: tc}
	}
	for _, a := range cfg.Addrs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+a+"/ping", nil)
		if err != nil {
			continue
		}
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && string(body) == "Ok.\n" {
			return a
		}
	}
	return ""
}
