"""What a warm start is worth: hypervolume after N trials of a new study, with and without
``--warm-start-from`` an earlier study.

Scenario: the TFC-w2a2 per-layer folding space (6.9·10^10 configurations) on a Pynq-Z1. An earlier
study explored it at 10 ns (300 trials). The new study targets 5 ns (a compatible space: the
earlier front is enqueued and re-evaluated at the new clock; those evaluations count against the
new study's budget). For each seed, both variants run N trials with the same sampler; their
hypervolumes are computed on a common normalisation (the union of both variants' feasible points
after the largest N; reference point 1.1).

Run:  python benchmarks/warm_start.py [--seeds 3] [--budgets 25,50,100] [--sampler tpe]
Writes the section "Warm starts" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

BLUEPRINT = """
version: "3.0"
name: warm
model: {model}
hw_compiler:
  build_steps: [step_qonnx_to_finn, step_tidy_up, step_streamline, step_convert_to_hw, step_create_dataflow_partition,
                step_specialize_layers, step_apply_folding_config, step_minimize_bit_width,
                step_generate_estimate_reports]
target: {{board: Pynq-Z1, clock_ns: {clock}}}
objectives: [throughput_fps, LUT, BRAM_18K]
search: {{strategy: {sampler}}}
folding:
  kinds:
    MVAU: {{PE: all, SIMD: all, ram_style: [auto, distributed, block]}}
    Thresholding: {{PE: all}}
"""


def _points(trials, directions):
    from bsopt.study import queries

    feas = sorted((t for t in trials if queries.feasible(t)), key=lambda t: t.number)
    return [(t.number, [v if d == "minimize" else -v for v, d in zip(t.values, directions, strict=True)])
            for t in feas]


def _hv(points, lo, span):
    from optuna._hypervolume import compute_hypervolume

    from bsopt.study.queries import front_indices

    if not points:
        return 0.0
    pts = (np.array(points, dtype=float) - lo) / span
    pts = pts[front_indices(pts)]
    pts = pts[np.all(pts < 1.1, axis=1)]
    return float(compute_hypervolume(pts, np.full(pts.shape[1], 1.1))) if len(pts) else 0.0


def run(seeds: int, budgets: list[int], sampler: str, source_trials: int) -> dict:
    from finn_reference import prepost_model

    from bsopt.study.engine import Runner, create_study
    from bsopt.study.warmstart import warm_start

    work = Path(tempfile.mkdtemp(prefix="bsopt_bench_"))
    os.chdir(work)
    try:
        model = prepost_model("tfc_w2a2")
        (work / "old.yaml").write_text(BLUEPRINT.format(model=model, clock=10.0, sampler=sampler))
        (work / "new.yaml").write_text(BLUEPRINT.format(model=model, clock=5.0, sampler=sampler))
        old = create_study("old", work / "old.yaml", sampler=sampler, seed=100)
        Runner(old, progress=False).optimize(n_trials=source_trials)
        top = max(budgets)
        rows = {n: {"cold": [], "warm": []} for n in budgets}
        enqueued = []
        for seed in range(seeds):
            cold = create_study(f"cold{seed}", work / "new.yaml", sampler=sampler, seed=seed)
            Runner(cold, progress=False).optimize(n_trials=top)
            warm = create_study(f"warm{seed}", work / "new.yaml", sampler=sampler, seed=seed)
            enqueued.append(sum(r.enqueued for r in warm_start(warm, ["old"])))
            Runner(warm, progress=False).optimize(n_trials=top)
            dirs = cold.objectives.directions
            pc, pw = _points(cold.study.get_trials(), dirs), _points(warm.study.get_trials(), dirs)
            allp = np.array([p for _, p in pc + pw], dtype=float)
            lo, hi = allp.min(axis=0), allp.max(axis=0)
            span = np.where(hi > lo, hi - lo, 1.0)
            for n in budgets:
                rows[n]["cold"].append(_hv([p for k, p in pc if k < n], lo, span))
                rows[n]["warm"].append(_hv([p for k, p in pw if k < n], lo, span))
        return {"rows": rows, "enqueued": enqueued}
    finally:
        os.chdir(ROOT)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budgets", default="25,50,100")
    ap.add_argument("--sampler", default="tpe")
    ap.add_argument("--source-trials", type=int, default=300)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    t0 = time.time()
    res = run(args.seeds, budgets, args.sampler, args.source_trials)
    import optuna
    from intake import write_section

    import bsopt

    def ms(xs):
        return f"{statistics.mean(xs):.3f} ± {statistics.pstdev(xs):.3f}"

    lines = [
        "## Warm starts",
        "",
        f"`python benchmarks/warm_start.py --seeds {args.seeds} --budgets {args.budgets} --sampler {args.sampler}` "
        f"on {platform.machine()} ({os.cpu_count()} cores), Python {platform.python_version()}, optuna "
        f"{optuna.__version__}, bsopt {bsopt.__version__}, {time.strftime('%Y-%m-%d')} ({time.time() - t0:.0f} s): "
        f"TFC-w2a2 per-layer folding on a Pynq-Z1 at 5 ns, warm-started from a {args.source_trials}-trial study "
        f"of the same space at 10 ns ({statistics.mean(res['enqueued']):.0f} configurations enqueued, counted in "
        "the budget). Hypervolume of the feasible front (throughput up, LUT and BRAM down), both variants "
        "normalised together per seed; mean ± std over seeds.",
        "",
        "| trials | cold start | warm start |",
        "|---:|---:|---:|",
    ]
    for n in budgets:
        lines.append(f"| {n} | {ms(res['rows'][n]['cold'])} | {ms(res['rows'][n]['warm'])} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(args.out, "## Warm starts", text)


if __name__ == "__main__":
    main()
