package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
	"github.com/fleetwatch/fleetwatch/storage/schema"
)

// fleet.Window statuses in the ledger.
const (
	statusOK      = "ok"
	statusSkipped = "skipped"
)

// ledger reads and writes analyzer_windows.
type ledger struct {
	client *storage.Client
	writer *storage.Writer
}

func newLedger(c *storage.Client) (*ledger, error) {
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		return nil, err
	}
	return &ledger{client: c, writer: w}, nil
}

// LastWindowsSQL returns, over the ledger rows of the named detectors, the
// end of the last recorded window and of the last one evaluated
// successfully (1970-01-01 when none).
func LastWindowsSQL(database string, detectors ...string) string {
	return fmt.Sprintf("SELECT max(window_end), maxIf(window_end, status = 'ok') FROM %s WHERE detector IN %s",
		chsql.Ident(database, schema.AnalyzerWindows.Name), chsql.In(detectors))
}

// last returns the last recorded window and the last successful one of
// the detectors named.
func (l *ledger) last(ctx context.Context, detectors []string, iv time.Duration) (last, lastOK fleet.Window, err error) {
	var end, endOK time.Time
	if err := l.client.QueryScalar(ctx, LastWindowsSQL(l.client.Config().Database, detectors...), &end, &endOK); err != nil {
		return last, lastOK, fmt.Errorf("read analyzer_windows: %w", err)
	}
	if end.Unix() > 0 {
		last = fleet.Window{Start: end.Add(-iv).UTC(), End: end.UTC()}
	}
	if endOK.Unix() > 0 {
		lastOK = fleet.Window{Start: endOK.Add(-iv).UTC(), End: endOK.UTC()}
	}
	return last, lastOK, nil
}

type record struct {
	status     string
	detections int
	attempts   int
	duration   time.Duration
	at         time.Time
	err        string
}

// record writes one ledger row for w.
func (l *ledger) record(ctx context.Context, detector string, w fleet.Window, r record) error {
	b := storage.AnalyzerWindowBlock{
		WindowEnd: []int64{w.End.Unix()}, WindowStart: []int64{w.Start.Unix()}, Detector: []string{detector}, Status: []string{r.status},
		Detections: []uint32{uint32(r.detections)}, Attempts: []uint32{uint32(r.attempts)}, DurationMs: []float64{float64(r.duration) / 1e6},
		EvaluatedAt: []int64{r.at.Unix()}, Error: []string{r.err},
	}
	return l.writer.Write(ctx, b.Block())
}
