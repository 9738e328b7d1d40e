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

// LastWindowsSQL returns, per detector, the end of the last recorded
// window and of the last one evaluated successfully, of the detectors named
// and of the shares of whole (fleet.ShareName(whole, …)).
func LastWindowsSQL(database string, detectors []string, whole string) string {
	shares := "0"
	if whole != "" {
		prefix := whole + fleet.ShareSep
		shares = fmt.Sprintf("substring(detector, 1, %d) = %s", len(prefix), chsql.String(prefix))
	}
	return fmt.Sprintf("SELECT detector, max(window_end) AS last, maxIf(window_end, status = 'ok') AS last_ok FROM %s WHERE detector IN %s OR %s GROUP BY detector ORDER BY detector",
		chsql.Ident(database, schema.AnalyzerWindows.Name), chsql.In(detectors), shares)
}

// last returns where detector resumes: the last recorded window and the
// last successful one. A share resumes after the later of its own and the
// whole detector's (evaluated alone, before the fleet was shared); a whole
// detector after the later of its own and the earliest its shares reached
// (evaluated shared, before a single analyzer took over again), so that no
// share's windows are left out.
func (l *ledger) last(ctx context.Context, detector string, iv time.Duration) (last, lastOK fleet.Window, err error) {
	base := fleet.BaseName(detector)
	names, whole := []string{detector, base}, ""
	if base == detector {
		names, whole = []string{detector}, detector
	}
	var end, endOK time.Time
	var shareEnd, shareOK time.Time
	shares := 0
	var res chsql.Result
	det, lastCol, okCol := res.Str("detector"), res.Time("last"), res.Time("last_ok")
	err = res.ForRows(ctx, l.client, LastWindowsSQL(l.client.Config().Database, names, whole), func(r int) {
		e, ok := time.Unix(lastCol.Seconds(r), 0).UTC(), time.Unix(okCol.Seconds(r), 0).UTC()
		if whole != "" && det.At(r) != whole {
			if shares == 0 || e.Before(shareEnd) {
				shareEnd = e
			}
			if shares == 0 || ok.Before(shareOK) {
				shareOK = ok
			}
			shares++
			return
		}
		end, endOK = maxTime(end, e), maxTime(endOK, ok)
	})
	if err != nil {
		return last, lastOK, fmt.Errorf("read analyzer_windows: %w", err)
	}
	end, endOK = maxTime(end, shareEnd), maxTime(endOK, shareOK)
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
