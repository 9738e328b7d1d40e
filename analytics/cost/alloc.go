package cost

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// GPU is one provisioned GPU: its price key and when it was provisioned
// (a zero To means still provisioned).
//
// A MIG instance is a GPU of its own (its own UUID, as the device plugin
// hands it out) with Fraction the share of the physical GPU it is — its
// compute slices over the GPU's (1g.10gb on an H100: 1/7) — and costs that
// share of the physical GPU's price; its GPU-hours are counted in whole-GPU
// equivalents. Zero Fraction means a whole GPU. A GPU shared by
// time-slicing or MPS is one GPU with several allocations at once (see
// Attribute).
type GPU struct {
	ID string
	PriceKey
	From, To time.Time
	Fraction float64
}

// share is the part of a physical GPU that g is.
func (g GPU) share() float64 {
	if g.Fraction > 0 {
		return g.Fraction
	}
	return 1
}

// cost is what g costs from from to to.
func (g GPU) cost(book *PriceBook, from, to time.Time) (float64, error) {
	c, err := book.Cost(g.PriceKey, from, to)
	return c * g.share(), err
}

// Tags are the attribution dimensions of the design documents' tagging
// schema, as the agent labels a GPU's holder; User and Account are a
// Slurm job's (hpc_user, hpc_account).
type Tags struct {
	Namespace, Pod, Team, Model, ModelVersion, Job, CostCenter string
	User, Account                                              string
}

// Allocation is one holder of one GPU from From to To: a pod's container
// (Kubernetes), a Slurm job or a systemd unit. System marks platform pods
// (device plugins, monitoring) whose GPU time is a shared cost.
type Allocation struct {
	GPU      string
	From, To time.Time
	Tags
	System bool
}

// Dimension is a tag to group by.
type Dimension string

// The dimensions Attribute groups by.
const (
	ByTeam       Dimension = "team"
	ByModel      Dimension = "model"
	ByJob        Dimension = "job"
	ByNamespace  Dimension = "namespace"
	ByPod        Dimension = "pod"
	ByCostCenter Dimension = "cost_center"
	ByVersion    Dimension = "model_version"
	ByUser       Dimension = "user"
	ByAccount    Dimension = "account"
)

// Dimensions lists the valid dimensions.
var Dimensions = []Dimension{ByTeam, ByModel, ByVersion, ByJob, ByNamespace, ByPod, ByCostCenter, ByUser, ByAccount}

func (d Dimension) of(t Tags) string {
	switch d {
	case ByTeam:
		return t.Team
	case ByModel:
		return t.Model
	case ByJob:
		return t.Job
	case ByNamespace:
		return t.Namespace
	case ByPod:
		return t.Pod
	case ByCostCenter:
		return t.CostCenter
	case ByVersion:
		return t.ModelVersion
	case ByUser:
		return t.User
	case ByAccount:
		return t.Account
	}
	return ""
}

// SharedRule is how shared cost (unallocated capacity, system pods) is
// split among the groups.
type SharedRule string

// The shared-cost rules of the design documents' listing 6.
const (
	// SharedByGPUHours splits in proportion to each group's own GPU-hours
	// ("proportional_gpu_hours").
	SharedByGPUHours SharedRule = "gpu_hours"
	// SharedByQueryVolume splits in proportion to each group's query volume
	// (AttributeInput.Volume; "proportional_query_volume").
	SharedByQueryVolume SharedRule = "query_volume"
	// SharedEqually gives each group with GPU-hours the same share
	// ("equal_split").
	SharedEqually SharedRule = "equal"
	// SharedSeparately leaves shared cost in its own row, SharedKey.
	SharedSeparately SharedRule = "separate"
)

// SharedKey is the row that holds shared cost under SharedSeparately, or
// when no group can take it (no GPU-hours, no volume).
const SharedKey = "(shared)"

// UnlabelledValue stands for an empty tag in a group key.
const UnlabelledValue = "(none)"

// AttributionConfig says how to attribute.
type AttributionConfig struct {
	// GroupBy is the dimensions of a row, in order; the row key joins
	// their values with "/".
	GroupBy []Dimension `yaml:"group_by"`
	// Shared is the shared-cost rule.
	Shared SharedRule `yaml:"shared"`
}

// NewDefaultAttributionConfig groups by team and splits shared cost by
// GPU-hours.
func NewDefaultAttributionConfig() AttributionConfig {
	return AttributionConfig{GroupBy: []Dimension{ByTeam}, Shared: SharedByGPUHours}
}

