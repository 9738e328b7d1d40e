package dashboards

import (
	"fmt"
	"strings"
)

// Builders that keep the definitions short: a board lays panels out left
// to right on Grafana's 24-column grid and records, per panel, what its
// query must return (the query tests check it on real ClickHouse).

// Expect is what a ClickHouse panel query must return.
type Expect struct {
	// Columns are the result's column names, in order.
	Columns []string
	// Rows is set when the demo data must give the panel at least one row.
	Rows bool
}

// board is a dashboard under construction.
type board struct {
	d       Dashboard
	x, y, h int
	expects map[int]Expect
}

func newBoard(uid, title, description string, vars ...Variable) *board {
	b := &board{expects: map[int]Expect{}}
	b.d = Dashboard{
		UID: uid, Title: title, Description: description,
		Tags: []string{"fleetwatch"}, SchemaVersion: SchemaVersion, Version: 1, Editable: true,
		GraphTooltip: 1, Refresh: "1m", Timezone: "utc", Time: TimeRange{From: "now-6h", To: "now"},
		Links:       []Link{{Title: "Fleetwatch", Type: "dashboards", Tags: []string{"fleetwatch"}, AsDropdown: true, IncludeVars: true, KeepTime: true}},
		Panels:      []Panel{},
		Templating:  VariableList{List: vars},
		Annotations: AnnotationList{List: []Annotation{}},
	}
	if b.d.Templating.List == nil {
		b.d.Templating.List = []Variable{}
	}
	return b
}

// add places p after the previous panel, wrapping to a new row when the
// row is full, and records what its query must return.
func (b *board) add(p Panel, e Expect) {
	if b.x+p.GridPos.W > 24 {
		b.x, b.y, b.h = 0, b.y+b.h, 0
	}
	p.ID = len(b.d.Panels) + 1
	p.GridPos.X, p.GridPos.Y = b.x, b.y
	b.x += p.GridPos.W
	b.h = max(b.h, p.GridPos.H)
	b.d.Panels = append(b.d.Panels, p)
	if p.Datasource.Type == ClickHouseType {
		b.expects[p.ID] = e
	}
}

// annotate adds a ClickHouse annotation query; it must return time and text.
func (b *board) annotate(name, color, sql string) {
	t := chTarget(sql, false)
	b.d.Annotations.List = append(b.d.Annotations.List, Annotation{Name: name, Datasource: clickhouse, Enable: true, IconColor: color, Target: &t})
}

// Panel formats of the ClickHouse plugin (sqlutil.FormatQueryOption).
const (
	formatTimeSeries = 0
	formatTable      = 1
)

func chTarget(sql string, timeSeries bool) Target {
	f, qt := formatTable, "table"
	if timeSeries {
		f, qt = formatTimeSeries, "timeSeries"
	}
	return Target{RefID: "A", Datasource: clickhouse, EditorType: "sql", QueryType: qt, Format: &f,
		RawSQL: strings.TrimSpace(sql), PluginVersion: PluginVersion}
}

// look is a panel's appearance.
type look struct {
	unit       string
	thresholds []float64 // green below the first, then yellow, then red
	min        *float64
	custom     map[string]any
	options    map[string]any
	interval   string
}

func newPanel(typ, title, description string, w, h int, l look) Panel {
	p := Panel{Type: typ, Title: title, Description: description, GridPos: GridPos{W: w, H: h},
		Interval: l.interval, Options: l.options}
	if p.Options == nil {
		p.Options = map[string]any{}
	}
	p.FieldConfig = FieldConfig{Defaults: FieldDefaults{Unit: l.unit, Min: l.min, Custom: l.custom}, Overrides: []any{}}
	if len(l.thresholds) > 0 {
		colors := []string{"green", "yellow", "red", "dark-red"}
		steps := []Threshold{{Color: colors[0]}}
		for i, v := range l.thresholds {
			steps = append(steps, Threshold{Color: colors[min(i+1, len(colors)-1)], Value: &v})
		}
		p.FieldConfig.Defaults.Thresholds = &Thresholds{Mode: "absolute", Steps: steps}
	}
	return p
}

// sqlPanel is a ClickHouse panel. Time series panels (timeseries, heatmap,
// status-history) send format 0: the first column is the time, string
// columns become series labels.
func sqlPanel(typ, title, description string, w, h int, l look, sql string) Panel {
	p := newPanel(typ, title, description, w, h, l)
	p.Datasource = clickhouse
	p.Targets = []Target{chTarget(sql, typ == "timeseries" || typ == "heatmap" || typ == "status-history")}
	return p
}

