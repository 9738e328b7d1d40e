package drift

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleetwatch/fleetwatch/analytics/engine"
	"github.com/fleetwatch/fleetwatch/fleet"
	"github.com/fleetwatch/fleetwatch/lib/profile"
	"github.com/fleetwatch/fleetwatch/storage"
	"github.com/fleetwatch/fleetwatch/storage/chsql"
)

// Reference is an explicit reference window for a model version.
type Reference struct {
	Model   string    `yaml:"model"`
	Version string    `yaml:"version"`
	Start   time.Time `yaml:"start"`
	End     time.Time `yaml:"end"`
}

// FileReference is a training-data file (CSV or Parquet; columns named
// like the model's features) that profiles a model version.
type FileReference struct {
	Model   string `yaml:"model"`
	Version string `yaml:"version"`
	Path    string `yaml:"path"`
}

// Config configures the drift detector.
type Config struct {
	Name     string        `yaml:"name"`
	Interval time.Duration `yaml:"interval"`
	// Lateness overrides the engine's allowance when set.
	Lateness time.Duration `yaml:"lateness"`
	// Bins and TopK shape new profiles.
	Bins int `yaml:"bins"`
	TopK int `yaml:"top_k"`
	// MinSamples is the fewest current values a column needs to be tested.
	MinSamples int `yaml:"min_samples"`
	// FDR is the Benjamini–Hochberg level across every column of a pass.
	FDR float64 `yaml:"fdr"`
	// Investigate and Action are the PSI bands.
	Investigate float64 `yaml:"investigate"`
	Action      float64 `yaml:"action"`
	// Replicates of the Monte Carlo p-value for small windows.
	Replicates int `yaml:"replicates"`
	// CUSUMK, CUSUMH, MinShift: the sequential detector (see SequentialConfig).
	CUSUMK   float64 `yaml:"cusum_k"`
	CUSUMH   float64 `yaml:"cusum_h"`
	MinShift float64 `yaml:"min_shift"`
	// SequentialMemory is how far back a restart looks for CUSUM state.
	SequentialMemory time.Duration `yaml:"sequential_memory"`
	// DeploymentReference is the length of the reference window that starts
	// at a version's deployment (its first hours); used for every version
	// without an explicit reference or a file.
	DeploymentReference time.Duration `yaml:"deployment_reference"`
	// FirstSeenLookback bounds the search for a version's first event when
	// model_deployments has no marker for it.
	FirstSeenLookback time.Duration   `yaml:"first_seen_lookback"`
	References        []Reference     `yaml:"references"`
	Files             []FileReference `yaml:"files"`
	// Concurrency is how many model versions are queried at once.
	Concurrency int `yaml:"concurrency"`
	// Prebinned uses the counts the collector binned at ingest (drift_bins)
	// for every model version they fully cover, and bins the rest in SQL.
	Prebinned bool `yaml:"prebinned"`
	// Shard limits the detector to the models of one shard, when analyzers
	// share the fleet (zero: every model). Benjamini–Hochberg then runs
	// across the shard's columns: each shard's pass keeps the FDR level.
	Shard fleet.Shard `yaml:"-"`
}

// NewDefaultConfig returns a 5-minute detector: 10 bins, top 20 categories,
// FDR 1%, bands 0.1/0.25, references from each deployment's first 2 hours.
func NewDefaultConfig() Config {
	seq := NewDefaultSequentialConfig()
	tc := NewDefaultTestConfig()
	return Config{Name: "drift", Interval: 5 * time.Minute, Bins: 10, TopK: 20, MinSamples: 30, FDR: 0.01,
		Investigate: tc.Investigate, Action: tc.Action, Replicates: tc.Replicates,
		CUSUMK: seq.K, CUSUMH: seq.H, MinShift: seq.MinShift, SequentialMemory: 7 * 24 * time.Hour,
		DeploymentReference: 2 * time.Hour, FirstSeenLookback: 24 * time.Hour, Concurrency: 2, Prebinned: true}
}

func (c Config) testConfig() TestConfig {
	tc := NewDefaultTestConfig()
	tc.Investigate, tc.Action, tc.Replicates = c.Investigate, c.Action, c.Replicates
	return tc
}

