package chsql

import (
	"fmt"

	"github.com/go-faster/city"
)

// Shards: analyzers that split a detector's work take the rows whose key
// (a datacenter's or a model's name) hashes into their part. The SQL and
// the Go side hash alike: ClickHouse's cityHash64 (CityHash 1.0.2, on
// 18.16 and current releases) and go-faster/city's CH64, its Go port.

// InShard is the condition that col's value falls into part index of of
// (cityHash64(col) % of = index); "1" (true) when of ≤ 1.
func InShard(col string, index, of int) string {
	if of <= 1 {
		return "1"
	}
	return fmt.Sprintf("cityHash64(%s) %% %d = %d", col, of, index)
}

// ShardOf is the part of of that value falls into, as InShard computes it
// in ClickHouse; 0 when of ≤ 1.
func ShardOf(value string, of int) int {
	if of <= 1 {
		return 0
	}
	return int(city.CH64([]byte(value)) % uint64(of))
}
