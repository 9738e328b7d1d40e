// Package chartest checks the Helm chart in deploy/helm/fleetwatch.
package chartest