func (c Config) sequential() SequentialConfig {
	return SequentialConfig{K: c.CUSUMK, H: c.CUSUMH, MinShift: c.MinShift}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	errs := engine.CheckSchedule(c.Name, c.Interval, c.Lateness)
	if err := (profile.BuildConfig{Bins: c.Bins, TopK: c.TopK}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MinSamples < 1 {
		errs = append(errs, fmt.Errorf("min_samples: %d, want at least 1", c.MinSamples))
	}
	if !(c.FDR > 0 && c.FDR < 1) {
		errs = append(errs, fmt.Errorf("fdr: %v, want 0 < fdr < 1", c.FDR))
	}
	if err := c.testConfig().Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.sequential().Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.SequentialMemory < c.Interval {
		errs = append(errs, fmt.Errorf("sequential_memory: %v is shorter than the interval", c.SequentialMemory))
	}
	if c.DeploymentReference < c.Interval {
		errs = append(errs, fmt.Errorf("deployment_reference: %v is shorter than the interval", c.DeploymentReference))
	}
	if c.FirstSeenLookback <= 0 {
		errs = append(errs, fmt.Errorf("first_seen_lookback: %v must be positive", c.FirstSeenLookback))
	}
	for i, r := range c.References {
		if r.Model == "" || r.Version == "" || !r.End.After(r.Start) {
			errs = append(errs, fmt.Errorf("references[%d]: want model, version and start < end", i))
		}
	}
	for i, f := range c.Files {
		if f.Model == "" || f.Version == "" || f.Path == "" {
			errs = append(errs, fmt.Errorf("files[%d]: want model, version and path", i))
		}
	}
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency: %d, want at least 1", c.Concurrency))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("drift: %w", err)
	}
	return nil
}

// versionKey identifies a model version.
type versionKey struct{ model, version string }

// versionProfiles are one version's profiles by kind, in feature order.
type versionProfiles struct {
	numeric, categorical []*profile.Profile
}

// all lists the numeric profiles, then the categorical ones.
func (vp *versionProfiles) all() []*profile.Profile {
	return append(slices.Clone(vp.numeric), vp.categorical...)
}

// FileProfiler builds profiles from a training-data file; package
// tabular's ProfileFile is the implementation the analyzer wires in.
type FileProfiler func(path string, cfg profile.BuildConfig) ([]*profile.Profile, error)

// Detector is the PSI drift detector for the analytics engine. Each window
// it bins every active model version's features and outputs into their
// profiles in ClickHouse, tests every column, controls the FDR across the
// pass, updates each column's CUSUM, writes drift_scores and returns the
// detections. Profiles are built once (from a version's first hours, an
// explicit window, or a file), stored in drift_profiles and reused.
type Detector struct {
	cfg    Config
	client *storage.Client // telemetry, and the reference profiles at Restore
	// results holds what the detector writes and reads back (profiles it
	// builds, drift_scores with the CUSUM state): client unless
	// WriteResultsTo moved it (backtests).
	results  *storage.Client
	writer   *storage.Writer
	tester   *Tester
	files    FileProfiler
	log      *slog.Logger
	profiles map[versionKey]*versionProfiles
	cusum    map[string]*CUSUM
	deployed map[versionKey]time.Time
	mu       sync.Mutex
	stats    map[string]uint64
}

// NewDetector validates cfg; files may be nil when cfg.Files is empty.
func NewDetector(cfg Config, c *storage.Client, files FileProfiler, log *slog.Logger) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Files) > 0 && files == nil {
		return nil, errors.New("drift: files are configured but no file profiler was given")
	}
	t, err := NewTester(cfg.testConfig())
	if err != nil {
		return nil, err
	}
	w, err := c.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Detector{cfg: cfg, client: c, results: c, writer: w, tester: t, files: files, log: log,
		profiles: map[versionKey]*versionProfiles{}, cusum: map[string]*CUSUM{}, deployed: map[versionKey]time.Time{},
		stats: map[string]uint64{}}, nil
}

// WriteResultsTo makes the detector write the profiles it builds and its
// scores to r's database, and restore its CUSUM state from there, while it
// reads telemetry and the stored reference profiles from the client given
// to NewDetector (a backtest replaying stored traffic into a database of
// its own).
func (d *Detector) WriteResultsTo(r *storage.Client) error {
	w, err := r.NewWriter(storage.NewDefaultWriterConfig())
	if err != nil {
		return err
	}
	d.results, d.writer = r, w
	return nil
}

