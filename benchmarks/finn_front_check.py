"""A whole exact Pareto front checked by real FINN: every point of bsopt's exact front, its folding
config given to FINN (dev 73ba5ed, ../shared/finn_src), must have the metrics bsopt reports for it.

Run:  python benchmarks/finn_front_check.py [--blueprint BP] [--finn-home DIR] [--limit N] [--full-builds K]
The default blueprint: CNV-w1a1 on an Alveo U250 part (xcu250-figd2104-2L-e) at 2.5 ns, PE/SIMD of
every layer free and ``parallel_window: all`` for the sliding windows, objectives cycles_area, the
estimate backend (tests/test_real_finn.py's PW_BLUEPRINT); its front has several hundred points.

How. A full FINN build takes ~20 s a point, so FINN runs each point from a checkpoint instead:
  1. bsopt computes the exact front (``exact_front``) and each point's BuildConfig;
  2. one real FINN build (``FinnBackend.build``, a ``python -m finn.builder.build_dataflow`` process)
     of the first point's config, with its intermediate models saved;
  3. per point, a FINN build folder as bsopt's finn backend writes it (model.onnx, folding_config.json,
     dataflow_build_config.json) plus ``start_step: step_apply_folding_config`` and the first build's
     ``output/intermediate_models`` linked in: FINN's own builder (``build_dataflow_directory``, what
     ``python -m finn.builder.build_dataflow DIR`` calls) resumes from the checkpoint before that step
     and runs step_apply_folding_config, step_minimize_bit_width, step_generate_estimate_reports —
     for all points in ONE FINN Python process (this file with ``--worker``);
  4. bsopt's reader of FINN's reports (``finn_outputs.read_outputs``, as the finn backend uses it)
     turns each folder's reports into metrics, compared exactly with the front's: max_cycles, LUT,
     BRAM_18K, URAM, DSP (throughput_fps too).
The steps before step_apply_folding_config do not depend on the folding (no target_fps), so the one
checkpoint serves every point whose other inputs (specialize config, model, build flags) are the
first point's; points that differ in those get a full build of their own group. The fast path is
validated against full builds: the sample of tests/test_real_finn.py (4 points with a
parallel_window=1 window, 2 without) is also built by separate FINN processes, whose reports must equal
the in-process ones (all estimate metrics).

Prints: front size, points with parallel_window=1, points checked, mismatches (the first few in
detail), FINN's seconds per point, the total time. Exit status 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLUEPRINT = """\
version: "3.0"
name: cnv-parallel-window
model: zoo:cnv?w=1&a=1
hw_compiler:
  kernels: [MVAU, ConvolutionInputGenerator, Pool, Thresholding, LabelSelect]
target: {part: xcu250-figd2104-2L-e, clock_ns: 2.5}
folding:
  defaults: {PE: all, SIMD: all}
  kinds:
    ConvolutionInputGenerator: {parallel_window: all}