// Validate checks the dimensions and the rule.
func (c AttributionConfig) Validate() error {
	var errs []error
	if len(c.GroupBy) == 0 {
		errs = append(errs, errors.New("attribution: group_by is empty"))
	}
	for _, d := range c.GroupBy {
		if !slices.Contains(Dimensions, d) {
			errs = append(errs, fmt.Errorf("attribution: group_by %q is not one of %v", d, Dimensions))
		}
	}
	switch c.Shared {
	case SharedByGPUHours, SharedByQueryVolume, SharedEqually, SharedSeparately:
	default:
		errs = append(errs, fmt.Errorf("attribution: shared %q is not gpu_hours, query_volume, equal or separate", c.Shared))
	}
	return errors.Join(errs...)
}

// Key is a row's group key for t.
func (c AttributionConfig) Key(t Tags) string {
	var sb strings.Builder
	for i, d := range c.GroupBy {
		if i > 0 {
			sb.WriteByte('/')
		}
		v := d.of(t)
		if v == "" {
			v = UnlabelledValue
		}
		sb.WriteString(v)
	}
	return sb.String()
}

// AttributeInput is what Attribute reads.
type AttributeInput struct {
	GPUs        []GPU
	Allocations []Allocation
	// Volume is each group's query volume in the period, by row key; read
	// only under SharedByQueryVolume.
	Volume map[string]float64
}

// Row is one group's GPU-hours and cost in the period.
type Row struct {
	Key      string  `json:"key"`
	GPUHours float64 `json:"gpu_hours"` // held by the group itself
	Direct   float64 `json:"direct"`    // the price of those GPU-hours
	Shared   float64 `json:"shared"`    // its share of shared cost
	Total    float64 `json:"total"`     // Direct + Shared
}

// Attribution is the result of Attribute. The rows' totals add up to
// ProvisionedCost.
type Attribution struct {
	From, To            time.Time
	Rows                []Row // by key
	ProvisionedGPUHours float64
	ProvisionedCost     float64
	UnallocatedGPUHours float64
	UnallocatedCost     float64
	SystemGPUHours      float64
	SystemCost          float64
	Rule                SharedRule
}

// Row returns the row of key (zero if none).
func (a Attribution) Row(key string) Row {
	for _, r := range a.Rows {
		if r.Key == key {
			return r
		}
	}
	return Row{}
}

