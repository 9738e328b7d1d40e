//go:build !linux

package tabular

const oDirect = 0
