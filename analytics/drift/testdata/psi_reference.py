"""Independent reference implementation of Fleetwatch's PSI, in NumPy.

Reads cases from the JSON file given as argv[1] and writes results to
stdout as JSON. Each case has "kind" (numeric or categorical), "bins",
"top_k", "alpha", "ref" and "cur" (numbers with null for missing, or
strings with "" for missing). Used by TestPSIMatchesNumPy.
"""
import json
import sys
from collections import Counter

import numpy as np


def numeric(case):
    ref = np.array([np.nan if v is None else v for v in case["ref"]], dtype=np.float64)
    cur = np.array([np.nan if v is None else v for v in case["cur"]], dtype=np.float64)
    fin = np.sort(ref[np.isfinite(ref)])
    n = len(fin)
    bins = case["bins"]
    edges = []
    if n:
        # quantileExact: the value at floor(level * n) of the sorted values.
        q = [fin[min(n - 1, int(np.floor(np.float64(k / bins) * n)))] for k in range(1, bins)]
        edges = list(np.unique(q))
        if edges and edges[-1] == fin[-1]:
            edges.append(np.nextafter(fin[-1], np.inf))
    e = np.array(edges, dtype=np.float64)

    def hist(x):
        f = x[np.isfinite(x)]
        c = np.bincount(np.searchsorted(e, f, side="right"), minlength=len(e) + 1)
        return list(c.astype(np.float64)) + [float(len(x) - len(f))]

    return [float(v) for v in e], hist(ref), hist(cur)


def categorical(case):
    ref, cur = case["ref"], case["cur"]
    cnt = Counter(v for v in ref if v != "")
    cats = [v for v, _ in sorted(cnt.items(), key=lambda kv: (-kv[1], kv[0]))[: case["top_k"]]]
    pos = {v: i for i, v in enumerate(cats)}

    def hist(xs):
        h = np.zeros(len(cats) + 2)
        for v in xs:
            if v == "":
                h[-1] += 1
            else:
                h[pos.get(v, len(cats))] += 1
        return list(h)

    return cats, hist(ref), hist(cur)


def psi(ref, cur, alpha):
    ref, cur = np.array(ref), np.array(cur)
    use = (ref > 0) | (cur > 0)
    r, c = ref[use], cur[use]
    k = len(r)
    if k < 2 or r.sum() == 0 or c.sum() == 0:
        return 0.0
    e = (r + alpha) / (r.sum() + k * alpha)
    a = (c + alpha) / (c.sum() + k * alpha)
    return float(np.sum((a - e) * np.log(a / e)))


out = []
for case in json.load(open(sys.argv[1])):
    if case["kind"] == "numeric":
        bins, ref, cur = numeric(case)
    else:
        bins, ref, cur = categorical(case)
    out.append({"bins": bins, "ref": ref, "cur": cur, "psi": psi(ref, cur, case["alpha"])})
json.dump(out, sys.stdout)
