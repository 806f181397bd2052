"""Study throughput: trials per second and peak memory of estimate-backend studies, per storage and
sampler, on TFC-w2a2 with per-layer folding (6.9e10 configurations).

Run:  python benchmarks/study_throughput.py [--runs 1000/sqlite/tpe,100000/journal/nsga2,...]
Each run is a separate process (for its peak RSS). Prints a table and writes the section "Study
throughput" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

BLUEPRINT = """
version: "3.0"
name: throughput
model: {model}
hw_compiler:
  build_steps: [step_qonnx_to_finn, step_tidy_up, step_streamline, step_convert_to_hw, step_create_dataflow_partition,
                step_specialize_layers, step_apply_folding_config, step_minimize_bit_width,
                step_generate_estimate_reports]
target: {{board: Pynq-Z1, clock_ns: 10.0}}
search: {{strategy: random}}
folding:
  kinds:
    MVAU: {{PE: all, SIMD: all, ram_style: [auto, distributed, block]}}
    Thresholding: {{PE: all}}
"""


DEFAULT_RUNS = ",".join([
    *(f"1000/{st}/{sa}" for st in ("memory", "journal", "sqlite") for sa in ("random", "nsga2", "tpe")),
    "10000/sqlite/nsga2", "10000/journal/nsga2", "100000/sqlite/nsga2", "100000/journal/nsga2",
    "100000/memory/random",
])


def single(storage: str, sampler: str, n: int) -> dict:
    import os

    from finn_reference import prepost_model

    from bsopt.study.engine import Runner, create_study

    work = Path(tempfile.mkdtemp(prefix="bsopt_bench_"))
    os.chdir(work)
    bp = work / "bp.yaml"
    bp.write_text(BLUEPRINT.format(model=prepost_model("tfc_w2a2")))
    url = {"memory": "memory", "sqlite": f"sqlite:///{work / 'b.db'}", "journal": str(work / "b.log")}[storage]
    ctx = create_study("bench", bp, storage=url, sampler=sampler, seed=0, n_trials=n)
    t0 = time.perf_counter()
    runner = Runner(ctx, progress=False, cache_path=work / "cache.db")
    runner.publish = False  # the engine's throughput: no dashboard artifacts at the end
    stats = runner.optimize(n_trials=n)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    os.chdir(ROOT)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return {"storage": storage, "sampler": sampler, "trials": stats.trials, "wall_s": wall,
            "trials_per_s": stats.trials / wall, "peak_rss_mib": rss}


def rerun(n: int) -> dict:
    """An identical study run twice against one build cache: the second performs zero builds."""
    import os
    import shutil

    from finn_reference import prepost_model

    from bsopt.study.engine import Runner, create_study

    work = Path(tempfile.mkdtemp(prefix="bsopt_bench_"))
    os.chdir(work)
    try:
        bp = work / "bp.yaml"
        bp.write_text(BLUEPRINT.format(model=prepost_model("tfc_w2a2")))
        out = {}
        for name in ("first", "second"):
            ctx = create_study(name, bp, storage=f"sqlite:///{work / 'b.db'}", sampler="random", seed=0, n_trials=n)
            runner = Runner(ctx, progress=False, cache_path=work / "cache.db")
            runner.publish = False
            t0 = time.perf_counter()
            stats = runner.optimize(n_trials=n)
            out[name] = {"wall_s": time.perf_counter() - t0, "builds": stats.builds, "cache_hits": stats.cache_hits}
        return out
    finally:
        os.chdir(ROOT)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default=DEFAULT_RUNS, help="comma-separated trials/storage/sampler triples")
    ap.add_argument("--single", nargs=3, metavar=("STORAGE", "SAMPLER", "N"))
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--cache-rerun", type=int, metavar="N", help="only measure an identical N-trial study run "
                    "twice against one cache (section 'Cache re-run')")
    args = ap.parse_args()
    if args.cache_rerun:
        from intake import machine, write_section

        r = rerun(args.cache_rerun)
        f, sec = r["first"], r["second"]
        text = "\n".join([
            "## Cache re-run", "",
            f"`python benchmarks/study_throughput.py --cache-rerun {args.cache_rerun}` on {machine()}: the same "
            f"{args.cache_rerun}-trial random-sampler study (TFC-w2a2 folding, SQLite) run twice against one build "
            "cache.", "",
            "| run | builds | cache hits | wall s | trials/s |", "|---|---:|---:|---:|---:|",
            f"| first | {f['builds']} | {f['cache_hits']} | {f['wall_s']:.2f} | {args.cache_rerun / f['wall_s']:.0f} |",
            f"| identical re-run | {sec['builds']} | {sec['cache_hits']} | {sec['wall_s']:.2f} | "
            f"{args.cache_rerun / sec['wall_s']:.0f} |", ""])
        print(text)
        write_section(args.out, "## Cache re-run", text)
        return
    if args.single:
        print(json.dumps(single(args.single[0], args.single[1], int(args.single[2]))))
        return
    rows = []
    for run in args.runs.split(","):
        n, storage, sampler = run.split("/")
        out = subprocess.run([sys.executable, __file__, "--single", storage, sampler, n],
                             capture_output=True, text=True, check=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        print(row, flush=True)
        rows.append(row)
    import os

    import optuna
    from intake import write_section

    import bsopt

    lines = [
        "## Study throughput",
        "",
        f"`python benchmarks/study_throughput.py` (runs: {args.runs}) on {platform.machine()} "
        f"({os.cpu_count()} cores), Python {platform.python_version()}, optuna {optuna.__version__}, bsopt "
        f"{bsopt.__version__}, {time.strftime('%Y-%m-%d')}, 1 worker: a TFC-w2a2 per-layer folding study (6.9·10^10 configurations) "
        "on the estimate backend, each run in its own process. Trials/s includes the sampler, the "
        "estimate, the cache and the storage.",
        "",
        "| trials | storage | sampler | wall s | trials/s | peak RSS MiB |",
        "|---:|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['trials']} | {r['storage']} | {r['sampler']} | {r['wall_s']:.1f} | "
                     f"{r['trials_per_s']:.1f} | {r['peak_rss_mib']:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(args.out, "## Study throughput", text)


if __name__ == "__main__":
    main()
