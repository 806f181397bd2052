"""Parallel efficiency of the executors: N synthetic builds of D seconds each at 1 and 2 workers,
on the local process pool and on Ray actors (a local Ray instance), and the per-trial overhead.

Run:  python benchmarks/parallel.py [--builds 16] [--duration 1.0] [--executors local,ray]
Each run is a fresh study (SQLite storage, empty cache) in its own process. Efficiency is the ideal
time (builds × duration / workers) over the measured span from the first trial asked to the last
trial told; the wall time additionally includes starting the executor (Ray: ``ray.init``). Writes the
section "Parallel builds" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
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
name: parallel
model: {model}
hw_compiler:
  build_steps: [step_qonnx_to_finn, step_tidy_up, step_streamline, step_convert_to_hw, step_create_dataflow_partition,
                step_specialize_layers, step_apply_folding_config, step_minimize_bit_width,
                step_generate_estimate_reports]
target: {{board: Pynq-Z1, clock_ns: 10.0}}
search: {{strategy: grid}}
backend: {{name: synthetic, options: {{duration_s: {duration}}}}}
folding:
  layers:
    MVAU_hls_0: {{PE: [1, 2, 4, 8, 16], SIMD: [1, 2, 4, 7, 8, 14, 16, 28, 49, 56]}}
"""


def single(executor: str, workers: int, builds: int, duration: float) -> dict:
    import os

    from finn_reference import prepost_model

    from bsopt.study.engine import Runner, create_study

    work = Path(tempfile.mkdtemp(prefix="bsopt_bench_"))
    try:
        os.chdir(work)
        bp = work / "bp.yaml"
        bp.write_text(BLUEPRINT.format(model=prepost_model("tfc_w2a2"), duration=duration))
        ctx = create_study("par", bp, storage=f"sqlite:///{work / 'b.db'}")
        t0 = time.perf_counter()
        runner = Runner(ctx, workers=workers, executor=executor, progress=False, cache_path=work / "cache.db")
        runner.publish = False  # the execution layer only: no dashboard artifacts at the end
        stats = runner.optimize(n_trials=builds)
        wall = time.perf_counter() - t0
        trials = ctx.study.get_trials()
        span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
        assert stats.builds == builds and all(t.state.name == "COMPLETE" for t in trials), stats
        ideal = builds * duration / workers
        return {"executor": executor, "workers": workers, "builds": builds, "duration_s": duration,
                "wall_s": wall, "span_s": span, "efficiency": ideal / span,
                "overhead_ms_per_trial": (span * workers / builds - duration) * 1e3}
    finally:
        os.chdir(ROOT)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--builds", type=int, default=16)
    ap.add_argument("--duration", type=float, default=1.0)
    ap.add_argument("--executors", default="local,ray")
    ap.add_argument("--single", nargs=2, metavar=("EXECUTOR", "WORKERS"))
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    if args.single:
        print(json.dumps(single(args.single[0], int(args.single[1]), args.builds, args.duration)))
        return
    rows = []
    for executor in args.executors.split(","):
        for workers in (1, 2):
            out = subprocess.run([sys.executable, __file__, "--single", executor, str(workers), "--builds",
                                  str(args.builds), "--duration", str(args.duration)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{executor}/{workers} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(row, flush=True)
            rows.append(row)
    from intake import write_section

    import bsopt

    lines = [
        "## Parallel builds",
        "",
        f"`python benchmarks/parallel.py --builds {args.builds} --duration {args.duration}` on "
        f"{platform.machine()} ({__import__('os').cpu_count()} cores), Python {platform.python_version()}, "
        f"bsopt {bsopt.__version__}, {time.strftime('%Y-%m-%d')}: synthetic builds of {args.duration:g} s "
        "(the estimate gate, the cache and SQLite writes included), each run a fresh study in its own "
        "process. Efficiency = ideal time / span (first ask to last tell); target ≥ 90 %. Overhead = "
        "what a trial costs beyond its build, per worker.",
        "",
        "| executor | workers | builds | wall s | span s | efficiency | overhead ms/trial |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['executor']} | {r['workers']} | {r['builds']} | {r['wall_s']:.2f} | {r['span_s']:.2f} | "
                     f"{100 * r['efficiency']:.1f} % | {r['overhead_ms_per_trial']:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(args.out, "## Parallel builds", text)


if __name__ == "__main__":
    main()
