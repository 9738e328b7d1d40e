// Package kubeapi is the agent's small client of the Kubernetes API server,
// as a pod reaches it with its service account (in-cluster): GET of one
// object's JSON with the account's token, the server verified against the
// account's CA, a bounded number of retries, and errors classified by
// reason (Reason) for the agent's error counters. The node's labels
// (agent/k8snode) and the GPU-holding pods' labels (agent/podlabels) are
// read with it.
//
// Layer: stage (the agent's); the standard library only, no client-go.
package kubeapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Where Kubernetes mounts a pod's service account.
const (
	DefaultTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	DefaultCAFile    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// Client is how to reach the API server.
type Client struct {
	// Server is the API server's base URL, https://host:port.
	Server string
	// TokenFile holds the bearer token (read on every request: Kubernetes
	// rotates projected tokens).
	TokenFile string
	// CAFile holds the CA bundle that signed the API server's certificate.
	CAFile string
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// Attempts is how many times a failed request is tried (default 4),
	// with Backoff (default 1s) doubling in between; 401, 403 and 404 are
	// not retried.
	Attempts int
	Backoff  time.Duration
}

// InCluster returns the client a pod uses: the API server from
// $KUBERNETES_SERVICE_HOST and $KUBERNETES_SERVICE_PORT, the service
// account's token and CA.
func InCluster() (Client, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return Client{}, errors.New("not in a Kubernetes pod: $KUBERNETES_SERVICE_HOST and $KUBERNETES_SERVICE_PORT are not set")
	}
	return Client{Server: "https://" + net.JoinHostPort(host, port), TokenFile: DefaultTokenFile, CAFile: DefaultCAFile}, nil
}

// The reasons an Error gives (Reason).
const (
	ReasonUnauthorized = "unauthorized" // 401: the token is not accepted
	ReasonForbidden    = "forbidden"    // 403: RBAC does not allow it
	ReasonNotFound     = "not_found"    // 404
	ReasonTimeout      = "timeout"      // the request or its context timed out
	ReasonServer       = "server_error" // any other HTTP status
	ReasonTransport    = "transport"    // no answer: connection, TLS
	ReasonDecode       = "decode"       // an answer that is not the object
	ReasonConfig       = "config"       // the token or CA file cannot be read
)

// Error is a failed request, with the reason it failed.
type Error struct {
	Path   string
	Reason string
	// Status is the HTTP status, 0 when there was no answer.
	Status int
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("GET %s: %s: %v", e.Path, e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// permanent reports whether a retry cannot change the answer.
func (e *Error) permanent() bool {
	switch e.Reason {
	case ReasonUnauthorized, ReasonForbidden, ReasonNotFound, ReasonConfig, ReasonDecode:
		return true
	}
	return false
}

// Reason is err's reason when it is (or wraps) an *Error, else "other".
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return "other"
}

// API is a Client with its HTTP connection pool; make one with Connect
// and reuse it.
type API struct {
	c  Client
	hc *http.Client
}

// Connect reads the CA and prepares the connections (nothing is sent yet).
func (c Client) Connect() (*API, error) {
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, &Error{Reason: ReasonConfig, Err: fmt.Errorf("API server CA: %w", err)}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, &Error{Reason: ReasonConfig, Err: fmt.Errorf("API server CA %s: no PEM certificate in it", c.CAFile)}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &API{c: c, hc: &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     90 * time.Second,
	}}}, nil
}

// Close drops the idle connections.
func (a *API) Close() { a.hc.CloseIdleConnections() }

// Server is the API server's base URL.
func (a *API) Server() string { return a.c.Server }

// Get reads the object at path (e.g. /api/v1/nodes/NAME) into v, retrying
// as the Client says. The error is an *Error.
func (a *API) Get(ctx context.Context, path string, v any) error {
	attempts, backoff := a.c.Attempts, a.c.Backoff
	if attempts < 1 {
		attempts = 4
	}
	if backoff <= 0 {
		backoff = time.Second
	}
	var last *Error
	for i := range attempts {
		if i > 0 {
			select {
			case <-ctx.Done():
				return &Error{Path: path, Reason: ReasonTimeout, Err: fmt.Errorf("%w (last error: %w)", ctx.Err(), last)}
			case <-time.After(backoff):
			}
			backoff *= 2
		}
		last = a.get(ctx, path, v)
		if last == nil {
			return nil
		}
		if last.permanent() {
			break
		}
	}
	return last
}

func (a *API) get(ctx context.Context, path string, v any) *Error {
	fail := func(reason string, status int, err error) *Error {
		return &Error{Path: path, Reason: reason, Status: status, Err: err}
	}
	token, err := os.ReadFile(a.c.TokenFile)
	if err != nil {
		return fail(ReasonConfig, 0, fmt.Errorf("service account token: %w", err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(a.c.Server, "/")+path, nil)
	if err != nil {
		return fail(ReasonConfig, 0, err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		return fail(transportReason(err), 0, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fail(transportReason(err), resp.StatusCode, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return fail(ReasonUnauthorized, resp.StatusCode, fmt.Errorf("%s: the service account's token is not accepted: %s", resp.Status, snippet(body)))
	case http.StatusForbidden:
		return fail(ReasonForbidden, resp.StatusCode, fmt.Errorf("%s: the service account may not read it (RBAC): %s", resp.Status, snippet(body)))
	case http.StatusNotFound:
		return fail(ReasonNotFound, resp.StatusCode, fmt.Errorf("%s: no such object: %s", resp.Status, snippet(body)))
	case http.StatusGatewayTimeout, http.StatusRequestTimeout:
		return fail(ReasonTimeout, resp.StatusCode, fmt.Errorf("%s: %s", resp.Status, snippet(body)))
	default:
		return fail(ReasonServer, resp.StatusCode, fmt.Errorf("%s: %s", resp.Status, snippet(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fail(ReasonDecode, resp.StatusCode, fmt.Errorf("decoding the answer: %w", err))
	}
	return nil
}

// transportReason tells a timeout from other failures to get an answer.
func transportReason(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return ReasonTimeout
	}
	return ReasonTransport
}

// Metadata is the part of an object's metadata the agent reads.
type Metadata struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	UID       string            `json:"uid"`
	Labels    map[string]string `json:"labels"`
}

// Object is any object, for its metadata.
type Object struct {
	Metadata Metadata `json:"metadata"`
}

// snippet is the start of an error body, for the message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
