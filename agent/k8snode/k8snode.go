// Package k8snode reads the labels of a Kubernetes node from the API server,
// as a pod does with its service account (in-cluster, agent/kubeapi): GET
// /api/v1/nodes/NAME. The agent takes its place in the topology (datacenter,
// row, rack, cluster) from them, since the downward API cannot expose node
// labels to a pod. The account needs RBAC "get" on "nodes".
//
// Layer: stage (the agent's); the standard library only, no client-go.
package k8snode

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/fleetwatch/fleetwatch/agent/kubeapi"
)

// Labels returns the labels of node, read with c.
func Labels(ctx context.Context, c kubeapi.Client, node string) (map[string]string, error) {
	if node == "" {
		return nil, errors.New("no node name: set $NODE_NAME from the downward API (fieldRef spec.nodeName)")
	}
	api, err := c.Connect()
	if err != nil {
		return nil, err
	}
	defer api.Close()
	var n kubeapi.Object
	if err := api.Get(ctx, "/api/v1/nodes/"+url.PathEscape(node), &n); err != nil {
		hint := ""
		switch kubeapi.Reason(err) {
		case kubeapi.ReasonForbidden:
			hint = " (the service account needs RBAC get on nodes)"
		case kubeapi.ReasonNotFound:
			hint = " (no such node)"
		}
		return nil, fmt.Errorf("reading node %s from %s: %w%s", node, c.Server, err, hint)
	}
	if n.Metadata.Labels == nil {
		n.Metadata.Labels = map[string]string{}
	}
	return n.Metadata.Labels, nil
}