// Name implements fleet.Detector.
func (d *Detector) Name() string { return d.cfg.Name }

// Interval implements fleet.Detector.
func (d *Detector) Interval() time.Duration { return d.cfg.Interval }

// Lateness implements fleet.LatenessOverride.
func (d *Detector) Lateness() time.Duration { return d.cfg.Lateness }

// Stats counts tests, skipped columns by reason, and profiles built.
func (d *Detector) Stats() map[string]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.stats)
}

func (d *Detector) count(what string, n int) {
	d.mu.Lock()
	d.stats[what] += uint64(n)
	d.mu.Unlock()
}

// Profiles returns a version's stored profiles (nil when it has none yet).
func (d *Detector) Profiles(model, version string) []*profile.Profile {
	vp := d.profiles[versionKey{model, version}]
	if vp == nil {
		return nil
	}
	return vp.all()
}

// Sequential returns the CUSUM state of a column (key model/version/feature).
func (d *Detector) Sequential(key string) (CUSUM, bool) {
	c, ok := d.cusum[key]
	if !ok {
		return CUSUM{}, false
	}
	return *c, true
}

// Restore implements fleet.Restorer: it loads the stored profiles, builds
// missing ones from the configured files, and restores each column's CUSUM
// as of the last window.
func (d *Detector) Restore(ctx context.Context, last fleet.Window) error {
	d.profiles = map[versionKey]*versionProfiles{}
	d.cusum = map[string]*CUSUM{}
	stored, err := storage.LoadDriftProfiles(ctx, d.client)
	if err != nil {
		return err
	}
	d.addProfiles(stored)
	for _, f := range d.cfg.Files {
		if d.profiles[versionKey{f.Model, f.Version}] != nil || !d.inShard(f.Model) {
			continue
		}
		ps, err := d.files(f.Path, profile.BuildConfig{Bins: d.cfg.Bins, TopK: d.cfg.TopK})
		if err != nil {
			return fmt.Errorf("profile %s %s from %s: %w", f.Model, f.Version, f.Path, err)
		}
		for _, p := range ps {
			p.Model, p.ModelVersion, p.Source, p.Detail = f.Model, f.Version, profile.SourceFile, f.Path
		}
		if err := d.store(ctx, ps); err != nil {
			return err
		}
	}
	if last.IsZero() {
		return nil
	}
	var res chsql.Result
	model, version, feature := res.Str("model"), res.Str("model_version"), res.Str("feature")
	s, run, excess := res.F64("s"), res.Int("run"), res.F64("excess")
	err = res.ForRows(ctx, d.results, CUSUMStateSQL(d.results.Config().Database, last.End, d.cfg.SequentialMemory, d.cfg.Shard), func(r int) {
		key := model.At(r) + "/" + version.At(r) + "/" + feature.At(r)
		d.cusum[key] = &CUSUM{S: s.At(r), Run: int(run.At(r)), Excess: excess.At(r)}
	})
	if err != nil {
		return fmt.Errorf("restore drift CUSUM: %w", err)
	}
	return nil
}

// inShard reports whether model is one of the detector's shard.
func (d *Detector) inShard(model string) bool {
	sh := d.cfg.Shard
	return sh.All() || chsql.ShardOf(model, sh.Of) == sh.Index
}

func (d *Detector) addProfiles(ps []*profile.Profile) {
	for _, p := range ps {
		k := versionKey{p.Model, p.ModelVersion}
		vp := d.profiles[k]
		if vp == nil {
			vp = &versionProfiles{}
			d.profiles[k] = vp
		}
		if p.Kind == profile.Numeric {
			vp.numeric = append(vp.numeric, p)
		} else {
			vp.categorical = append(vp.categorical, p)
		}
	}
}

func (d *Detector) store(ctx context.Context, ps []*profile.Profile) error {
	for _, p := range ps {
		if err := p.Validate(); err != nil {
			return err
		}
	}
	if len(ps) > 0 {
		if err := d.writer.Write(ctx, storage.DriftProfilesBlock(ps)); err != nil {
			return fmt.Errorf("store drift profiles: %w", err)
		}
	}
	d.addProfiles(ps)
	d.count("profiles_built", len(ps))
	return nil
}