objectives: cycles_area
search: {strategy: exact}
"""

#: compared exactly with the front's metrics
CHECKED = ("max_cycles", "LUT", "BRAM_18K", "URAM", "DSP", "throughput_fps")
#: what a full build and an in-process build must agree on (all of FINN's estimate reports)
FINN_METRICS = ("throughput_fps", "latency_ns", "max_cycles", "critical_path_cycles", "LUT", "BRAM_18K", "URAM",
                "DSP")
RESUME_STEP = "step_apply_folding_config"


# -- the FINN side: runs under FINN's python, imports no bsopt ----------------------------------------
def worker(jobs_file: str) -> None:
    """Every folder listed in ``jobs_file`` built by FINN's builder in this process; one JSON line per
    folder (index, FINN's return code, seconds) appended to the results file."""
    import logging
    import warnings

    from finn.builder.build_dataflow import build_dataflow_directory

    # FINN's ApplyConfig warns about configs without a node (and nodes without a config) through
    # warnings.warn: in one process a repeated message would show once only
    warnings.simplefilter("always")

    jobs = json.loads(Path(jobs_file).read_text())
    progress = sys.__stderr__
    t0 = time.perf_counter()
    with open(jobs["results"], "a") as out:
        for n, (i, folder) in enumerate(jobs["folders"], 1):
            t = time.perf_counter()
            try:
                rc = build_dataflow_directory(folder)
            except BaseException as exc:  # noqa: BLE001 - recorded, the next point goes on
                rc = f"{type(exc).__name__}: {exc}"
            dt = time.perf_counter() - t
            # FINN replaces its log file handler per build without closing the old one
            for h in logging.getLogger("build_dataflow").handlers[:]:
                h.close()
                logging.getLogger("build_dataflow").removeHandler(h)
            out.write(json.dumps({"i": i, "rc": rc, "s": dt}) + "\n")
            out.flush()
            if n % 50 == 0 or n == len(jobs["folders"]):
                el = time.perf_counter() - t0
                print(f"  FINN: {n}/{len(jobs['folders'])} points, {el:.0f} s ({el / n:.2f} s/point)",
                      file=progress, flush=True)


# -- the bsopt side ---------------------------------------------------------------------------------
def windowed(cfg) -> bool:
    return any(isinstance(e, dict) and e.get("parallel_window") == 1 for e in (cfg.folding_config or {}).values())


def test_sample(cfgs: list) -> list[int]:
    """The indices tests/test_real_finn.py builds: 4 windowed points and 2 plain ones, spread out."""
    win = [i for i, (_, c) in enumerate(cfgs) if windowed(c)]
    plain = [i for i, (_, c) in enumerate(cfgs) if not windowed(c)]
    return win[:: max(1, len(win) // 4)][:4] + plain[:: max(1, len(plain) // 2)][:2]


def group_key(cfg, dcfg: dict) -> str:
    """What the checkpoint before step_apply_folding_config depends on: everything but the folding."""
    rest = {k: v for k, v in dcfg.items() if k != "folding_config_file"}
    return json.dumps([cfg.model_path, cfg.specialize_config, rest], sort_keys=True, default=str)


def write_folder(folder: Path, cfg, dcfg: dict, base: Path) -> None:
    """A FINN build folder for ``cfg`` (the files FinnBackend.prepare writes) that resumes from the base
    build's checkpoint before step_apply_folding_config."""
    folder.mkdir(parents=True)
    os.symlink(base / "model.onnx", folder / "model.onnx")
    (folder / "output").mkdir()
    os.symlink(base / "output" / "intermediate_models", folder / "output" / "intermediate_models")
    if cfg.folding_config is not None:
        (folder / "folding_config.json").write_text(json.dumps(cfg.folding_config, indent=2))
    if cfg.specialize_config is not None:
        (folder / "specialize_layers_config.json").write_text(json.dumps(cfg.specialize_config, indent=2))
    d = dict(dcfg, start_step=RESUME_STEP, save_intermediate_models=False)  # never write into the base's
    (folder / "dataflow_build_config.json").write_text(json.dumps(d, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blueprint", type=Path, help="default: the CNV parallel_window blueprint above")
    ap.add_argument("--finn-home", type=Path,
                    default=Path(os.environ.get("BSOPT_FINN_HOME", Path.home() / ".cache" / "bsopt" / "finn")))
    ap.add_argument("--limit", type=int, help="check N points spread over the front (plus the full-build sample)")
    ap.add_argument("--full-builds", type=int, default=6,
                    help="points also built by separate FINN processes to validate the fast path (default: "
                    "the test's sample of 6; 0: none)")
    ap.add_argument("--workdir", type=Path, help="keep the build folders here (default: a temp dir, removed)")
    ap.add_argument("--show", type=int, default=5, help="mismatches shown in detail")
    args = ap.parse_args()

    t_start = time.perf_counter()
    python = args.finn_home / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"no FINN at {args.finn_home} (run ../shared/finn_src/setup_finn.sh DIR, or --finn-home)")
    tmp = tempfile.TemporaryDirectory(prefix="finn_front_check_") if args.workdir is None else None
    work = Path(tmp.name if tmp else args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    os.environ["BSOPT_WORKDIR"] = str(work / "studies")
    os.environ.setdefault("BSOPT_MODEL_CACHE", str(Path(tempfile.gettempdir()) / "bsopt_bench_models"))
    bp = args.blueprint
    if bp is None:
        bp = work / "cnv_parallel_window.yaml"
        bp.write_text(BLUEPRINT)

    from bsopt.backends.finn import FinnBackend
    from bsopt.backends.finn_config import dataflow_build_config
    from bsopt.backends.finn_outputs import read_outputs
    from bsopt.explore.exact import exact_front
    from bsopt.space.design_space import load_design_space
    from bsopt.study.objectives import ObjectiveSet

    # 1. the front
    t = time.perf_counter()
    space = load_design_space(bp, for_builds=True).require_valid()
    front = exact_front(space, ObjectiveSet.from_space(space))
    cfgs = [(p, space.config_from_values(p["values"])) for p in front.points]
    t_front = time.perf_counter() - t
    n_win = sum(windowed(c) for _, c in cfgs)
    per_point = Counter(sum(isinstance(e, dict) and e.get("parallel_window") == 1
                            for e in (c.folding_config or {}).values()) for _, c in cfgs)
    print(f"blueprint: {bp}")
    print(f"front: {len(cfgs)} points ({t_front:.1f} s); with parallel_window=1: {n_win}")
    if not cfgs:
        raise SystemExit("empty front")

    sample = test_sample(cfgs) if args.full_builds else []
    sample = sample[: args.full_builds] if args.full_builds < len(sample) else sample
    if args.limit is not None and args.limit < len(cfgs):
        step = len(cfgs) / max(1, args.limit)
        chosen = sorted({int(k * step) for k in range(args.limit)} | set(sample))
    else:
        chosen = list(range(len(cfgs)))

    target = space.fixed_target()
    model = str(Path(space.model_path).resolve())
    command = [str(python), "-m", "finn.builder.build_dataflow", "{build_dir}"]
    finn = FinnBackend(model, target["finn_version"], target["part"], {"command": command}, workdir=work)

    def dcfg_of(cfg) -> dict:
        d = dataflow_build_config(cfg)
        if not d.get("fpga_part") and finn.part:
            d["fpga_part"] = finn.part
        return d

    def metrics_of(output: Path, dcfg: dict) -> dict:
        out = read_outputs(output, clock_ns=float(dcfg.get("synth_clk_period_ns") or 10.0),
                           part=dcfg.get("fpga_part") or finn.part, requested=list(dcfg.get("generate_outputs", [])))
        return out.values

    # 2. one full build per group of points sharing the checkpoint (one group here)
    t = time.perf_counter()
    groups: dict[str, Path] = {}
    full: dict[int, dict] = {}
    folders: list[tuple[int, str]] = []
    for i in chosen:
        cfg = cfgs[i][1]
        dcfg = dcfg_of(cfg)
        steps = dcfg.get("steps") or []
        if RESUME_STEP not in steps[1:]:
            raise SystemExit(f"the flow {steps} has no step before {RESUME_STEP}")
        key = group_key(cfg, dcfg)
        if key not in groups:
            res = finn.build(cfg)
            if not res.ok:
                raise SystemExit(f"the base FINN build of point {i} failed: {res.error_message}")
            base = Path(res.artifacts["build_dir"])
            ckpt = base / "output" / "intermediate_models" / f"{steps[steps.index(RESUME_STEP) - 1]}.onnx"
            if not ckpt.exists():
                raise SystemExit(f"FINN saved no {ckpt.name} (save_intermediate_models?)")
            groups[key] = base
            full[i] = res.values
        write_folder(work / "points" / f"p{i:04d}", cfg, dcfg, groups[key])
        folders.append((i, str(work / "points" / f"p{i:04d}")))
    t_base = time.perf_counter() - t
    print(f"base FINN build(s): {len(groups)} ({t_base:.1f} s)")

    # 3. FINN on every point, in one process
    results = work / "results.jsonl"
    jobs = work / "jobs.json"
    jobs.write_text(json.dumps({"results": str(results), "folders": folders}))
    print(f"FINN (one process) on {len(folders)} points ...", flush=True)
    t = time.perf_counter()
    with open(work / "worker.log", "w") as log:
        proc = subprocess.run([str(python), str(Path(__file__).resolve()), "--worker", str(jobs)], stdout=log,
                              cwd=work)
    t_finn = time.perf_counter() - t
    done = {r["i"]: r for r in map(json.loads, results.read_text().splitlines())} if results.exists() else {}
    if proc.returncode != 0:
        print(f"the FINN process exited {proc.returncode} (log: {work / 'worker.log'})")

    # 4. compare
    mismatches: list[tuple[int, str, float, float]] = []
    failed: list[tuple[int, str]] = []
    inproc: dict[int, dict] = {}
    for i, folder in folders:
        r = done.get(i)
        if r is None or r["rc"] != 0:
            failed.append((i, "not run" if r is None else str(r["rc"])))
            continue
        dcfg = json.loads((Path(folder) / "dataflow_build_config.json").read_text())
        try:
            values = metrics_of(Path(folder) / "output", dcfg)
        except Exception as exc:  # noqa: BLE001
            failed.append((i, f"reports: {exc}"))
            continue
        inproc[i] = values
        log = (Path(folder) / "output" / "build_dataflow.log").read_text(errors="replace")
        for warning in ("Unused HW configurations", "No HW configuration for nodes"):
            if warning in log:
                failed.append((i, f"FINN's ApplyConfig warned: {warning}"))
        for k in CHECKED:
            if values[k] != float(cfgs[i][0]["metrics"][k]):
                mismatches.append((i, k, float(cfgs[i][0]["metrics"][k]), values[k]))
    bad = sorted({m[0] for m in mismatches})

    # 5. the fast path against full builds
    t = time.perf_counter()
    validation: list[str] = []
    for i in sample:
        if i not in full:
            res = finn.build(cfgs[i][1])
            if not res.ok:
                validation.append(f"point {i}: full build failed: {res.error_message}")
                continue
            full[i] = res.values
    for i in sorted(full):
        if i not in inproc:
            validation.append(f"point {i}: no in-process result")
            continue
        diff = {k: (full[i][k], inproc[i][k]) for k in FINN_METRICS if full[i][k] != inproc[i][k]}
        if diff:
            validation.append(f"point {i}: full build != in-process: {diff}")
    t_val = time.perf_counter() - t

    secs = [r["s"] for r in done.values()]
    print()
    print(f"front size:                       {len(cfgs)}")
    print(f"points with parallel_window=1:    {n_win} (windows with parallel_window=1 per point: "
          + ", ".join(f"{k}: {per_point[k]} points" for k in sorted(per_point)) + ")")
    print(f"points checked:                   {len(inproc)} of {len(chosen)} run by FINN"
          f" ({sum(windowed(cfgs[i][1]) for i in inproc)} with parallel_window=1)")
    print(f"metrics compared exactly:         {', '.join(CHECKED)}")
    print(f"points with a mismatch:           {len(bad)} ({len(mismatches)} metric values)")
    for i, k, b, f in mismatches[: args.show]:
        print(f"  point {i} ({cfgs[i][1].config_id}): {k}: bsopt {b!r}, FINN {f!r}")
    if failed:
        print(f"FINN failures / warnings:         {len(failed)}")
        for i, why in failed[: args.show]:
            print(f"  point {i}: {why}")
    print(f"full FINN builds (validation):    {len(full)} points {sorted(full)}; "
          f"{'all equal the in-process reports' if not validation else 'DIFFER'} ({t_val:.0f} s + base)")
    for v in validation:
        print(f"  {v}")
    if secs:
        print(f"FINN time per point (in-process): mean {sum(secs) / len(secs):.3f} s, min {min(secs):.3f}, "
              f"max {max(secs):.3f}; process {t_finn:.1f} s for {len(secs)} points")
    print(f"total time:                       {time.perf_counter() - t_start:.1f} s "
          f"(front {t_front:.1f}, base build {t_base:.1f}, FINN {t_finn:.1f}, validation {t_val:.1f})")
    if args.workdir:
        print(f"build folders: {work / 'points'}")
    if tmp:
        tmp.cleanup()
    sys.exit(1 if (mismatches or failed or validation) else 0)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
    else:
        main()