// promPanel is a Prometheus time series panel.
func promPanel(title, description string, w, h int, l look, expr, legend string) Panel {
	p := newPanel("timeseries", title, description, w, h, l)
	p.Datasource = prometheus
	p.Targets = []Target{{RefID: "A", Datasource: prometheus, Expr: expr, LegendFormat: legend, Range: true}}
	return p
}

// Common looks.
var (
	zero      = 0.0
	statLook  = func(unit string, th ...float64) look { return look{unit: unit, thresholds: th, options: statOptions} }
	lineLook  = func(unit string) look { return look{unit: unit, interval: "1m", custom: lineCustom} }
	tableLook = look{options: map[string]any{"showHeader": true, "cellHeight": "sm"}}

	statOptions = map[string]any{"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false},
		"colorMode": "background", "graphMode": "none", "textMode": "auto"}
	lineCustom = map[string]any{"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0, "showPoints": "never", "spanNulls": false}
)

// bandLook draws threshold bands (PSI 0.1 and 0.25) behind a time series.
func bandLook(unit string, th ...float64) look {
	l := look{unit: unit, thresholds: th, interval: "1m", min: &zero, custom: map[string]any{}}
	for k, v := range lineCustom {
		l.custom[k] = v
	}
	l.custom["thresholdsStyle"] = map[string]any{"mode": "line+area"}
	return l
}

// Variables.

func queryVar(name, label, description, sql string, multi bool) Variable {
	v := Variable{Name: name, Label: label, Type: "query", Description: description, Datasource: &clickhouse,
		Query: sql, Definition: sql, Refresh: 2, Multi: multi, IncludeAll: multi, Sort: 1,
		Current: map[string]any{}, Options: []any{}}
	if multi {
		v.Current = map[string]any{"selected": true, "text": []string{"All"}, "value": []string{"$__all"}}
	}
	return v
}

func textVar(name, label, description string) Variable {
	return Variable{Name: name, Label: label, Type: "textbox", Description: description, Query: "",
		Current: map[string]any{"text": "", "value": ""}, Options: []any{}}
}

// Template variables reach SQL percent-encoded, never quoted. Grafana's
// quoting formats escape ' but not \ (:singlequote writes \' for ', and
// :sqlstring doubles it), while ClickHouse reads \ as an escape inside a
// string literal: a value ending in a backslash closes the literal early
// and the rest of the value becomes SQL. :percentencode writes only
// letters, digits, "-_.~" and %XX, so nothing can leave the literal; the
// query decodes it. A multi-value variable encodes as {a,b}, one value as
// itself: anyOf strips the braces and splits on commas.

// anyOf is the filter "col is one of the selected values of variable name".
func anyOf(col, name string) string {
	return col + " IN (SELECT arrayJoin(splitByChar(',', replaceRegexpAll(" + textOf(name) + ", '^[{]|[}]$', ''))))"
}

// textOf is the value of the single-value (text box) variable name as a
// ClickHouse string expression.
func textOf(name string) string {
	return "decodeURLComponent('${" + name + ":percentencode}')"
}

// SQL fragments shared by the dashboards.
var (
	topoFilter  = anyOf("cluster", "cluster") + " AND " + anyOf("rack", "rack") + " AND " + anyOf("node", "node")
	modelFilter = anyOf("model", "model")
)

// bucket groups a DateTime column into $__interval_s buckets. The plugin's
// $__timeInterval(col) expands to toStartOfInterval(), which ClickHouse
// 18.16 lacks; this expression gives the same buckets on every version.
func bucket(col string) string {
	return fmt.Sprintf("toDateTime(intDiv(toUInt32(%s), $__interval_s) * $__interval_s)", col)
}

// rollup reads one-minute rollups of the GPU metrics matching metricCond
// for the GPUs selected by the topology variables, merges each minute and
// series with merge (as v), and aggregates per time bucket and label with
// agg. It never reads raw samples, so long ranges stay cheap.
func rollup(label, metricCond, merge, agg, alias string) string {
	return fmt.Sprintf(`SELECT %s AS time, lbl AS %s, %s AS %s
FROM
(
    SELECT minute, series, %s AS v
    FROM gpu_samples_1m
    WHERE %s AND $__timeFilter(minute)
    GROUP BY minute, series
) AS q1
ANY INNER JOIN
(
    SELECT series, any(%s) AS lbl FROM gpu_series WHERE %s GROUP BY series
) AS q2 USING series
GROUP BY time, lbl
ORDER BY time, lbl`, bucket("minute"), label, agg, alias, merge, metricCond, label, topoFilter)
}
