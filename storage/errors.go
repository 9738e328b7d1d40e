package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouse server error codes that are worth retrying: the server is busy,
// short of memory or disk, restarting, or the network failed. Everything else
// from the server (unknown table, type mismatch, bad credentials) is permanent.
var retryableCodes = map[int32]string{
	3:   "unexpected_end_of_file",
	159: "timeout_exceeded",
	164: "readonly",
	202: "too_many_simultaneous_queries",
	209: "socket_timeout",
	210: "network_error",
	236: "aborted",
	241: "memory_limit_exceeded",
	242: "table_is_read_only",
	243: "not_enough_space",
	252: "too_many_parts",
	285: "too_few_live_replicas",
	319: "unknown_status_of_insert",
	394: "query_was_cancelled",
	425: "system_error",
	999: "keeper_exception",
}

var permanentCodes = map[int32]string{
	6:   "cannot_parse_text",
	15:  "duplicate_column",
	16:  "no_such_column_in_table",
	27:  "cannot_parse_input",
	47:  "unknown_identifier",
	53:  "type_mismatch",
	57:  "table_already_exists",
	60:  "unknown_table",
	62:  "syntax_error",
	70:  "cannot_convert_type",
	81:  "unknown_database",
	117: "incorrect_data",
	192: "unknown_user",
	193: "wrong_password",
	497: "access_denied",
	516: "authentication_failed",
}

// Error codes used by the migration runner.
const (
	codeDuplicateColumn = 15
	codeUnknownTable    = 60
)

// Classify names the cause of err in a few words suitable as a metric label
// and says whether trying again may succeed.
func Classify(err error) (reason string, retryable bool) {
	switch {
	case err == nil:
		return "", false
	case errors.Is(err, context.Canceled):
		return "canceled", false
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout", true
	case errors.Is(err, clickhouse.ErrAcquireConnTimeout):
		return "connection", true
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		if r, ok := retryableCodes[ex.Code]; ok {
			return r, true
		}
		if r, ok := permanentCodes[ex.Code]; ok {
			return r, false
		}
		return fmt.Sprintf("clickhouse_error_%d", ex.Code), false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return "connection", true
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		return pe.Reason, false
	}
	// Unknown client-side failures are retried a bounded number of times.
	return "unknown", true
}

// PermanentError marks a failure that retrying cannot fix.
type PermanentError struct {
	Reason string
	Err    error
}

func (e *PermanentError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }
