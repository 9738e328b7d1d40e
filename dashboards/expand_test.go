package dashboards

import (
	"strings"
	"testing"
	"time"
)

func TestExpand(t *testing.T) {
	r := Request{
		From: time.Unix(1_700_000_000, 0), To: time.Unix(1_700_003_600, 0), Interval: 90 * time.Second,
		Vars:  map[string][]string{"node": {"n-1", "o'b"}, "model": {"fraud"}, "search": {""}, "hostile": {`\') -- é~`}},
		Multi: map[string]bool{"node": true},
	}
	cases := []struct {
		name, in, lang, want, err string
	}{
		{"time filter", "WHERE $__timeFilter(ts)", "sql", "WHERE ts >= toDateTime(1700000000) AND ts <= toDateTime(1700003600)", ""},
		{"time filter ms", "$__timeFilter_ms(ts)", "sql", "ts >= fromUnixTimestamp64Milli(1700000000000) AND ts <= fromUnixTimestamp64Milli(1700003600000)", ""},
		{"from and to", "$__fromTime - 86400, $__toTime", "sql", "toDateTime(1700000000) - 86400, toDateTime(1700003600)", ""},
		{"interval", "intDiv(x, $__interval_s)", "sql", "intDiv(x, 90)", ""},
		{"time interval", "$__timeInterval(ts)", "sql", "toStartOfInterval(toDateTime(ts), INTERVAL 90 second)", ""},
		{"date time filter", "$__dt(d, ts)", "sql", "(d >= toDate('2023-11-14') AND d <= toDate('2023-11-14')) AND (ts >= toDateTime(1700000000) AND ts <= toDateTime(1700003600))", ""},
		{"singlequote", "node IN (${node:singlequote})", "sql", `node IN ('n-1','o\'b')`, ""},
		{"sqlstring", "${node:sqlstring}", "sql", `'n-1','o''b'`, ""},
		{"percentencode multi", "${node:percentencode}", "sql", `%7Bn-1%2Co%27b%7D`, ""},
		{"percentencode single", "${model:percentencode} ${search:percentencode}", "sql", `fraud `, ""},
		{"percentencode hostile", "${hostile:percentencode}", "sql", `%5C%27%29%20--%20%C3%A9~`, ""},
		{"single value", "model = '$model' AND m = '${model}' AND [[model]]", "sql", "model = 'fraud' AND m = 'fraud' AND fraud", ""},
		{"empty text", "position(msg, ${search:sqlstring})", "sql", "position(msg, '')", ""},
		{"promql regex", `x{Hostname=~"$node"}[$__rate_interval]`, "promql", `x{Hostname=~"(n-1|o'b)"}[105s]`, ""},
		{"promql escape", `x{m=~"${model:regex}"}`, "promql", `x{m=~"fraud"}`, ""},
		{"grafana interval", "[$__interval]", "promql", "[90s]", ""},
		{"multi without format", "node IN ($node)", "sql", "", "needs a format"},
		{"undefined variable", "x = ${nodes:singlequote}", "sql", "", "$nodes is not defined"},
		{"unknown macro", "$__timefilter(ts)", "sql", "", "unknown macro $__timefilter"},
		{"wrong arguments", "$__timeFilter(a, b)", "sql", "", "2 arguments, want 1"},
		{"nested parentheses", "$__timeFilter(toDateTime(ts))", "sql", "", "not portable"},
		{"unclosed", "$__timeFilter(ts", "sql", "", "unclosed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got string
			var err error
			if c.lang == "promql" {
				got, err = ExpandVariables(c.in, r, c.lang)
			} else {
				got, err = ExpandSQL(c.in, r)
			}
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one mentioning %q", err, c.err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v\nwant %q", got, err, c.want)
			}
		})
	}
}

// The dashboards avoid $__timeInterval: it expands to toStartOfInterval,
// which ClickHouse 18.16 lacks. bucket() must give the same buckets, which
// for second intervals both align to the Unix epoch.
func TestNoTimeIntervalMacro(t *testing.T) {
	for _, b := range boards() {
		for _, p := range b.d.Panels {
			for _, tg := range p.Targets {
				if strings.Contains(tg.RawSQL, "$__timeInterval") {
					t.Errorf("%s / %s uses $__timeInterval; use bucket() so that it runs on ClickHouse 18.16", b.d.UID, p.Title)
				}
			}
		}
	}
}
