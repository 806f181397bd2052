"""Model-intake speed: load + lower (+ FINN's bit-width minimisation) per reference network,
against the wall time FINN's own estimate-only build took on the same model (meta.json).

Run:  python benchmarks/intake.py [--repeat 5]
Prints a table and writes the section "Model intake" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from finn_reference import NETWORKS, lowering_kwargs, network_dirs, prepost_model  # noqa: E402

from bsopt.intake.load import load_model  # noqa: E402
from bsopt.lowering import lower  # noqa: E402


def measure(name: str, repeat: int) -> dict:
    kwargs = lowering_kwargs(name)
    load_s, lower_s = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        model = load_model(prepost_model(name))
        t1 = time.perf_counter()
        graph = lower(model, **kwargs)
        t2 = time.perf_counter()
        load_s.append(t1 - t0)
        lower_s.append(t2 - t1)
    meta = json.loads((NETWORKS / name / "meta.json").read_text())
    return {
        "name": name,
        "layers": len(graph),
        "load_ms": statistics.median(load_s) * 1e3,
        "lower_ms": statistics.median(lower_s) * 1e3,
        "finn_build_s": meta.get("build_wall_s"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = ap.parse_args()
    names = network_dirs()
    if not names:
        sys.exit(f"no reference networks found under {NETWORKS}")
    rows = [measure(n, args.repeat) for n in names]
    lines = [
        "## Model intake",
        "",
        f"`python benchmarks/intake.py --repeat {args.repeat}` on {machine()}: median of {args.repeat} runs. *load* is reading and cleaning the "
        "QONNX file; *lower* is bsopt's lowering to FINN dataflow layers including FINN's bit-width "
        "minimisation. *FINN build* is FINN's whole estimate-only `build_dataflow_cfg` on the same model "
        "(from the reference meta.json; it also runs SetFolding and the estimate reports).",
        "",
        "| network | layers | load ms | lower ms | FINN build s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['layers']} | {r['load_ms']:.1f} | {r['lower_ms']:.1f} | {r['finn_build_s']} |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_section(args.out, "## Model intake", text)
    print(f"wrote {args.out}")


def machine() -> str:
    """The machine, versions and date every figure is stated with."""
    import os
    import time
    from importlib.metadata import version

    return (f"{platform.machine()} ({os.cpu_count()} cores), Python {platform.python_version()}, bsopt "
            f"{version('bsopt')}, optuna {version('optuna')}, qonnx {version('qonnx')}, onnx {version('onnx')}, "
            f"{time.strftime('%Y-%m-%d')}")


def write_section(out: Path, heading: str, text: str) -> None:
    """Replace (or append) one ``## heading`` section of docs/benchmarks.md."""
    existing = out.read_text() if out.exists() else "# Benchmarks\n\nFigures written by the scripts in `benchmarks/`.\n"
    start = existing.find(heading)
    if start >= 0:
        end = existing.find("\n## ", start + 1)
        existing = existing[:start] + existing[end + 1:] if end >= 0 else existing[:start]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(existing.rstrip() + "\n\n" + text)


if __name__ == "__main__":
    main()
