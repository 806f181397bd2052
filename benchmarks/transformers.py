"""Transformers: BERT encoders through bsopt — export, lowering, space size, estimate speed, exact front.

For the zoo encoder at two sizes (the default: 1 layer, hidden 128, 4 heads, sequence 32; and
BERT-small-like: 4 layers, hidden 256, 4 heads, sequence 128, ff 1024): the Brevitas export, the
lowering to FINN dataflow layers, the size of a per-kind folding space over every layer (the
bert_exploration.yaml kinds), the time of one whole-network estimate (cold, and with per-node
memoisation while one layer changes at a time) and the exact Pareto front of throughput vs LUT and
BRAM under the U250 constraints of bert_exploration.yaml.

Run:  python benchmarks/transformers.py
Prints a table and writes the section "Transformers" of docs/benchmarks.md.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from intake import machine, write_section  # noqa: E402

from bsopt.estimate.network import estimate_network  # noqa: E402
from bsopt.lowering import LoweringOptions, lower  # noqa: E402
from bsopt.models import export_model  # noqa: E402

SIZES = {
    "default": {},
    "small": {"layers": 4, "hidden": 256, "heads": 4, "seq": 128, "ff": 1024},
}
PART = "xcu250-figd2104-2L-e"

BLUEPRINT = """
version: "3.0"
name: bert-bench
model: {model}
hw_compiler:
  kernels: [[MatMul, [rtl, hls]], LayerNorm, Softmax, Shuffle, ElementwiseBinaryOp, finn:Thresholding]
  config_flags: {{target_device: U250, target_clock_ns: 5.0, standalone_thresholds: true}}
folding:
  kinds:
    MVAU: {{PE: all, SIMD: all}}
    Thresholding: {{PE: all}}
    LayerNorm: {{SIMD: all}}
    HWSoftmax: {{SIMD: all}}
    OuterShuffle: {{SIMD: all}}
    InnerShuffle: {{SIMD: all}}
    ElementwiseAdd: {{PE: all}}
    ElementwiseMul: {{PE: all}}
    DuplicateStreams: {{PE: all}}
objectives: throughput_area
search:
  strategy: auto
  constraints:
    - {{metric: LUT_util, operator: "<=", value: 0.8}}
    - {{metric: DSP_util, operator: "<=", value: 0.8}}
    - {{metric: BRAM_18K_util, operator: "<=", value: 0.8}}
"""


def _bench(name: str, options: dict, tmp: Path) -> dict:
    from bsopt.backends.estimate import EstimateBackend
    from bsopt.explore.exact import exact_front
    from bsopt.space.design_space import load_design_space
    from bsopt.study.objectives import ObjectiveSet

    row: dict = {"name": name, "options": options}
    t = time.perf_counter()
    path = export_model("bert", 8, 8, tmp / f"bert_{name}.onnx", **options)
    row["export_s"] = time.perf_counter() - t
    t = time.perf_counter()
    graph = lower(path, LoweringOptions(fpgapart=PART, standalone_thresholds=True))
    row["lower_s"] = time.perf_counter() - t
    row["layers"] = len(graph)
    row["macs"] = sum(layer.attrs["MW"] * layer.attrs["MH"] * math.prod(layer.attrs["numInputVectors"])
                      for layer in graph if layer.kind == "MVAU")

    query = "&".join(f"{k}={v}" for k, v in options.items())
    bp = tmp / f"{name}.yaml"
    bp.write_text(BLUEPRINT.format(model=f"zoo:bert?w=8&a=8{'&' + query if query else ''}"))
    space = load_design_space(bp)
    assert not space.errors, [str(e) for e in space.errors]
    row["space"] = space.get_total_combinations()
    row["params"] = len(space.parameters)

    backend = EstimateBackend(space.model_path, "latest", PART)
    rng = random.Random(0)
    cold = []
    for _ in range(30):
        cfg = space.config(rng.randrange(space.get_total_combinations()))
        g = backend.graph(PART, "latest", cfg.specialize_config, standalone_thresholds=True)
        t = time.perf_counter()
        estimate_network(g, cfg.folding_config, part=PART, clock_ns=5.0)
        cold.append(time.perf_counter() - t)
    row["estimate_ms"] = 1000 * statistics.median(cold)
    memo: dict = {}
    base = space.values_at(0)
    folding_params = [p for p in space.parameters if p.group == "folding"]
    warm = []
    for i in range(200):
        p = folding_params[i % len(folding_params)]
        base = {**base, p.name: p.value_at(rng.randrange(p.size))}
        cfg = space.config_from_values(base)
        g = backend.graph(PART, "latest", cfg.specialize_config, standalone_thresholds=True)
        t = time.perf_counter()
        estimate_network(g, cfg.folding_config, part=PART, clock_ns=5.0, node_cache=memo)
        warm.append(time.perf_counter() - t)
    row["estimate_memo_ms"] = 1000 * statistics.median(warm[20:])

    t = time.perf_counter()
    front = exact_front(space, ObjectiveSet.from_space(space), backend)
    row["exact_s"] = time.perf_counter() - t
    row["front"] = len(front.points)
    best = max(front.points, key=lambda p: p["metrics"]["throughput_fps"]) if front.points else None
    row["best_fps"] = best["metrics"]["throughput_fps"] if best else 0.0
    row["best_lut"] = best["metrics"]["LUT"] if best else 0.0
    return row


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("BSOPT_MODEL_CACHE", str(Path(tmp) / "models"))
        for name, options in SIZES.items():
            rows.append(_bench(name, options, Path(tmp)))
    lines = [
        "## Transformers",
        "",
        f"`python benchmarks/transformers.py` on {machine()}. BERT encoders from the zoo (w8a8, standalone",
        "thresholds, Alveo U250 at 200 MHz): Brevitas export, lowering, a per-kind folding space over every",
        "layer (the kinds of `search_spaces/bert_exploration.yaml`), one whole-network estimate (median of",
        "random configurations; and with per-node memoisation while one parameter changes at a time), and",
        "the exact front of throughput vs LUT and BRAM under LUT/DSP/BRAM ≤ 80 %.",
        "",
        "| model | layers | MACs | export | lowering | space | parameters | estimate | memoised | exact front | points | fastest design |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        opts = ", ".join(f"{k} {v}" for k, v in r["options"].items()) or "1 layer, hidden 128, 4 heads, seq 32"
        lines.append(
            f"| bert ({opts}) | {r['layers']} | {r['macs']:,} | {r['export_s']:.1f} s | {r['lower_s']:.2f} s | "
            f"{float(r['space']):.2e} | {r['params']} | {r['estimate_ms']:.1f} ms | {r['estimate_memo_ms']:.2f} ms | "
            f"{r['exact_s']:.1f} s | {r['front']} | {r['best_fps']:,.0f} fps, {r['best_lut']:,.0f} LUT |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(ROOT / "docs" / "benchmarks.md", "## Transformers", text)


if __name__ == "__main__":
    main()
