"""The NumPy equivalent of BenchmarkTick's statistics: for 100,000 GPUs in
the same groups (80% in jobs of 512, the rest in 10 load buckets), the
median and MAD of every one of 18 signals per group with np.median, plus
the ratio and robust z of every GPU. Prints milliseconds per tick (best of 5).

    python3 analytics/health/testdata/tick_numpy.py
"""
import time

import numpy as np

N, SIGNALS, JOB = 100_000, 18, 512
rng = np.random.default_rng(1)
jobs = N * 8 // 10 // JOB
group = np.empty(N, dtype=np.int64)
group[: jobs * JOB] = np.arange(jobs * JOB) // JOB
group[jobs * JOB :] = jobs + rng.integers(0, 10, N - jobs * JOB)
vals = 100 * (1 + 0.02 * rng.standard_normal((SIGNALS, N)))

order = np.argsort(group, kind="stable")
bounds = np.searchsorted(group[order], np.arange(group.max() + 2))


def tick():
    z = np.empty_like(vals)
    for s in range(SIGNALS):
        v = vals[s, order]
        for g in range(len(bounds) - 1):
            seg = v[bounds[g] : bounds[g + 1]]
            med = np.median(seg)
            sigma = 1.4826 * np.median(np.abs(seg - med))
            z[s, order[bounds[g] : bounds[g + 1]]] = (seg - med) / max(sigma, 1e-12)
    return z


best = min(
    (lambda t0: (tick(), time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(5)
)
print(f"numpy {np.__version__}: {best * 1e3:.1f} ms per tick ({N} GPUs x {SIGNALS} signals, {len(bounds) - 1} groups)")
