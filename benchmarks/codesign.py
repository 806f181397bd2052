"""Accuracy × hardware co-design on digits: bsopt's joint study against the uniform bit-width sweep.

Run:  python benchmarks/codesign.py            (about 10 minutes on 2 cores; trainings are real)
Writes the section "Co-design (accuracy × hardware)" of docs/benchmarks.md.

Blueprint: search_spaces/digits_codesign.yaml (a 64-64-32-10 MLP on scikit-learn's digits, Pynq-Z1 at
100 MHz, per-layer weight/activation bits in {1, 2, 4, 8}, 20 epochs of Brevitas QAT). Every trained
model's exact hardware front (its whole front, or the blueprint's 12-point spread in studies) gives
(accuracy, throughput, LUT) designs.

* **Uniform sweep** (what a FINN user does by hand): w1a1, w2a2, w4a4, w8a8, each trained once and its
  whole exact hardware front taken.
* **Joint** studies (TPE over the quantisations, median pruner against cheaper peers; a new study's
  first four proposals are the sweep's uniform quantisations): 12 quantisations (3x the sweep's
  trainings) and the blueprint's 48; and 48 with successive halving and with the pruner off, for the
  pruners' saving.

Per variant: trainings, epochs trained, training and wall time, designs; the hypervolume of its
(accuracy ↑, throughput ↑, LUT ↓) front in one reference box for all variants (the union's range, 10 %
wider); and the smallest design (LUT) reaching an accuracy floor, with its accuracy and quantisation.
Each variant starts from an empty training cache.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
BLUEPRINT = ROOT / "search_spaces" / "digits_codesign.yaml"
FLOORS = (0.9, 0.95)
FAST = 1e6  # a throughput floor (inferences/s) for the smallest-design question at speed


def _fresh_cache(work: Path, name: str) -> None:
    os.environ["BSOPT_MODEL_CACHE"] = str(work / f"models-{name}")


def uniform(work: Path) -> dict:
    from bsopt.blueprint.loader import read_blueprint
    from bsopt.explore.codesign import hardware_front
    from bsopt.models.quantized import Quantization, train_and_export
    from bsopt.space.design_space import load_design_space
    from bsopt.study.objectives import ObjectiveSet

    _fresh_cache(work, "uniform")
    bp, _ = read_blueprint(BLUEPRINT)
    objectives = ObjectiveSet.from_space(load_design_space(BLUEPRINT))
    t0 = time.time()
    designs, epochs, train_s = [], 0, 0.0
    for b in (1, 2, 4, 8):
        q = Quantization((b, b, b), (b, b, 8))
        trained = train_and_export(bp.quantization, bp.training, q, work / "models-uniform" / "trained")
        epochs += len(trained.curve)
        train_s += trained.seconds
        front = hardware_front(BLUEPRINT, trained.model_path, objectives, None)
        designs += [{"quantization": q.label, "accuracy": trained.accuracy, **p["metrics"]} for p in front.points]
    return {"variant": "uniform sweep w1a1..w8a8", "trainings": 4, "pruned": 0, "epochs": epochs,
            "train_s": train_s, "wall_s": time.time() - t0, "designs": designs}


def joint(work: Path, name: str, n: int, pruner: str | None = None) -> dict:
    import bsopt

    _fresh_cache(work, name)
    bp = BLUEPRINT
    if pruner is not None:
        bp = work / f"{name}.yaml"
        bp.write_text(BLUEPRINT.read_text().replace("pruner: {name: median, n_warmup_steps: 4}", f"pruner: {pruner}"))
    t0 = time.time()
    study = bsopt.create_study(name, bp, storage=f"sqlite:///{work / 'bench.db'}", n_trials=n)
    stats = study.optimize(n_trials=n, progress=False)
    wall = time.time() - t0
    designs = []
    for t in study.optuna.get_trials(deepcopy=False):
        a = t.user_attrs
        if t.state.name == "COMPLETE" and a.get("feasible"):
            designs.append({"quantization": a["quantization"], "accuracy": a["m:accuracy"],
                            "throughput_fps": a["m:throughput_fps"], "LUT": a["m:LUT"]})
    label = f"joint, {n} quantisations, " + {None: "median pruner", "none": "pruner off",
                                             "successive_halving": "successive halving"}[pruner]
    return {"variant": label, "trainings": stats.trainings, "pruned": stats.pruned, "epochs": stats.trained_epochs,
            "epochs_saved": stats.epochs_saved, "unbuildable": stats.unbuildable, "train_s": stats.training_seconds,
            "wall_s": wall, "designs": designs}


def _front(points: np.ndarray) -> np.ndarray:
    from bsopt.pareto import front_indices

    return points[front_indices(points)] if len(points) else points


def summarise(rows: list[dict]) -> None:
    from bsopt.study.queries import box_hypervolume, reference_box

    def minimised(designs):
        return np.array([[-d["accuracy"], -d["throughput_fps"], d["LUT"]] for d in designs], dtype=float)

    union = np.vstack([minimised(r["designs"]) for r in rows if r["designs"]])
    box = reference_box(union.min(axis=0), union.max(axis=0))
    for r in rows:
        pts = minimised(r["designs"])
        front = _front(pts)
        r["front"] = len(front)
        r["hv"] = box_hypervolume(front, box)
        for floor in FLOORS:
            ok = [d for d in r["designs"] if d["accuracy"] >= floor]
            best = min(ok, key=lambda d: (d["LUT"], -d["accuracy"])) if ok else None
            r[f"best@{floor}"] = None if best is None else {k: best[k] for k in ("LUT", "accuracy", "throughput_fps",
                                                                                   "quantization")}
        fast = [d for d in r["designs"] if d["accuracy"] >= 0.95 and d["throughput_fps"] >= FAST]
        best = min(fast, key=lambda d: (d["LUT"], -d["accuracy"])) if fast else None
        r["best@0.95fast"] = None if best is None else {k: best[k] for k in ("LUT", "accuracy", "throughput_fps",
                                                                               "quantization")}
        r["best_accuracy"] = max((d["accuracy"] for d in r["designs"]), default=None)


def write_report(out: Path, rows: list[dict]) -> None:
    from intake import machine, write_section

    def best(r, floor):
        b = r[f"best@{floor}"]
        return "—" if b is None else f"{b['LUT']:,.0f} LUT ({b['accuracy']:.3f}, {b['quantization']})"

    lines = [
        "## Co-design (accuracy × hardware)",
        "",
        f"`python benchmarks/codesign.py` on {machine()}. {BLUEPRINT.relative_to(ROOT)}: a 64-64-32-10 MLP on "
        "scikit-learn's digits (450 held-out images), Pynq-Z1 at 100 MHz, weight/activation bits per layer in "
        "{1, 2, 4, 8} (1,024 quantisations), 20 epochs of Brevitas QAT each; every trained model's folding solved "
        "exactly. *HV*: hypervolume of the (accuracy ↑, throughput ↑, LUT ↓) front in one box for all rows (the "
        "union's range, 10 % wider). *Smallest ≥ floor*: the fewest LUTs of a design reaching that held-out "
        "accuracy (its accuracy and quantisation, `wA-B-C aX-Y-Z` = per-layer bits). Each row starts with an "
        "empty training cache; times are wall-clock on a shared machine (compare rows, not absolutes).",
        "",
        "| variant | trainings (pruned) | epochs trained | training s | wall s | designs | front | HV "
        "| best accuracy | smallest ≥ 0.90 | smallest ≥ 0.95 | smallest ≥ 0.95 at ≥ 10⁶ fps |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['trainings']} ({r['pruned']}) | {r['epochs']} | {r['train_s']:.0f} | "
                     f"{r['wall_s']:.0f} | {r.get('n_designs', len(r.get('designs', [])))} | {r['front']} | {r['hv']:.4f} | "
                     f"{r['best_accuracy']:.3f} | {best(r, 0.9)} | {best(r, 0.95)} | {best(r, '0.95fast')} |")
    sweep = rows[0]
    for r in rows[1:]:
        if "median" not in r["variant"]:
            continue
        a, b = sweep["best@0.95fast"], r["best@0.95fast"]
        saving = f"; its smallest design ≥ 0.95 at ≥ 10⁶ fps uses {b['LUT']:,.0f} LUT ({b['quantization']}) against " \
                 f"the sweep's {a['LUT']:,.0f} ({a['quantization']}), {1 - b['LUT'] / a['LUT']:.0%} fewer" if a and b else ""
        lines += ["", f"Joint with {r['trainings']} trainings ({r['trainings'] // sweep['trainings']}x the sweep's): "
                  f"HV {r['hv']:.4f} against the sweep's {sweep['hv']:.4f}{saving}."]
    off = next((r for r in rows if "pruner off" in r["variant"]), None)
    for r in rows:
        if off is None or r is off or not r["variant"].startswith("joint") or r["trainings"] != off["trainings"]:
            continue
        lines += ["", f"Pruner ({r['variant'].split(', ')[-1]}): {r['pruned']} of {r['trainings']} trainings stopped "
                  f"early, {r['epochs_saved']} epochs not trained ({r['epochs']} trained vs {off['epochs']} with the "
                  f"pruner off: {1 - r['epochs'] / max(off['epochs'], 1):.0%} fewer), training time {r['train_s']:.0f} s "
                  f"vs {off['train_s']:.0f} s; front HV {r['hv']:.4f} vs {off['hv']:.4f}."]
    lines += ["", "Each joint study's first four trainings are the sweep's uniform quantisations. Proposals FINN cannot "
              "build (1-bit activations into multi-bit weights: "
              + ", ".join(f"{r['unbuildable']}" for r in rows if "unbuildable" in r)
              + " in the joint rows) are not trained; their nearest buildable quantisation is trained instead."]
    lines.append("")
    write_section(out, "## Co-design (accuracy × hardware)", "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--trials", type=int, default=48)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.chdir(work)
        rows = [uniform(work), joint(work, "joint12", 12), joint(work, "joint", args.trials),
                joint(work, "joint-sha", args.trials, pruner="successive_halving"),
                joint(work, "joint-nopruner", args.trials, pruner="none")]
        os.chdir(ROOT)
    summarise(rows)
    results = ROOT / "benchmarks" / "results" / "codesign.jsonl"
    with open(results, "w") as fh:  # the figures behind the report (designs counted, not listed)
        for r in rows:
            line = json.dumps({**{k: v for k, v in r.items() if k != "designs"}, "n_designs": len(r["designs"])})
            print(line, flush=True)
            fh.write(line + "\n")
    write_report(args.out, rows)


if __name__ == "__main__":
    main()
