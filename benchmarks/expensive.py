"""Strategies for expensive builds: hypervolume after N builds of a non-separable black box.

Space: benchmarks/spaces/cnv_w1a1_blackbox.yaml — the CNV-w1a1 efficiency space (1.06·10^30
configurations; minimise max_cycles, LUT, BRAM_18K; FINN's default limits on an xc7z020) whose
"real" metrics come from the synthetic backend's black box (bsopt.backends.synthetic.
blackbox_metrics: congestion-dependent LUT, a per-design-family factor, width-converter BRAM and
cycles between mismatched neighbours — not per-layer sums). Every build passes the estimate gate.

Strategies at N = 100/300/1000 builds (3 seeds): bsopt auto (the surrogate strategy), NSGA-II, TPE,
random. Reference: the best-known front — the non-dominated set of everything any run built plus the
whole exact estimate front evaluated under the black box. Hypervolume ratio as in efficiency.py.

Run:  python benchmarks/expensive.py [--seeds 3] [--jobs 2]
Writes the section "Expensive builds" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from efficiency import _feasible, _vec, load, run_study, scores  # noqa: E402

SPACE = "cnv_w1a1_blackbox"
BUDGETS = (100, 300, 1000)
RESULTS = ROOT / "benchmarks" / "results" / "expensive.jsonl"


def job(strategy: str, seed: int, budget: int) -> dict:
    t0 = time.time()
    evals, sampler = run_study(SPACE, strategy, seed, budget, builds=True)
    return {"strategy": strategy, "seed": seed, "budget": budget, "sampler": sampler,
            "seconds": time.time() - t0, "evaluations": evals}


def reference_front(runs: list[dict]) -> np.ndarray:
    """Best-known front: everything built, plus the exact estimate front under the black box."""
    from bsopt.backends.synthetic import SyntheticBackend
    from bsopt.explore.exact import exact_front
    from bsopt.study.queries import front_indices

    space, objectives = load(SPACE)
    t = space.fixed_target()
    backend = SyntheticBackend(space.model_path, t["finn_version"], t["part"], {"blackbox": True})
    pts = [e for r in runs for e in r["evaluations"] if e is not None]
    for p in exact_front(space, objectives).points:
        r = backend.build(space.config_from_values({**space.values_at(0), **p["values"]}))
        if r.ok and _feasible(objectives, r.values):
            pts.append(_vec(r.values))
    X = np.unique(np.array(pts, dtype=float), axis=0)
    L = X.copy()
    L[:, 0] = np.log10(L[:, 0])
    return X[front_indices(L)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--strategies", default="auto,nsga2,tpe,random")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if RESULTS.exists():
        done = {(r["strategy"], r["seed"], r["budget"]) for r in map(json.loads, RESULTS.read_text().splitlines())}
    todo = [(st, seed, b) for st in args.strategies.split(",") for seed in range(args.seeds) for b in BUDGETS
            if (st, seed, b) not in done and not (st != "auto" and b != max(BUDGETS))]
    print(f"{len(todo)} run(s) to do", flush=True)
    with ProcessPoolExecutor(args.jobs) as pool:
        for fut in as_completed([pool.submit(job, *t) for t in todo]):
            r = fut.result()
            with open(RESULTS, "a") as fh:
                fh.write(json.dumps(r) + "\n")
            print(f"{r['strategy']} ({r['sampler']}) seed {r['seed']} N {r['budget']}: {r['seconds']:.0f} s", flush=True)
    runs = [json.loads(line) for line in RESULTS.read_text().splitlines()]
    front = reference_front(runs)
    from intake import machine, write_section

    names = {"auto": "bsopt auto (surrogate)", "nsga2": "NSGA-II", "tpe": "TPE (multivariate)", "random": "random"}
    lines = ["## Expensive builds", "",
             f"`python benchmarks/expensive.py --seeds {args.seeds}` on {machine()}: the CNV-w1a1 space with a "
             "non-separable black box standing in for post-synthesis metrics (synthetic backend, "
             "`blackbox: true`: congestion-dependent LUT, a per-design-family factor, width-converter BRAM and "
             f"cycles). Best-known front: {len(front)} designs (everything built by any run, plus the exact "
             "estimate front evaluated under the black box). Hypervolume ratio to it after N builds (log10 "
             "cycles, LUT, BRAM normalised to the front, reference 1.1); mean ± std over seeds; target ≥ 0.95 "
             "at 300 builds.", "",
             "| strategy | N builds | HV ratio | IGD+ |", "|---|---:|---:|---:|"]
    for st in args.strategies.split(","):
        for b in BUDGETS:
            rows = [r for r in runs if r["strategy"] == st and (r["budget"] == b if st == "auto" else
                                                                 r["budget"] == max(BUDGETS))]
            if not rows:
                continue
            sc = [scores(r["evaluations"][:b], front) for r in rows]
            hv = [x["hv_ratio"] for x in sc]
            igd = [x["igd_plus"] for x in sc]
            lines.append(f"| {names.get(st, st)} | {b} | {np.mean(hv):.3f} ± {np.std(hv):.3f} | "
                         f"{np.mean(igd):.3f} ± {np.std(igd):.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(args.out, "## Expensive builds", text)


if __name__ == "__main__":
    main()
