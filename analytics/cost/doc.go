// Package cost is Fleetwatch's cost and utilization analysis (issue 19):
// what GPUs cost, who holds them, what is wasted and why spend moved. It is
// computation over inputs the caller reads (allocation intervals, hourly
// GPU usage rollups, daily traffic), so the same code serves the analyzer,
// fleetctl and the simulation that scores it; Store reads those inputs
// from ClickHouse.
//
//   - Price book (PriceBook): prices per GPU model × cluster (or region) ×
//     purchase type (on_demand, reserved, spot) with effective dates. A
//     price holds from its effective time until the next one for the same
//     key; Cost integrates a GPU's price over an interval across changes,
//     and Changes lists the changes in a period — a price change is one of
//     the five root causes of a cost anomaly.
//   - Attribution (Attribute): GPU-hours and cost from allocation intervals
//     (which pod/job held which GPU from when to when), grouped by any of
//     team, model, model version, job, namespace, pod and cost centre — the
//     design documents' tagging schema — and a Slurm job's user and
//     account. A GPU shared by several holders at once (time-slicing, MPS;
//     the agent sends such a GPU once per holder) is split equally among
//     them for that time; a
//     MIG instance is a GPU of its own costing its Fraction of the physical
//     GPU (GPU-hours in whole-GPU equivalents). Shared
//     cost — provisioned capacity nobody held, and GPUs held by system pods —
//     is split among the groups by a configurable rule: proportional to
//     GPU-hours, proportional to query volume, equally, or not at all (a
//     separate "shared" row). Rows always add up to the provisioned cost.
//     UnitCosts turns rows by model (and version) into cost per request and
//     per 1,000 requests.
//     FillOwners fills a holder's missing team and cost centre from its
//     model's owner (fleet/catalog: ownership.team, ownership.cost_center).
//   - Utilization and waste (PlatformUtilization, UsefulSpend, Waste): the
//     capacity-weighted platform utilization of equation 13 (Σ Uᵢ·Capᵢ / Σ
//     Capᵢ); useful versus provisioned spend (provisioned × utilization: 100
//     GPUs × 24 h × $2.50 at 65 % is $3,900 useful of $6,000); and the waste
//     lists: idle GPUs (allocated, SM activity below a threshold for at
//     least N hours in a row), idle-held GPUs (the same with device memory
//     held), unallocated GPUs (provisioned, held by nobody for at least N
//     hours) and zombie models (GPUs held, negligible traffic per GPU-hour).
//   - Anomalies (Detector): daily cost per scope (model, team or job); a day
//     is anomalous when |Z| > 3 against the trailing 30-day baseline AND
//     |Δ%| > 50 % day over day (per-scope overrides: 25–30 % for stable
//     services, 75–100 % for volatile ones). Each anomaly is classified into
//     the documents' five root-cause classes with the evidence that decided
//     it, checked in this order: pricing (GPU-hours flat, cost per GPU-hour
//     moved, with the price book's change cited), traffic (requests moved
//     with cost), efficiency regression (requests flat, busy GPU-seconds per
//     request or latency up), configuration (a deployment spec change that
//     day: replicas, instance type, version) and leak (allocation up with no
//     work or traffic behind it). Severity is a ticket, not a page, unless
//     the scope's budget forecast exceeds its budget.
//   - Budgets (Forecast): month-to-date spend, burn rate (the last 7 days),
//     the month-end forecast at that rate, and whether it exceeds the
//     budget; BudgetStatus.Detection is the page when it does. Anomalies
//     and budget alerts become fleet.Detections for alerting (Detection).
//   - Stored inputs (Store, StoreSource, WasteDetector): who held which GPU
//     is derived from ClickHouse on read — gpu_series carries every
//     holder (namespace, pod, hpc_job, hpc_user, hpc_account, pod labels
//     team, model, model_version, cost_center, purchase) and gpu_samples_1m its SM
//     activity and memory — as held GPU-hours on an hourly grid, merged
//     into allocation intervals (Period); traffic from inference_events,
//     deployment changes from model_deployments. StoreSource is the
//     Detector's DailySource over it; the Detector writes each judged day
//     to cost_daily (RecordTo); WasteDetector tickets idle, idle-held and
//     zombie findings daily. The analyzer runs both (analyzer.cost).
//   - Hourly rollup (Store.RollUp, RollupDetector; migration 17): at fleet
//     scale the held GPU-hours are rolled up once an hour per price key
//     and holder scope into gpu_held_1h (and by a materialized view per
//     day into gpu_held_1d), and Store.DailySeries and Store.Totals (unit
//     cost per 1,000 requests by model version) read them, priced in
//     ClickHouse, where every hour of the period is rolled up (RollupMode).
//   - Rollups (Rollups.DailyCost): the daily cost pass over per-GPU daily
//     rollups, columnar, for a fleet of 100,000 GPUs × 90 days.
//
// Layer: stage (analytics). It imports the standard library, YAML, the
// shared domain types (fleet), telemetry's metric names and storage.
package cost