// tested is one column's result in a pass.
type tested struct {
	p       *profile.Profile
	r       Result
	q       float64
	flagged bool
	alarm   bool
	cusum   CUSUM
}

// Evaluate implements fleet.Detector.
func (d *Detector) Evaluate(ctx context.Context, w fleet.Window) ([]fleet.Detection, error) {
	active, err := d.activeVersions(ctx, w)
	if err != nil {
		return nil, err
	}
	var jobs []*versionProfiles
	var keys []versionKey
	for _, k := range active.keys {
		vp, err := d.ensureProfiles(ctx, k, w)
		if err != nil {
			return nil, err
		}
		if vp == nil {
			d.count("versions_without_profile", 1)
			continue
		}
		jobs, keys = append(jobs, vp), append(keys, k)
	}
	hists := make([]map[*profile.Profile][]float64, len(jobs))
	errs := make([]error, len(jobs))
	if err := d.prebinnedCounts(ctx, w, keys, jobs, active, hists); err != nil {
		return nil, err
	}
	sem := make(chan struct{}, d.cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range jobs {
		if hists[i] != nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			hists[i], errs[i] = d.windowCounts(ctx, keys[i], jobs[i], w)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var results []*tested
	for i, vp := range jobs {
		for _, p := range vp.all() {
			cur, ok := hists[i][p]
			if !ok {
				continue // the column had no values in this window
			}
			if sum(cur) < float64(d.cfg.MinSamples) {
				d.count("skipped_insufficient_samples", 1)
				continue
			}
			r, err := d.tester.Test(p, cur)
			if err != nil {
				return nil, err
			}
			results = append(results, &tested{p: p, r: r})
		}
	}
	d.count("tests", len(results))
	d.decide(results)
	if len(results) > 0 {
		if err := d.writer.Write(ctx, scoresBlock(results, w)); err != nil {
			return nil, fmt.Errorf("write drift_scores: %w", err)
		}
	}
	var out []fleet.Detection
	for _, t := range results {
		if t.flagged || t.alarm {
			out = append(out, d.detection(t, w))
		}
	}
	return out, nil
}

// decide applies Benjamini–Hochberg across the pass and the CUSUMs.
func (d *Detector) decide(results []*tested) {
	rs := make([]Result, len(results))
	for i, t := range results {
		rs[i] = t.r
	}
	flagged, q := Flag(rs, d.cfg.FDR)
	seq := d.cfg.sequential()
	for i, t := range results {
		t.q, t.flagged = q[i], flagged[i]
		c := d.cusum[t.p.Key()]
		if c == nil {
			c = &CUSUM{}
			d.cusum[t.p.Key()] = c
		}
		t.alarm = c.Update(t.r, seq)
		t.cusum = *c
	}
}

// activeVersions returns the model versions with events in the window and
// their event counts, in model and version order.
func (d *Detector) activeVersions(ctx context.Context, w fleet.Window) (*orderedCounts, error) {
	out := &orderedCounts{n: map[versionKey]int64{}}
	var res chsql.Result
	model, version, events := res.Str("model"), res.Str("model_version"), res.Int("events")
	err := res.ForRows(ctx, d.client, ActiveVersionsSQL(d.client.Config().Database, w, d.cfg.Shard), func(r int) {
		k := versionKey{model.At(r), version.At(r)}
		out.keys = append(out.keys, k)
		out.n[k] = events.At(r)
	})
	return out, err
}

// orderedCounts are event counts per model version, in query order.
type orderedCounts struct {
	keys []versionKey
	n    map[versionKey]int64
}

// ensureProfiles returns a version's profiles, building them once their
// reference window is complete; nil while it is not.
func (d *Detector) ensureProfiles(ctx context.Context, k versionKey, w fleet.Window) (*versionProfiles, error) {
	if vp := d.profiles[k]; vp != nil {
		return vp, nil
	}
	ref, source, err := d.referenceWindow(ctx, k, w)
	if err != nil || ref.IsZero() || ref.End.After(w.End) {
		return nil, err
	}
	ps, err := d.buildProfiles(ctx, k, ref)
	if err != nil {
		return nil, fmt.Errorf("build profiles for %s %s: %w", k.model, k.version, err)
	}
	for _, p := range ps {
		p.Source, p.RefStart, p.RefEnd, p.CreatedAt = source, ref.Start, ref.End, ref.End
	}
	if len(ps) == 0 {
		d.log.Warn("reference window has no events; the version is not checked", "model", k.model, "version", k.version, "reference", ref)
		d.profiles[k] = &versionProfiles{}
		return d.profiles[k], nil
	}
	if err := d.store(ctx, ps); err != nil {
		return nil, err
	}
	d.log.Info("built drift profiles", "model", k.model, "version", k.version, "columns", len(ps), "source", source, "reference", ref)
	return d.profiles[k], nil
}

// referenceWindow is the configured window for a version, or the first
// DeploymentReference after its deployment (or first event).
func (d *Detector) referenceWindow(ctx context.Context, k versionKey, w fleet.Window) (fleet.Window, string, error) {
	for _, r := range d.cfg.References {
		if r.Model == k.model && r.Version == k.version {
			return fleet.Window{Start: r.Start.UTC(), End: r.End.UTC()}, profile.SourceWindow, nil
		}
	}
	t, ok := d.deployed[k]
	if !ok {
		db := d.client.Config().Database
		if err := d.client.QueryScalar(ctx, DeploymentTimeSQL(db, k.model, k.version), &t); err != nil {
			return fleet.Window{}, "", err
		}
		if t.Unix() <= 0 {
			if err := d.client.QueryScalar(ctx, FirstSeenSQL(db, k.model, k.version, w.End.Add(-d.cfg.FirstSeenLookback), w.End), &t); err != nil {
				return fleet.Window{}, "", err
			}
		}
		if t.Unix() <= 0 {
			return fleet.Window{}, "", nil
		}
		t = t.UTC()
		d.deployed[k] = t
	}
	return fleet.Window{Start: t, End: t.Add(d.cfg.DeploymentReference)}, profile.SourceDeployment, nil
}

// buildProfiles profiles every column of a version over ref: edges and
// categories from ClickHouse, then the reference counts with the very query
// that counts current windows.
func (d *Detector) buildProfiles(ctx context.Context, k versionKey, ref fleet.Window) ([]*profile.Profile, error) {
	db := d.client.Config().Database
	var numeric, categorical []*profile.Profile
	var quantiles chsql.Result
	name, finite, q, top := quantiles.Str("n"), quantiles.Int("finite"), quantiles.Floats("q"), quantiles.F64("top")
	err := quantiles.ForRows(ctx, d.client, NumericQuantilesSQL(db, k.model, k.version, ref, profile.QuantileLevels(d.cfg.Bins)), func(r int) {
		p := &profile.Profile{Model: k.model, ModelVersion: k.version, Feature: name.At(r), Kind: profile.Numeric}
		if finite.At(r) > 0 {
			p.Edges = profile.NumericEdges(q.At(r), top.At(r))
		}
		numeric = append(numeric, p)
	})
	if err != nil {
		return nil, err
	}
	counts := map[string]map[string]int64{}
	var order []string
	var cats chsql.Result
	catName, catValue, catCount := cats.Str("n"), cats.Str("v"), cats.Int("c")
	err = cats.ForRows(ctx, d.client, CategoryCountsSQL(db, k.model, k.version, ref, d.cfg.TopK), func(r int) {
		n, v := catName.At(r), catValue.At(r)
		if counts[n] == nil {
			counts[n] = map[string]int64{}
			order = append(order, n)
		}
		if v != "" {
			counts[n][v] = catCount.At(r)
		}
	})
	if err != nil {
		return nil, err
	}
	for _, n := range order {
		p := profile.CategoricalFromCounts(counts[n], 0, d.cfg.TopK)
		p.Model, p.ModelVersion, p.Feature = k.model, k.version, n
		categorical = append(categorical, p)
	}
	vp := &versionProfiles{numeric: numeric, categorical: categorical}
	h, err := d.windowCounts(ctx, k, vp, ref)
	if err != nil {
		return nil, err
	}
	out := append(numeric, categorical...)
	for _, p := range out {
		c := h[p]
		if c == nil {
			c = make([]float64, p.Bins()+1)
		}
		p.Counts, p.Missing = c[:len(c)-1], c[len(c)-1]
	}
	return out, nil
}

// prebinnedCounts fills hists[i] from drift_bins for every version whose
// profiles' ingest-time counts cover each of its events in the window; the
// others stay nil for windowCounts. Minutes are the unit of drift_bins, so
// a window that does not start and end on a minute is binned in SQL.
func (d *Detector) prebinnedCounts(ctx context.Context, w fleet.Window, keys []versionKey, jobs []*versionProfiles, active *orderedCounts, hists []map[*profile.Profile][]float64) error {
	if !d.cfg.Prebinned || len(jobs) == 0 || w.Start.Unix()%60 != 0 || w.End.Unix()%60 != 0 {
		return nil
	}
	type column struct {
		versionKey
		feature string
		profile uint64
	}
	binned := map[column]map[int]int64{}
	var res chsql.Result
	model, version, feature, fp, bin, n := res.Str("model"), res.Str("model_version"), res.Str("feature"), res.Int("profile"), res.Int("bin"), res.Int("n")
	err := res.ForRows(ctx, d.client, PrebinnedSQL(d.client.Config().Database, w, d.cfg.Shard), func(r int) {
		c := column{versionKey{model.At(r), version.At(r)}, feature.At(r), uint64(fp.At(r))}
		if binned[c] == nil {
			binned[c] = map[int]int64{}
		}
		binned[c][int(bin.At(r))] = n.At(r)
	})
	if err != nil {
		return fmt.Errorf("drift_bins: %w", err)
	}
	for i, vp := range jobs {
		k := keys[i]
		out := map[*profile.Profile][]float64{}
		complete := true
		for _, p := range vp.all() {
			bins := binned[column{k, p.Feature, p.Fingerprint()}]
			if bins[-1] != active.n[k] {
				complete = false
				break
			}
			c := make([]float64, p.Bins()+1)
			total := 0.0
			for b, n := range bins {
				if b >= 0 && b < len(c) {
					c[b] = float64(n)
					total += float64(n)
				}
			}
			if total > 0 {
				out[p] = c
			}
		}
		if complete {
			hists[i] = out
			d.count("versions_prebinned", 1)
		} else {
			d.count("versions_binned_in_sql", 1)
		}
	}
	return nil
}

// windowCounts bins one version's window into its profiles: per profile,
// the counts per bin and then the missing count. Profiles without values in
// the window are absent from the map.
func (d *Detector) windowCounts(ctx context.Context, k versionKey, vp *versionProfiles, w fleet.Window) (map[*profile.Profile][]float64, error) {
	out := map[*profile.Profile][]float64{}
	db := d.client.Config().Database
	if len(vp.numeric) > 0 {
		var res chsql.Result
		fi, rowsCol, missingCol, posinfCol := res.Int("fi"), res.Int("rows"), res.Int("missing"), res.Int("posinf")
		var geCols []*chsql.IntCol // ge<k>: the values >= edge k
		for _, p := range vp.numeric {
			for len(geCols) < len(p.Edges) {
				geCols = append(geCols, res.Int(fmt.Sprintf("ge%d", len(geCols))))
			}
		}
		err := res.ForRows(ctx, d.client, NumericCountsSQL(db, k.model, k.version, w, vp.numeric), func(r int) {
			p := vp.numeric[fi.At(r)-1]
			rows, missing, posinf := rowsCol.At(r), missingCol.At(r), posinfCol.At(r)
			ge := func(k int) float64 { return float64(geCols[k].At(r) - posinf) }
			c := make([]float64, p.Bins()+1)
			e := len(p.Edges)
			finite := float64(rows - missing)
			if e == 0 {
				c[0] = finite
			} else {
				c[0] = finite - ge(0)
				for k := 1; k < e; k++ {
					c[k] = ge(k-1) - ge(k)
				}
				c[e] = ge(e - 1)
			}
			c[len(c)-1] = float64(missing)
			out[p] = c
		})
		if err != nil {
			return nil, err
		}
	}
	if len(vp.categorical) > 0 {
		var res chsql.Result
		fi, ciCol, count := res.Int("fi"), res.Int("ci"), res.Int("c")
		err := res.ForRows(ctx, d.client, CategoricalCountsSQL(db, k.model, k.version, w, vp.categorical), func(r int) {
			p := vp.categorical[fi.At(r)-1]
			c := out[p]
			if c == nil {
				c = make([]float64, p.Bins()+1)
				out[p] = c
			}
			n := float64(count.At(r))
			switch ci := ciCol.At(r); {
			case ci < 0:
				c[len(c)-1] += n
			case ci == 0:
				c[len(p.Categories)] += n
			default:
				c[ci-1] += n
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (d *Detector) detection(t *tested, w fleet.Window) fleet.Detection {
	p, r := t.p, t.r
	class := "covariate_drift"
	if strings.HasPrefix(p.Feature, "@") {
		class = "prediction_drift"
	}
	det, sev, action, threshold := "psi", "warning", "investigate", d.cfg.Investigate
	switch {
	case t.flagged && r.Band == Action:
		sev, action, threshold = "critical", "retrain", d.cfg.Action
	case !t.flagged:
		det = "psi_cusum"
	}
	ev, _ := json.Marshal(map[string]any{
		"psi": r.PSI, "p_value": r.PValue, "q_value": t.q, "band": r.Band, "method": r.Method, "df": r.DF,
		"null_psi": r.NullMean, "n_ref": r.NRef, "n_cur": r.NCur, "missing_ref": r.MissingRef, "missing_cur": r.MissingCur,
		"cusum": t.cusum.S, "cusum_windows": t.cusum.Run, "reference": map[string]any{"source": p.Source, "start": p.RefStart,
			"end": p.RefEnd, "detail": p.Detail}, "edges": p.Edges, "categories": p.Categories, "ref_counts": p.Counts,
		"cur_counts": r.CurCounts,
	})
	summary := fmt.Sprintf("%s %s %s: PSI %.3f (%s) against %s reference; p=%.2g, q=%.2g; n=%.0f vs %.0f",
		p.Model, p.ModelVersion, p.Feature, r.PSI, r.Band, p.Source, r.PValue, t.q, r.NCur, r.NRef)
	if det == "psi_cusum" {
		summary += fmt.Sprintf("; persistent over %d windows (CUSUM %.1f)", t.cusum.Run, t.cusum.S)
	}
	return fleet.Detection{Time: w.End, WindowStart: w.Start, Detector: det, Class: class, Severity: sev,
		EntityType: "feature", Entity: p.Model + "/" + p.Feature, Key: "drift/" + p.Key(), Model: p.Model,
		ModelVersion: p.ModelVersion, Feature: p.Feature, Value: r.PSI, Threshold: threshold, PValue: r.PValue,
		Action: action, Summary: summary, Evidence: string(ev)}
}

func scoresBlock(rs []*tested, w fleet.Window) storage.Block {
	var b storage.DriftScoreBlock
	for _, t := range rs {
		var flagged uint8
		if t.flagged || t.alarm {
			flagged = 1
		}
		b.Ts = append(b.Ts, w.End.Unix())
		b.WindowStart = append(b.WindowStart, w.Start.Unix())
		b.Model = append(b.Model, t.p.Model)
		b.ModelVersion = append(b.ModelVersion, t.p.ModelVersion)
		b.Feature = append(b.Feature, t.p.Feature)
		b.Kind = append(b.Kind, string(t.p.Kind))
		b.PSI = append(b.PSI, t.r.PSI)
		b.PValue = append(b.PValue, t.r.PValue)
		b.QValue = append(b.QValue, t.q)
		b.Method = append(b.Method, t.r.Method)
		b.DF = append(b.DF, uint16(max(0, t.r.DF)))
		b.NullPSI = append(b.NullPSI, t.r.NullMean)
		b.Band = append(b.Band, string(t.r.Band))
		b.NRef = append(b.NRef, t.r.NRef)
		b.NCur = append(b.NCur, t.r.NCur)
		b.MissingRef = append(b.MissingRef, t.r.MissingRef)
		b.MissingCur = append(b.MissingCur, t.r.MissingCur)
		b.CurCounts = append(b.CurCounts, t.r.CurCounts)
		b.Cusum = append(b.Cusum, t.cusum.S)
		b.CusumRun = append(b.CusumRun, uint32(t.cusum.Run))
		b.CusumExcess = append(b.CusumExcess, t.cusum.Excess)
		b.Flagged = append(b.Flagged, flagged)
	}
	return b.Block()
}
