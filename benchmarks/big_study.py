"""Big studies from the command line: every command a user runs on a 20,000-trial study, each timed in
its own process with that process's peak RSS (``os.wait4``), and how long ``optimize`` takes to start
its first trial.

Run:  python benchmarks/big_study.py [--trials 20000] [--sampler nsga2]
The study: TFC-w2a2 per-layer folding on a Pynq-Z1 (search_spaces/tfc_folding.yaml, 6.9e10
configurations), SQLite, the estimate backend. Prints a table and writes the section "Big studies" of
docs/benchmarks.md. Targets (issue 19): list/status/pareto/best < 5 s and < 300 MB each; the run's
peak < 1 GB including its end-of-run summary; optimize's first trial < 5 s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
BLUEPRINT = ROOT / "search_spaces" / "tfc_folding.yaml"


def run(argv: list[str], cwd: Path, env: dict) -> dict:
    """One bsopt command through a small wrapper process whose RUSAGE_CHILDREN is this one command's
    peak: wall seconds, peak RSS (MiB), its start time, output."""
    code = ("import json, resource, subprocess, sys, time\n"
            "t = time.perf_counter(); s = time.time()\n"
            f"p = subprocess.run([sys.executable, '-m', 'bsopt.cli', *{argv!r}], capture_output=True, text=True)\n"
            "print(json.dumps({'rc': p.returncode, 'wall_s': time.perf_counter() - t, 'started': s,"
            " 'out': p.stdout[-4000:], 'err': p.stderr[-4000:],"
            " 'rss_mib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n")
    r = json.loads(subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, check=True,
                                  capture_output=True, text=True).stdout)
    if r["rc"] != 0:
        raise SystemExit(f"bsopt {' '.join(argv)} failed ({r['rc']}):\n{r['err']}")
    return r


def first_trial_s(work: Path, name: str, before: int, started: float) -> float:
    """Seconds from the optimize process's start to its first trial's start (as stored)."""
    import optuna

    storage = f"sqlite:///{work / 'studies' / 'bsopt.db'}"
    study = optuna.load_study(study_name=name, storage=storage)
    from bsopt.storage import rdb

    new = [t for t in rdb.read_trials(study, keys=()) if t.number >= before]
    first = min(t.datetime_start for t in new)
    return first.timestamp() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20000)
    ap.add_argument("--sampler", default="nsga2")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bsopt_big_"))
    env = {k: v for k, v in os.environ.items() if k != "BSOPT_WORKDIR"}
    env.setdefault("BSOPT_MODEL_CACHE", str(Path(tempfile.gettempdir()) / "bsopt_bench_models"))
    rows = []
    try:
        steps = [
            ("study create (the run, its summary and plot)",
             ["study", "create", "big", "--blueprint", str(BLUEPRINT), "--sampler", args.sampler, "--seed", "0",
              "-n", str(args.trials), "--quiet"]),
            ("study list", ["study", "list"]),
            ("study status", ["study", "status", "big"]),
            ("study pareto --json", ["study", "pareto", "big", "--json"]),
            ("study pareto --where", ["study", "pareto", "big", "--where", "LUT < 20000"]),
            ("study best", ["study", "best", "big"]),
            ("study best --metric LUT", ["study", "best", "big", "--metric", "LUT"]),
            ("study optimize -n 100 (resume)", ["study", "optimize", "big", "-n", "100", "--quiet"]),
        ]
        for label, argv in steps:
            before = 0
            if label.startswith("study optimize"):
                before = json.loads(run(["study", "status", "big", "--json"], work, env)["out"])["trials"]
            r = run(argv, work, env)
            row = {"command": label, "wall_s": r["wall_s"], "rss_mib": r["rss_mib"]}
            if label.startswith("study optimize"):
                row["first_trial_s"] = first_trial_s(work, "big", before, r["started"])
            rows.append(row)
            print(json.dumps(row), flush=True)
        status = json.loads(run(["study", "status", "big", "--json"], work, env)["out"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(args, rows, status)


def write_report(args, rows: list[dict], status: dict) -> None:
    from intake import machine, write_section

    recorded = (status.get("resources") or {}).get("peak_driver_rss_mb")
    lines = [
        "## Big studies",
        "",
        f"`python benchmarks/big_study.py --trials {args.trials} --sampler {args.sampler}` on {machine()}: "
        f"a {args.trials:,}-trial {args.sampler} study of TFC-w2a2 per-layer folding "
        "(search_spaces/tfc_folding.yaml, 6.9·10^10 configurations, SQLite, estimate backend), then every "
        "command a user runs on it, each in its own process: wall time and that process's peak RSS "
        "(imports included). Read commands read only the attributes they answer (constraints and the "
        "metrics asked for; all attributes for the answer's trials only); `optimize` resumes from a "
        "bounded history (the stored front and the latest 1,000 trials, read by id) and continues "
        "NSGA-II at its last generation. Targets (issue 19): list/status/pareto/best < 5 s and < 300 MB; "
        "the run's peak < 1 GB including its end-of-run summary; the first trial of `optimize` < 5 s.",
        "",
        "| command | wall s | peak RSS MiB | first trial s |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        first = f"{r['first_trial_s']:.1f}" if "first_trial_s" in r else ""
        lines.append(f"| `{r['command']}` | {r['wall_s']:.1f} | {r['rss_mib']:.0f} | {first} |")
    shown = f"{recorded:.0f} MiB" if recorded else "not recorded"
    lines += ["", "The study's recorded peak driver RSS (`study status`, `resources`: the kernel's high-water "
              f"mark of the driver): {shown}. Measured {datetime.date.today().isoformat()}.", ""]
    text = "\n".join(lines)
    print(text)
    write_section(args.out, "## Big studies", text)


if __name__ == "__main__":
    main()
