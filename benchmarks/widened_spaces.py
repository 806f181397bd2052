"""The whole of FINN's folding space: exact fronts of widened spaces, and the nodes FINN inserts.

Run:  python benchmarks/widened_spaces.py
Two parts, each printed as a table and written to docs/benchmarks.md ("Widened spaces"):

* **Widened spaces.** For TFC-w2a2 (Pynq-Z1), CNV-w1a1 (Alveo U250 at 400 MHz) and the zoo's BERT
  encoder (ZCU104), the exact front of a *base* folding space (PE/SIMD and what the shipped blueprint
  varies) and of the *widened* one (plus implementation attributes FINN takes that change its
  estimates: TFC all of MVAU ram_style/ram_style_thresholds/resType and the thresholds' depth
  triggers; CNV the sliding windows' parallel_window and ram_style and MVAU ram_style; BERT MVAU
  ram_style and depth_trigger_uram): space size, front size, solve time, and the hypervolume of the base
  front relative to the widened front's (both in one reference box: the widened front's worst value
  per objective, 10 % beyond; 1.0 = the base space loses nothing).
* **Inserted nodes.** For TFC (ZCU104) and CNV (U250): the exact front without FINN's inserted nodes,
  with its data-width converters (``insert: dwc``) and with converters and FIFOs (``insert:
  dwc_fifo``, FINN's res_estimation after InsertDWC + InsertFIFO): front size and solve time, and how
  much the front moves: how many of the plain front's designs stay on the insertion-aware front, and
  the LUT/BRAM_18K the inserted nodes add to them (median).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

U250, ZU7 = "xcu250-figd2104-2L-e", "xczu7ev-ffvc1156-2-e"
CNV = {
    "version": "3.0", "name": "cnv-u250", "model": "zoo:cnv?w=1&a=1",
    "hw_compiler": {"kernels": ["MVAU", "ConvolutionInputGenerator", "Pool", "Thresholding", "LabelSelect"]},
    "target": {"part": U250, "clock_ns": 2.5},
    "folding": {"defaults": {"PE": "all", "SIMD": "all"}},
    "objectives": "cycles_area", "search": {"strategy": "exact"},
}


def _blueprint(base: dict | Path, work: Path, name: str, *, widen: dict | None = None, objectives=None,
               part: str | None = None, insert: str | None = None) -> Path:
    bp = copy.deepcopy(base) if isinstance(base, dict) else yaml.safe_load(base.read_text())
    folding = bp.setdefault("folding", {})
    for section, entries in (widen or {}).items():
        target = folding.setdefault(section, {})
        for key, attrs in entries.items():
            target[key] = {**target.get(key, {}), **attrs}
    if objectives:
        bp["objectives"] = objectives
    if part:
        bp.pop("target", None)
        bp.setdefault("hw_compiler", {}).get("config_flags", {}).pop("target_device", None)
        bp["target"] = {"part": part, "clock_ns": 10.0}
    if insert:
        bp["backend"] = {"name": "estimate", "options": {"insert": insert}}
    bp.setdefault("search", {})["strategy"] = "exact"
    bp["search"].pop("constraints", None) if part else None
    bp.pop("global", None)
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(bp, sort_keys=False))
    return path


def _front(path: Path):
    from bsopt.explore.exact import exact_front
    from bsopt.space.design_space import load_design_space
    from bsopt.study.objectives import ObjectiveSet

    space = load_design_space(path).require_valid()
    objectives = ObjectiveSet.from_space(space)
    t0 = time.perf_counter()
    front = exact_front(space, objectives)
    return space, objectives, front, time.perf_counter() - t0


def _vectors(points, objectives) -> np.ndarray:
    return np.array([[(-1 if d == "maximize" else 1) * p["metrics"][m]
                      for m, d in zip(objectives.metrics, objectives.directions, strict=True)] for p in points],
                    dtype=float)


def _hv(points: np.ndarray, ref: np.ndarray, lo: np.ndarray) -> float:
    """Hypervolume of a minimisation front in the box [lo, ref], objectives scaled to [0, 1]."""
    from optuna._hypervolume import compute_hypervolume

    scale = np.where(ref > lo, ref - lo, 1.0)
    inside = points[np.all(points <= ref, axis=1)]
    if not len(inside):
        return 0.0
    return float(compute_hypervolume((inside - lo) / scale, np.ones(points.shape[1])))


WIDENED = [
    ("TFC-w2a2, Pynq-Z1", ROOT / "search_spaces" / "tfc_folding.yaml", "cycles_area",
     {"kinds": {"MVAU": {"ram_style": "all", "ram_style_thresholds": "all", "resType": "all"},
                "Thresholding": {"depth_trigger_uram": "all", "depth_trigger_bram": "all"}}}),
    ("CNV-w1a1, U250 400 MHz", CNV, None,
     {"kinds": {"ConvolutionInputGenerator": {"parallel_window": "all", "ram_style": "all"},
                "MVAU": {"ram_style": "all"}}}),
    ("BERT encoder (zoo), ZCU104", ROOT / "search_spaces" / "bert_folding.yaml", "cycles_area",
     {"kinds": {"MVAU": {"ram_style": "all"}, "Thresholding": {"depth_trigger_uram": "all"}}}),
]


def widened(work: Path) -> list[dict]:
    rows = []
    for label, base, objectives, widen in WIDENED:
        b = _blueprint(base, work, "base", objectives=objectives)
        w = _blueprint(base, work, "wide", widen=widen, objectives=objectives)
        space_b, objs, front_b, t_b = _front(b)
        space_w, _, front_w, t_w = _front(w)
        vb, vw = _vectors(front_b.points, objs), _vectors(front_w.points, objs)
        lo = np.minimum(vb.min(axis=0), vw.min(axis=0))
        ref = vw.max(axis=0) + 0.1 * np.abs(vw.max(axis=0) - lo)
        ratio = _hv(vb, ref, lo) / _hv(vw, ref, lo)
        pw = sum(1 for p in front_w.points
                 if any(k.endswith("parallel_window") and v == 1 for k, v in p["values"].items()))
        row = {"case": label, "base_size": space_b.get_total_combinations(), "wide_size": space_w.get_total_combinations(),
               "base_front": len(front_b.points), "wide_front": len(front_w.points), "base_s": t_b, "wide_s": t_w,
               "hv_ratio": ratio, "pw_points": pw}
        print(row, flush=True)
        rows.append(row)
    return rows


INSERTED = [
    ("TFC-w2a2, ZCU104", ROOT / "search_spaces" / "tfc_folding.yaml", "cycles_area", ZU7),
    ("CNV-w1a1, U250 400 MHz", CNV, None, None),
]


def inserted(work: Path) -> list[dict]:
    from bsopt.backends.estimate import EstimateBackend

    rows = []
    for label, base, objectives, part in INSERTED:
        fronts = {}
        for mode in ("none", "dwc", "dwc_fifo"):
            path = _blueprint(base, work, f"ins_{mode}", objectives=objectives, part=part,
                              insert=None if mode == "none" else mode)
            fronts[mode] = _front(path)
        space, objs, plain, _ = fronts["none"]
        row = {"case": label, "plain_front": len(plain.points), "plain_s": fronts["none"][3]}
        for mode in ("dwc", "dwc_fifo"):
            space_m, _, front_m, seconds = fronts[mode]
            backend = EstimateBackend.for_space(space_m)
            on = {tuple(sorted(p["values"].items())) for p in front_m.points}
            stay = sum(1 for p in plain.points if tuple(sorted(p["values"].items())) in on)
            added_lut, added_bram = [], []
            for p in plain.points[:: max(1, len(plain.points) // 200)]:
                r = backend.build(space_m.config_from_values({**space_m.values_at(0), **p["values"]}))
                added_lut.append(r.values["LUT"] - p["metrics"]["LUT"])
                added_bram.append(r.values["BRAM_18K"] - p["metrics"]["BRAM_18K"])
            row.update({f"{mode}_front": len(front_m.points), f"{mode}_s": seconds,
                        f"{mode}_stay": stay / max(1, len(plain.points)),
                        f"{mode}_lut": statistics.median(added_lut), f"{mode}_bram": statistics.median(added_bram)})
        print(row, flush=True)
        rows.append(row)
    return rows


def write_report(out: Path, wide: list[dict], ins: list[dict]) -> None:
    from intake import machine, write_section

    lines = [
        "## Widened spaces",
        "",
        f"`python benchmarks/widened_spaces.py` on {machine()}. Exact fronts (objectives max_cycles, LUT, "
        "BRAM_18K; the device budget as constraints). *Base*: PE/SIMD (and what the shipped blueprint varies); "
        "*widened*: plus implementation attributes FINN takes that change its estimates (TFC: MVAU "
        "ram_style, ram_style_thresholds, resType and the thresholds' depth triggers; CNV: the sliding windows' "
        "parallel_window and ram_style, MVAU ram_style; BERT: MVAU ram_style and depth_trigger_uram). "
        "*HV base/widened*: the base front's hypervolume relative to the widened front's, in one box (1.0: the "
        "base space loses nothing). *pw=1*: widened-front designs with a sliding window in FINN's parallel "
        "implementation.",
        "",
        "| model, part | base space | widened space | base front | widened front | pw=1 points | base s | "
        "widened s | HV base/widened |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in wide:
        lines.append(f"| {r['case']} | {r['base_size']:.2e} | {r['wide_size']:.2e} | {r['base_front']:,} | "
                     f"{r['wide_front']:,} | {r['pw_points']:,} | {r['base_s']:.1f} | {r['wide_s']:.1f} | "
                     f"{r['hv_ratio']:.4f} |")
    lines += [
        "",
        "With FINN's inserted nodes (the estimate backend's `insert` option): the exact front without them, "
        "with the data-width converters (`dwc`) and with converters and FIFOs (`dwc_fifo`, FINN's "
        "res_estimation after InsertDWC + InsertFIFO). *stay*: share of the plain front's designs still on "
        "the insertion-aware front; *+LUT*, *+BRAM*: median resources the inserted nodes add to the plain "
        "front's designs (FINN dev's FIFO estimate counts a BRAM_18K and a URAM for every FIFO, whatever "
        "its depth).",
        "",
        "| model, part | plain front | s | dwc front | s | stay | +LUT | dwc_fifo front | s | stay | +LUT | +BRAM |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in ins:
        lines.append(f"| {r['case']} | {r['plain_front']:,} | {r['plain_s']:.1f} | {r['dwc_front']:,} | "
                     f"{r['dwc_s']:.1f} | {r['dwc_stay']:.0%} | {r['dwc_lut']:.0f} | {r['dwc_fifo_front']:,} | "
                     f"{r['dwc_fifo_s']:.1f} | {r['dwc_fifo_stay']:.0%} | {r['dwc_fifo_lut']:.0f} | "
                     f"{r['dwc_fifo_bram']:.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(out, "## Widened spaces", text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bsopt_widened_") as tmp:
        work = Path(tmp)
        wide = widened(work)
        ins = inserted(work)
    write_report(args.out, wide, ins)


if __name__ == "__main__":
    main()
