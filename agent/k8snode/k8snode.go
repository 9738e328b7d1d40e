// Package k8snode reads the labels of a Kubernetes node from the API server,
// as a pod does with its service account (in-cluster): GET
// /api/v1/nodes/NAME with the account's token, the server verified against
// the account's CA. The agent takes its place in the topology (datacenter,
// row, rack, cluster) from them, since the downward API cannot expose node
// labels to a pod. The account needs RBAC "get" on "nodes".
//
// Layer: stage (the agent's); the standard library only, no client-go.
package k8snode

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
	"net/url"
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
	// with Backoff (default 1s) doubling in between; 403 and 404 are not
	// retried.
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

// errPermanent marks an answer that a retry will not change.
var errPermanent = errors.New("permanent")

// Labels returns the labels of node.
func (c Client) Labels(ctx context.Context, node string) (map[string]string, error) {
	if node == "" {
		return nil, errors.New("no node name: set $NODE_NAME from the downward API (fieldRef spec.nodeName)")
	}
	hc, err := c.httpClient()
	if err != nil {
		return nil, err
	}
	attempts, backoff := c.Attempts, c.Backoff
	if attempts < 1 {
		attempts = 4
	}
	if backoff <= 0 {
		backoff = time.Second
	}
	var last error
	for i := range attempts {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("node %s: %w (last error: %w)", node, ctx.Err(), last)
			case <-time.After(backoff):
			}
			backoff *= 2
		}
		var labels map[string]string
		labels, last = c.get(ctx, hc, node)
		if last == nil {
			return labels, nil
		}
		if errors.Is(last, errPermanent) {
			break
		}
	}
	return nil, fmt.Errorf("reading node %s from %s: %w", node, c.Server, last)
}

func (c Client) httpClient() (*http.Client, error) {
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("API server CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("API server CA %s: no PEM certificate in it", c.CAFile)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		Proxy:           http.ProxyFromEnvironment,
	}}, nil
}

func (c Client) get(ctx context.Context, hc *http.Client, node string) (map[string]string, error) {
	token, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("service account token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.Server, "/")+"/api/v1/nodes/"+url.PathEscape(node), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errPermanent, err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, fmt.Errorf("%w: %s: the service account may not read nodes (it needs RBAC get on nodes): %s", errPermanent, resp.Status, snippet(body))
	case http.StatusNotFound:
		return nil, fmt.Errorf("%w: %s: no such node: %s", errPermanent, resp.Status, snippet(body))
	default:
		return nil, fmt.Errorf("%s: %s", resp.Status, snippet(body))
	}
	var n struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, fmt.Errorf("decoding the node: %w", err)
	}
	if n.Metadata.Labels == nil {
		n.Metadata.Labels = map[string]string{}
	}
	return n.Metadata.Labels, nil
}

// snippet is the start of an error body, for the message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
