package storage

import (
	"github.com/fleetwatch/fleetwatch/storage/chsql"

	"fmt"

	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// The SQL this package runs beyond the schema DDL, as functions so that tests
// can run the very same text on current ClickHouse (chDB) too.

// LedgerSQL reads the applied migrations and their checksums.
func LedgerSQL(database string) string {
	return fmt.Sprintf("SELECT version, argMax(checksum, applied_at) AS checksum FROM %s GROUP BY version", chsql.Ident(database, schema.MigrationsTable))
}

// PartitionsSQL lists a table's active partitions.
func PartitionsSQL(database, table string) string {
	return fmt.Sprintf("SELECT DISTINCT partition FROM system.parts WHERE database = %s AND table = %s AND active ORDER BY partition",
		chsql.String(database), chsql.String(table))
}

// DropPartitionSQL drops one partition of a table's physical (local) table.
func DropPartitionSQL(tg schema.Target, table, partition string) string {
	return fmt.Sprintf("ALTER TABLE %s.%s%s DROP PARTITION %s", tg.Database, tg.Physical(table), tg.OnCluster(), partition)
}
