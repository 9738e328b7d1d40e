package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/cost"
	"github.com/fleetwatch/fleetwatch/storage"
)

// runCost is fleetctl cost: GPU-hours and cost for a period from a price
// book and allocation intervals, grouped as asked. The intervals come from
// files, or with --clickhouse from the held GPU-hours in ClickHouse (as
// the analyzer's cost detectors read them, analytics/cost.Store).
func runCost(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "cost")
	def := cost.NewDefaultAttributionConfig()
	prices := fs.String("prices", "", "price book (YAML: currency, prices: gpu_model, cluster, purchase, effective, per_gpu_hour)")
	gpus := fs.String("gpus", "", "provisioned GPUs (CSV: id,gpu_model,cluster,purchase and optional from,to (empty = unbounded), fraction (a MIG instance's share of its GPU))")
	allocs := fs.String("allocations", "", "allocation intervals (CSV: gpu,from,to and any of namespace,pod,team,model,model_version,job,cost_center,user,account,system)")
	volume := fs.String("volume", "", "query volume per group for --shared query_volume (CSV: key,volume)")
	from := fs.String("from", "", "period start (RFC 3339 or YYYY-MM-DD, UTC)")
	to := fs.String("to", "", "period end, exclusive (RFC 3339 or YYYY-MM-DD, UTC)")
	by := fs.String("by", string(def.GroupBy[0]), "group by, comma-separated: team, model, model_version, job, namespace, pod, cost_center, user, account (a Slurm job's hpc_user, hpc_account)")
	shared := fs.String("shared", string(def.Shared), "split of shared cost (unallocated GPUs, system pods): gpu_hours, query_volume, equal or separate")
	format := fs.String("format", "table", "output: table, csv or json")
	fromCH := fs.Bool("clickhouse", false, "read GPUs and allocations (held GPU-hours) from ClickHouse (--dsn, --config) instead of --gpus and --allocations; --shared query_volume then takes each model's requests from inference_events (with --by model)")
	purchase := fs.String("purchase", string(cost.OnDemand), "with --clickhouse: purchase type of a GPU whose series carry no purchase label")
	rollUp := fs.Bool("roll-up", false, "with --clickhouse: roll the hours of [--from, --to) not yet rolled up into gpu_held_1h (the analyzer's hourly cost_rollup pass, for history before it ran) and report how many; no --prices needed")
	system := fs.String("system-namespaces", strings.Join(cost.NewDefaultStoreConfig().SystemNamespaces, ","), "with --roll-up: the system namespaces (as the analyzer's cost.system_namespaces)")
	resolve := chFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *rollUp {
		return costRollUp(ctx, e, fs, resolve, *fromCH, *from, *to, *system)
	}
	required := []struct{ name, v string }{{"prices", *prices}, {"from", *from}, {"to", *to}}
	if !*fromCH {
		required = append(required, struct{ name, v string }{"gpus", *gpus}, struct{ name, v string }{"allocations", *allocs})
	}
	for _, f := range required {
		if f.v == "" {
			return badUsage(fs, "--%s is required", f.name)
		}
	}
	if *fromCH && (*gpus != "" || *allocs != "" || *volume != "") {
		return badUsage(fs, "--clickhouse reads GPUs, allocations and volume from ClickHouse: drop --gpus, --allocations and --volume")
	}
	if err := checkFormat(fs, *format, "table", "csv", "json"); err != nil {
		return err
	}
	start, err := parseWhen(*from)
	if err != nil {
		return badUsage(fs, "--from: %v", err)
	}
	end, err := parseWhen(*to)
	if err != nil {
		return badUsage(fs, "--to: %v", err)
	}
	if !end.After(start) {
		return badUsage(fs, "--to %s is not after --from %s", *to, *from)
	}
	cfg := cost.AttributionConfig{Shared: cost.SharedRule(*shared)}
	for _, d := range strings.Split(*by, ",") {
		cfg.GroupBy = append(cfg.GroupBy, cost.Dimension(strings.TrimSpace(d)))
	}
	if err := cfg.Validate(); err != nil {
		return badUsage(fs, "bad flags: %v", err)
	}
	if cfg.Shared == cost.SharedByQueryVolume && *volume == "" && !*fromCH {
		return badUsage(fs, "--shared query_volume needs --volume")
	}
	book, err := cost.LoadPriceBook(*prices)
	if err != nil {
		return err
	}
	if *fromCH {
		sc := cost.NewDefaultStoreConfig()
		sc.Purchase = cost.Purchase(*purchase)
		if err := sc.Validate(); err != nil {
			return badUsage(fs, "bad flags: %v", err)
		}
		a, err := costFromClickHouse(ctx, e, resolve, sc, book, cfg, start, end)
		if err != nil {
			return err
		}
		return writeCost(e, a, cfg, book, *format)
	}
	var in cost.AttributeInput
	if in.GPUs, err = readGPUs(*gpus); err != nil {
		return err
	}
	if in.Allocations, err = readAllocations(*allocs); err != nil {
		return err
	}
	if *volume != "" {
		if in.Volume, err = readVolume(*volume); err != nil {
			return err
		}
	}
	a, err := cost.Attribute(book, cfg, in, start, end)
	if err != nil {
		return err
	}
	return writeCost(e, a, cfg, book, *format)
}

