"""Estimator speed: one whole-network estimate per configuration, against FINN's own estimate build.

For each reference network: the median time of `estimate_network` for the folding FINN used
(cold: no per-node memo), and with per-node memoisation while successive configurations change one
layer's PE/SIMD (as a sampler's neighbouring trials do). FINN's figure is `build_wall_s` from the
reference meta.json: its estimate-only `build_dataflow_cfg` on the same model.

Run:  python benchmarks/estimator.py [--configs 500]
Prints a table and writes the section "Estimator" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from finn_reference import NETWORKS, load_json, lowering_kwargs, network_dirs, prepost_model  # noqa: E402
from intake import machine, write_section  # noqa: E402

from bsopt.estimate.network import estimate_network  # noqa: E402
from bsopt.lowering import lower  # noqa: E402
from bsopt.space.folding import divisors  # noqa: E402


def _neighbours(graph, folding, n, rng):
    """n folding configs, each differing from the previous one in one layer's PE or SIMD."""
    cfg = json.loads(json.dumps(folding))
    foldable = [(layer, attr, dim) for layer in graph.layers
                for attr, dim in (("PE", layer.attrs.get("MH")), ("SIMD", layer.attrs.get("MW")))
                if layer.kind == "MVAU" and dim]
    out = []
    for _ in range(n):
        layer, attr, dim = rng.choice(foldable)
        cfg.setdefault(layer.name, {})[attr] = rng.choice(divisors(dim))
        out.append(json.loads(json.dumps(cfg)))
    return out


def measure(name: str, n: int, rng) -> dict:
    meta = load_json(NETWORKS / name / "meta.json")
    graph = lower(prepost_model(name), **lowering_kwargs(name))
    d = NETWORKS / name
    folding = load_json(d / ("folding_config.json" if (d / "folding_config.json").exists()
                             else "auto_folding_config.json"))
    kwargs = {"part": meta["fpga_part"], "clock_ns": meta["synth_clk_period_ns"]}
    estimate_network(graph, folding, **kwargs)  # warm imports
    cold = []
    for _ in range(n):
        t0 = time.perf_counter()
        estimate_network(graph, folding, **kwargs)
        cold.append(time.perf_counter() - t0)
    configs = _neighbours(graph, folding, n, rng)
    cache: dict = {}
    memo = []
    for cfg in configs:
        t0 = time.perf_counter()
        estimate_network(graph, cfg, node_cache=cache, **kwargs)
        memo.append(time.perf_counter() - t0)
    finn = meta["build_wall_s"]
    cold_ms = statistics.median(cold) * 1e3
    return {"name": name, "layers": len(graph), "cold_ms": cold_ms, "memo_ms": statistics.median(memo) * 1e3,
            "finn_s": finn, "speedup": finn * 1e3 / cold_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    names = network_dirs()
    if not names:
        sys.exit(f"no reference networks under {NETWORKS}")
    rng = random.Random(args.seed)
    rows = [measure(n, args.configs, rng) for n in names]
    lines = [
        "## Estimator",
        "",
        f"`python benchmarks/estimator.py --configs {args.configs}` on {machine()}: median time of one whole-network estimate (all layers' resources "
        "and cycles, totals, bottleneck, throughput, latency, device fit). *cold*: the folding FINN used, "
        "no memo; *memo*: per-node memoisation while each configuration changes one MVAU's PE or SIMD. "
        "*FINN*: FINN's estimate-only build on the same model (reference meta.json). Target: 1000x faster "
        "than FINN.",
        "",
        "| network | layers | cold ms | memo ms | FINN s | speed-up (cold) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['layers']} | {r['cold_ms']:.3f} | {r['memo_ms']:.3f} | {r['finn_s']} | "
                     f"{r['speedup']:,.0f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(args.out, "## Estimator", text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
