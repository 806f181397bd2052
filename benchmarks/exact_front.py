"""Exact fronts as trials: how long evaluating and storing a whole exact Pareto front takes, and that
the cost per trial does not grow with the front.

Run:  python benchmarks/exact_front.py [--cases cnv_w1a1,cnv_w2a2_zcu104]
Per case (a space in benchmarks/spaces/), in fresh processes on a fresh study root:
  * the command a user runs, ``bsopt study create NAME --blueprint SPACE --sampler exact`` then
    ``bsopt study optimize NAME --quiet`` (the whole front: computed, every point estimated as a
    trial, stored, the dashboard figures published, the first rows of the front printed): wall time
    and peak RSS of each;
  * the same through the Python API with the phases timed apart: the exact solve, the run
    (evaluate + store every point), the ms per trial over the first and the last tenth of the
    trials (from the stored completion times), and reading the Pareto set back.
Prints a table and writes the section "Exact fronts as trials" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _env(work: Path) -> dict:
    from finn_reference import REFERENCE

    env = dict(os.environ, BSOPT_WORKDIR=str(work / "studies"), BSOPT_FINN_REFERENCE=str(REFERENCE))
    env.setdefault("BSOPT_MODEL_CACHE", str(Path(tempfile.gettempdir()) / "bsopt_bench_models"))
    return env


def cli(case: str) -> dict:
    """The two commands, each timed in its own child (peak RSS of that child only)."""
    work = Path(tempfile.mkdtemp(prefix="bsopt_exact_"))
    space = ROOT / "benchmarks" / "spaces" / f"{case}.yaml"
    out = {}
    try:
        for step, argv in (("create", ["study", "create", "e", "--blueprint", str(space), "--sampler", "exact"]),
                           ("optimize", ["study", "optimize", "e", "--quiet"])):
            code = ("import resource, subprocess, sys, time, json\n"
                    "t = time.perf_counter()\n"
                    f"p = subprocess.run([sys.executable, '-m', 'bsopt', *{argv!r}], capture_output=True, text=True)\n"
                    "w = time.perf_counter() - t\n"
                    "print(json.dumps({'rc': p.returncode, 'wall_s': w, 'out': p.stdout[-3000:] + p.stderr[-3000:],"
                    " 'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n")
            r = json.loads(subprocess.run([sys.executable, "-c", code], cwd=work, env=_env(work), check=True,
                                          capture_output=True, text=True).stdout)
            if r["rc"] != 0:
                raise SystemExit(f"{case}: bsopt {' '.join(argv)} failed:\n{r['out']}")
            out[f"{step}_s"], out[f"{step}_rss_mib"] = r["wall_s"], r["rss"]
            if step == "optimize":
                out["cli_summary"] = next((ln for ln in r["out"].splitlines() if ln.startswith("exact front:")), "")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def api(case: str) -> dict:
    """Phases through the Python API, in this (child) process."""
    work = Path(tempfile.mkdtemp(prefix="bsopt_exact_"))
    os.environ.update(_env(work))
    os.chdir(work)
    try:
        import bsopt
        from bsopt.storage import rdb

        t0 = time.perf_counter()
        study = bsopt.create_study("e", ROOT / "benchmarks" / "spaces" / f"{case}.yaml", sampler="exact")
        t1 = time.perf_counter()
        stats = study.optimize(progress=False)
        t2 = time.perf_counter()
        front = study.pareto()
        t3 = time.perf_counter()
        info = study.exact_front
        trials = sorted(rdb.read_trials(study.optuna), key=lambda t: t.number)
        done = [t.datetime_complete.timestamp() for t in trials]
        k = max(2, len(done) // 10)
        first = (done[k - 1] - done[0]) / (k - 1) * 1000
        last = (done[-1] - done[-k]) / (k - 1) * 1000
        return {"front": info["front_size"], "solve_s": info["seconds"], "create_s": t1 - t0,
                "run_s": t2 - t1, "trials": stats.trials, "feasible": stats.feasible, "ms_first": first,
                "ms_last": last, "pareto_s": t3 - t2, "pareto_rows": len(front),
                "api_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    finally:
        os.chdir(ROOT)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="cnv_w1a1,cnv_w2a2_zcu104")
    ap.add_argument("--child", choices=("api",), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(api(args.cases)))
        return
    rows = []
    for case in args.cases.split(","):
        r = {"case": case, **cli(case)}
        child = subprocess.run([sys.executable, __file__, "--child", "api", "--cases", case], check=True,
                               capture_output=True, text=True)
        r.update(json.loads(child.stdout.strip().splitlines()[-1]))
        print(json.dumps(r), flush=True)
        rows.append(r)
    write_report(args, rows)


def write_report(args, rows: list[dict]) -> None:
    from intake import machine, write_section

    lines = [
        "## Exact fronts as trials",
        "",
        f"`python benchmarks/exact_front.py --cases {args.cases}` on {machine()}. The exact strategy's "
        "whole front, every point estimated and stored as a trial (SQLite, 1 worker). *CLI*: `bsopt study "
        "create … --sampler exact` then `bsopt study optimize` (everything a user waits for, including the "
        "dashboard figures and the printed front), each command's wall time and peak RSS. *API*: the same "
        "through `bsopt.create_study(...).optimize()`, phases apart: *solve* (the exact front), *run* "
        "(solve + evaluate + store), ms per trial over the first and the last tenth of the trials (flat: "
        "the cost per trial does not grow with the front), *pareto* (reading the front back).",
        "",
        "| space | front | CLI create s | CLI optimize s | CLI peak MiB | solve s | run s | ms/trial first 10 % | "
        "ms/trial last 10 % | pareto s | API peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['case']} | {r['front']:,} | {r['create_s']:.1f} | {r['optimize_s']:.1f} | "
                     f"{max(r['create_rss_mib'], r['optimize_rss_mib']):.0f} | {r['solve_s']:.1f} | "
                     f"{r['run_s']:.1f} | {r['ms_first']:.2f} | {r['ms_last']:.2f} | {r['pareto_s']:.1f} | "
                     f"{r['api_rss_mib']:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(args.out, "## Exact fronts as trials", text)


if __name__ == "__main__":
    main()