// costRollUp is fleetctl cost --clickhouse --roll-up: the hourly cost
// pass over a period, for history the analyzer's cost_rollup has not
// rolled up (a period with hours missing is read from raw samples, slow at
// fleet scale).
func costRollUp(ctx context.Context, e *env, fs *flag.FlagSet, resolve func() (storage.Config, error), fromCH bool, from, to, system string) error {
	if !fromCH {
		return badUsage(fs, "--roll-up needs --clickhouse")
	}
	if from == "" || to == "" {
		return badUsage(fs, "--roll-up needs --from and --to")
	}
	start, err := parseWhen(from)
	if err != nil {
		return badUsage(fs, "--from: %v", err)
	}
	end, err := parseWhen(to)
	if err != nil {
		return badUsage(fs, "--to: %v", err)
	}
	sc := cost.NewDefaultStoreConfig()
	sc.SystemNamespaces = nil
	for _, ns := range strings.Split(system, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			sc.SystemNamespaces = append(sc.SystemNamespaces, ns)
		}
	}
	chCfg, err := resolve()
	if err != nil {
		return err
	}
	c, err := open(ctx, chCfg, logger(e))
	if err != nil {
		return err
	}
	defer c.Close()
	store, err := cost.NewStore(c, sc)
	if err != nil {
		return err
	}
	t0 := time.Now()
	n, err := store.RollUp(ctx, start, end)
	if err != nil {
		return fmt.Errorf("rolled up %d hours, then: %w", n, err)
	}
	total := int(end.Truncate(time.Hour).Sub(start.Truncate(time.Hour)).Hours())
	fmt.Fprintf(e.stdout, "rolled up %d hours (%d already) in %v\n", n, total-n, time.Since(t0).Round(time.Millisecond))
	return nil
}

// costFromClickHouse attributes [start, end) from the held GPU-hours in
// ClickHouse.
func costFromClickHouse(ctx context.Context, e *env, resolve func() (storage.Config, error), sc cost.StoreConfig, book *cost.PriceBook,
	cfg cost.AttributionConfig, start, end time.Time) (cost.Attribution, error) {
	chCfg, err := resolve()
	if err != nil {
		return cost.Attribution{}, err
	}
	c, err := open(ctx, chCfg, logger(e))
	if err != nil {
		return cost.Attribution{}, err
	}
	defer c.Close()
	store, err := cost.NewStore(c, sc)
	if err != nil {
		return cost.Attribution{}, err
	}
	p, err := store.Read(ctx, start, end)
	if err != nil {
		return cost.Attribution{}, err
	}
	return p.Attribute(book, cfg)
}

// writeCost writes an attribution in format.
func writeCost(e *env, a cost.Attribution, cfg cost.AttributionConfig, book *cost.PriceBook, format string) error {
	switch format {
	case "json":
		return writeJSON(e.stdout, costJSON(a, cfg, book.Currency()))
	case "csv":
		return writeCostCSV(e.stdout, a, cfg)
	}
	writeCostTable(e.stdout, a, cfg, book.Currency())
	return nil
}

// parseWhen reads RFC 3339 or a UTC date.
func parseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor YYYY-MM-DD", s)
	}
	return t, nil
}

// readCSV reads a CSV file with a header, checks the columns named in want
// are there and calls row with a lookup by column name.
func readCSV(path string, want []string, row func(line int, get func(string) string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		return fmt.Errorf("%s: header: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(h)] = i
	}
	for _, w := range want {
		if _, ok := col[w]; !ok {
			return fmt.Errorf("%s: no column %q (columns: %s)", path, w, strings.Join(head, ", "))
		}
	}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		if err := row(line, get); err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
	}
}

// optTime reads an optional time; empty is the zero time.
func optTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return parseWhen(s)
}

func readGPUs(path string) ([]cost.GPU, error) {
	var out []cost.GPU
	err := readCSV(path, []string{"id", "gpu_model", "cluster", "purchase"}, func(_ int, get func(string) string) error {
		g := cost.GPU{ID: get("id"), PriceKey: cost.PriceKey{GPUModel: get("gpu_model"), Cluster: get("cluster"), Purchase: cost.Purchase(get("purchase"))}}
		var err error
		if g.From, err = optTime(get("from")); err != nil {
			return fmt.Errorf("from: %w", err)
		}
		if g.To, err = optTime(get("to")); err != nil {
			return fmt.Errorf("to: %w", err)
		}
		if f := get("fraction"); f != "" {
			if g.Fraction, err = strconv.ParseFloat(f, 64); err != nil {
				return fmt.Errorf("fraction: %w", err)
			}
		}
		out = append(out, g)
		return nil
	})
	return out, err
}

