// Package schema defines Fleetwatch's ClickHouse tables and their migrations
// once, as data, and renders them as DDL for the server generation at hand
// (Debian's ClickHouse 18.16 or a current release: LowCardinality, codecs, TTL
// and skip indexes only where supported) and for the deployment shape (one
// node, or a cluster with ON CLUSTER DDL, Replicated*MergeTree local tables and
// Distributed tables over them). It has no connection code; package storage
// applies the rendered statements.
package schema
