package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// The Grafana dashboard model (schemaVersion 39), only as much of it as the
// Fleetwatch dashboards use. Definitions build these values; Render turns
// them into the JSON files under json/.

// SchemaVersion is the Grafana dashboard schema version the files declare.
const SchemaVersion = 39

// Data source identities, as provisioned by provisioning/datasources.
const (
	ClickHouseType = "grafana-clickhouse-datasource"
	ClickHouseUID  = "fleetwatch-clickhouse"
	PrometheusType = "prometheus"
	PrometheusUID  = "fleetwatch-prometheus"
	// PluginVersion is the grafana-clickhouse-datasource version the
	// queries are written for (4.x: editorType/queryType/format fields).
	PluginVersion = "4.5.1"
)

// Ref points at a data source.
type Ref struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

var (
	clickhouse = Ref{Type: ClickHouseType, UID: ClickHouseUID}
	prometheus = Ref{Type: PrometheusType, UID: PrometheusUID}
)

// Target is one query of a panel, variable or annotation.
type Target struct {
	RefID      string `json:"refId"`
	Datasource Ref    `json:"datasource"`
	// ClickHouse plugin fields.
	EditorType    string `json:"editorType,omitempty"`
	QueryType     string `json:"queryType,omitempty"`
	Format        *int   `json:"format,omitempty"`
	RawSQL        string `json:"rawSql,omitempty"`
	PluginVersion string `json:"pluginVersion,omitempty"`
	// Prometheus fields.
	Expr         string `json:"expr,omitempty"`
	LegendFormat string `json:"legendFormat,omitempty"`
	Range        bool   `json:"range,omitempty"`
}

// GridPos places a panel on the 24-column grid.
type GridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

// Threshold is one step of a threshold scale; Value nil is the base.
type Threshold struct {
	Color string   `json:"color"`
	Value *float64 `json:"value"`
}

// Thresholds colour values.
type Thresholds struct {
	Mode  string      `json:"mode"`
	Steps []Threshold `json:"steps"`
}

// FieldDefaults are a panel's field defaults.
type FieldDefaults struct {
	Unit       string         `json:"unit,omitempty"`
	Min        *float64       `json:"min,omitempty"`
	Thresholds *Thresholds    `json:"thresholds,omitempty"`
	Custom     map[string]any `json:"custom,omitempty"`
}

// FieldConfig is a panel's field configuration.
type FieldConfig struct {
	Defaults  FieldDefaults `json:"defaults"`
	Overrides []any         `json:"overrides"`
}

// Panel is one dashboard panel.
type Panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description,omitempty"`
	GridPos     GridPos        `json:"gridPos"`
	Datasource  Ref            `json:"datasource"`
	Interval    string         `json:"interval,omitempty"`
	FieldConfig FieldConfig    `json:"fieldConfig"`
	Options     map[string]any `json:"options"`
	Targets     []Target       `json:"targets"`
}

// Variable is a template variable.
type Variable struct {
	Name        string         `json:"name"`
	Label       string         `json:"label"`
	Type        string         `json:"type"`
	Description string         `json:"description,omitempty"`
	Datasource  *Ref           `json:"datasource,omitempty"`
	Query       string         `json:"query"`
	Definition  string         `json:"definition,omitempty"`
	Refresh     int            `json:"refresh,omitempty"`
	Multi       bool           `json:"multi"`
	IncludeAll  bool           `json:"includeAll"`
	Sort        int            `json:"sort,omitempty"`
	Current     map[string]any `json:"current"`
	Options     []any          `json:"options"`
	Hide        int            `json:"hide"`
}

// Annotation is an annotation query (e.g. deployment markers).
type Annotation struct {
	Name       string  `json:"name"`
	Datasource Ref     `json:"datasource"`
	Enable     bool    `json:"enable"`
	IconColor  string  `json:"iconColor"`
	Target     *Target `json:"target,omitempty"`
}

// Link links to other dashboards by tag.
type Link struct {
	Title       string   `json:"title"`
	Type        string   `json:"type"`
	Tags        []string `json:"tags"`
	AsDropdown  bool     `json:"asDropdown"`
	IncludeVars bool     `json:"includeVars"`
	KeepTime    bool     `json:"keepTime"`
}

// Dashboard is a whole dashboard file.
type Dashboard struct {
	Annotations   AnnotationList `json:"annotations"`
	Description   string         `json:"description"`
	Editable      bool           `json:"editable"`
	GraphTooltip  int            `json:"graphTooltip"`
	Links         []Link         `json:"links"`
	Panels        []Panel        `json:"panels"`
	Refresh       string         `json:"refresh"`
	SchemaVersion int            `json:"schemaVersion"`
	Tags          []string       `json:"tags"`
	Templating    VariableList   `json:"templating"`
	Time          TimeRange      `json:"time"`
	Timezone      string         `json:"timezone"`
	Title         string         `json:"title"`
	UID           string         `json:"uid"`
	Version       int            `json:"version"`
}

// AnnotationList is the dashboard's annotations section.
type AnnotationList struct {
	List []Annotation `json:"list"`
}

// VariableList is the dashboard's templating section.
type VariableList struct {
	List []Variable `json:"list"`
}

// TimeRange is the default time range, in Grafana's relative syntax.
type TimeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Render returns the dashboard as indented JSON ending in a newline, with
// SQL comparison operators left readable (no HTML escaping).
func (d Dashboard) Render() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("dashboard %s: %w", d.UID, err)
	}
	return buf.Bytes(), nil
}