func readAllocations(path string) ([]cost.Allocation, error) {
	var out []cost.Allocation
	err := readCSV(path, []string{"gpu", "from", "to"}, func(_ int, get func(string) string) error {
		a := cost.Allocation{GPU: get("gpu"), Tags: cost.Tags{Namespace: get("namespace"), Pod: get("pod"), Team: get("team"),
			Model: get("model"), ModelVersion: get("model_version"), Job: get("job"), CostCenter: get("cost_center"),
			User: get("user"), Account: get("account")}}
		var err error
		if a.From, err = parseWhen(get("from")); err != nil {
			return fmt.Errorf("from: %w", err)
		}
		if a.To, err = parseWhen(get("to")); err != nil {
			return fmt.Errorf("to: %w", err)
		}
		if s := get("system"); s != "" {
			if a.System, err = strconv.ParseBool(s); err != nil {
				return fmt.Errorf("system: %w", err)
			}
		}
		out = append(out, a)
		return nil
	})
	return out, err
}

func readVolume(path string) (map[string]float64, error) {
	out := map[string]float64{}
	err := readCSV(path, []string{"key", "volume"}, func(_ int, get func(string) string) error {
		v, err := strconv.ParseFloat(get("volume"), 64)
		if err != nil {
			return fmt.Errorf("volume: %w", err)
		}
		out[get("key")] = v
		return nil
	})
	return out, err
}

func byHeader(cfg cost.AttributionConfig) string {
	var s []string
	for _, d := range cfg.GroupBy {
		s = append(s, string(d))
	}
	return strings.Join(s, "/")
}

func writeCostTable(w io.Writer, a cost.Attribution, cfg cost.AttributionConfig, currency string) {
	fmt.Fprintf(w, "period %s – %s, shared cost split: %s, %s\n\n", a.From.Format(time.RFC3339), a.To.Format(time.RFC3339), a.Rule, currency)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tgpu_hours\tdirect\tshared\ttotal\t\n", byHeader(cfg))
	var h, d, s, t float64
	for _, r := range a.Rows {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.2f\t\n", r.Key, r.GPUHours, r.Direct, r.Shared, r.Total)
		h, d, s, t = h+r.GPUHours, d+r.Direct, s+r.Shared, t+r.Total
	}
	fmt.Fprintf(tw, "total\t%.2f\t%.2f\t%.2f\t%.2f\t\n", h, d, s, t)
	tw.Flush()
	fmt.Fprintf(w, "\nprovisioned %.2f GPU-hours, %.2f; unallocated %.2f GPU-hours, %.2f; system pods %.2f GPU-hours, %.2f\n",
		a.ProvisionedGPUHours, a.ProvisionedCost, a.UnallocatedGPUHours, a.UnallocatedCost, a.SystemGPUHours, a.SystemCost)
}

func writeCostCSV(w io.Writer, a cost.Attribution, cfg cost.AttributionConfig) error {
	cw := csv.NewWriter(w)
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	cw.Write([]string{byHeader(cfg), "gpu_hours", "direct", "shared", "total"})
	for _, r := range a.Rows {
		cw.Write([]string{r.Key, f(r.GPUHours), f(r.Direct), f(r.Shared), f(r.Total)})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

type costReport struct {
	From                time.Time  `json:"from"`
	To                  time.Time  `json:"to"`
	Currency            string     `json:"currency"`
	GroupBy             string     `json:"group_by"`
	Shared              string     `json:"shared"`
	Rows                []cost.Row `json:"rows"`
	ProvisionedGPUHours float64    `json:"provisioned_gpu_hours"`
	ProvisionedCost     float64    `json:"provisioned_cost"`
	UnallocatedGPUHours float64    `json:"unallocated_gpu_hours"`
	UnallocatedCost     float64    `json:"unallocated_cost"`
	SystemGPUHours      float64    `json:"system_gpu_hours"`
	SystemCost          float64    `json:"system_cost"`
}

func costJSON(a cost.Attribution, cfg cost.AttributionConfig, currency string) costReport {
	return costReport{From: a.From, To: a.To, Currency: currency, GroupBy: byHeader(cfg), Shared: string(a.Rule), Rows: a.Rows,
		ProvisionedGPUHours: a.ProvisionedGPUHours, ProvisionedCost: a.ProvisionedCost, UnallocatedGPUHours: a.UnallocatedGPUHours,
		UnallocatedCost: a.UnallocatedCost, SystemGPUHours: a.SystemGPUHours, SystemCost: a.SystemCost}
}