// Attribute computes GPU-hours and cost per group for [from, to). Each
// GPU's provisioned time in the period is cut at its allocations' edges;
// a piece held by k allocations at once gives each 1/k of its hours and
// cost, a piece held by nobody is unallocated (shared), a piece held by a
// system allocation is shared too. Allocations are clipped to the GPU's
// provisioned time and the period; one naming an unknown GPU is an error.
func Attribute(book *PriceBook, cfg AttributionConfig, in AttributeInput, from, to time.Time) (Attribution, error) {
	if err := cfg.Validate(); err != nil {
		return Attribution{}, err
	}
	if !to.After(from) {
		return Attribution{}, fmt.Errorf("attribution: empty period %s–%s", from, to)
	}
	gpus := make(map[string]int, len(in.GPUs))
	for i, g := range in.GPUs {
		if _, dup := gpus[g.ID]; dup {
			return Attribution{}, fmt.Errorf("attribution: GPU %q listed twice", g.ID)
		}
		if g.Fraction < 0 || g.Fraction > 1 {
			return Attribution{}, fmt.Errorf("attribution: GPU %q: fraction %v is not in [0, 1]", g.ID, g.Fraction)
		}
		gpus[g.ID] = i
	}
	per := make([][]int, len(in.GPUs)) // allocation indexes per GPU
	for i, a := range in.Allocations {
		g, ok := gpus[a.GPU]
		if !ok {
			return Attribution{}, fmt.Errorf("attribution: allocation %d (%s/%s) holds unknown GPU %q", i, a.Namespace, a.Pod, a.GPU)
		}
		if !a.To.After(a.From) {
			return Attribution{}, fmt.Errorf("attribution: allocation %d (%s/%s) of GPU %q ends %s, not after it starts %s", i, a.Namespace, a.Pod, a.GPU,
				a.To.UTC().Format(time.RFC3339), a.From.UTC().Format(time.RFC3339))
		}
		per[g] = append(per[g], i)
	}
	out := Attribution{From: from, To: to, Rule: cfg.Shared}
	rows := map[string]*Row{}
	row := func(k string) *Row {
		r := rows[k]
		if r == nil {
			r = &Row{Key: k}
			rows[k] = r
		}
		return r
	}
	var cuts []time.Time
	var shared float64
	for gi, g := range in.GPUs {
		gf, gt := maxTime(g.From, from), to
		if !g.To.IsZero() && g.To.Before(gt) {
			gt = g.To
		}
		if !gt.After(gf) {
			continue
		}
		cuts = append(cuts[:0], gf, gt)
		for _, ai := range per[gi] {
			a := in.Allocations[ai]
			if a.From.After(gf) && a.From.Before(gt) {
				cuts = append(cuts, a.From)
			}
			if a.To.After(gf) && a.To.Before(gt) {
				cuts = append(cuts, a.To)
			}
		}
		slices.SortFunc(cuts, func(a, b time.Time) int { return a.Compare(b) })
		cuts = slices.CompactFunc(cuts, func(a, b time.Time) bool { return a.Equal(b) })
		for i := 0; i+1 < len(cuts); i++ {
			s, e := cuts[i], cuts[i+1]
			h := e.Sub(s).Hours() * g.share()
			c, err := g.cost(book, s, e)
			if err != nil {
				return Attribution{}, fmt.Errorf("attribution: GPU %s: %w", g.ID, err)
			}
			out.ProvisionedGPUHours += h
			out.ProvisionedCost += c
			var holders int
			for _, ai := range per[gi] {
				if a := in.Allocations[ai]; !a.From.After(s) && a.To.After(s) {
					holders++
				}
			}
			if holders == 0 {
				out.UnallocatedGPUHours += h
				out.UnallocatedCost += c
				shared += c
				continue
			}
			k := float64(holders)
			for _, ai := range per[gi] {
				a := in.Allocations[ai]
				if a.From.After(s) || !a.To.After(s) {
					continue
				}
				if a.System {
					out.SystemGPUHours += h / k
					out.SystemCost += c / k
					shared += c / k
					continue
				}
				r := row(cfg.Key(a.Tags))
				r.GPUHours += h / k
				r.Direct += c / k
			}
		}
	}
	splitShared(rows, shared, cfg.Shared, in.Volume)
	for _, r := range rows {
		r.Total = r.Direct + r.Shared
		out.Rows = append(out.Rows, *r)
	}
	slices.SortFunc(out.Rows, func(a, b Row) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// splitShared gives each row its share of shared by rule; what no row can
// take goes to the SharedKey row.
func splitShared(rows map[string]*Row, shared float64, rule SharedRule, volume map[string]float64) {
	if shared == 0 {
		return
	}
	weights := map[string]float64{}
	var sum float64
	for k, r := range rows {
		var w float64
		switch rule {
		case SharedByGPUHours:
			w = r.GPUHours
		case SharedByQueryVolume:
			w = volume[k]
		case SharedEqually:
			if r.GPUHours > 0 {
				w = 1
			}
		}
		if w > 0 {
			weights[k] = w
			sum += w
		}
	}
	if sum == 0 {
		rows[SharedKey] = &Row{Key: SharedKey, Shared: shared}
		return
	}
	for k, w := range weights {
		rows[k].Shared += shared * w / sum
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// UnitCost is a group's cost per request: the unit economics of a model
// (or model and version) over a period.
type UnitCost struct {
	Key                         string
	Cost, Requests              float64
	PerRequest, Per1000Requests float64 // 0 when the group served nothing
}

// UnitCosts divides each row's total cost (its own and its share of shared
// cost) by the group's requests in the period, keyed like the rows (group
// by model, or by model and model_version). Rows without requests get a
// zero unit cost and Requests 0: a zombie shows as cost without traffic.
func UnitCosts(a Attribution, requests map[string]float64) []UnitCost {
	out := make([]UnitCost, 0, len(a.Rows))
	for _, r := range a.Rows {
		u := UnitCost{Key: r.Key, Cost: r.Total, Requests: requests[r.Key]}
		if u.Requests > 0 {
			u.PerRequest = u.Cost / u.Requests
			u.Per1000Requests = 1000 * u.PerRequest
		}
		out = append(out, u)
	}
	return out
}

// Owners says who owns a model: its team and cost centre (the catalog's
// ownership; see FillOwners).
type Owners func(model string) (team, costCenter string, ok bool)

// FillOwners fills each allocation's empty team and cost centre from its
// model's owner (model → team → cost centre), in place, and returns how
// many allocations it changed. Tags the workload carries win: a pod
// labelled with a team keeps it.
func FillOwners(allocs []Allocation, owners Owners) int {
	var n int
	for i := range allocs {
		if allocs[i].Tags.fill(owners) {
			n++
		}
	}
	return n
}

// fill fills t's empty team and cost centre from its model's owner and
// reports whether it changed t.
func (t *Tags) fill(owners Owners) bool {
	if t.Model == "" || (t.Team != "" && t.CostCenter != "") {
		return false
	}
	team, cc, ok := owners(t.Model)
	if !ok {
		return false
	}
	changed := false
	if t.Team == "" && team != "" {
		t.Team, changed = team, true
	}
	if t.CostCenter == "" && cc != "" {
		t.CostCenter, changed = cc, true
	}
	return changed
}
