"""Transformers: BERT encoders from BERT-tiny to BERT-large through every bsopt command a user runs.

Per encoder size (the zoo default; a 4-layer, hidden-256 encoder; BERT-base: 12 layers, hidden 768,
12 heads, sequence 128, FF 3072; BERT-large: 24 layers, hidden 1024, 16 heads, sequence 512, FF
4096) each step runs in its own process and is measured by wall time and that process's peak RSS:

* **export**: the Brevitas → QONNX export of the w8a8 encoder (once per model: cached);
* **lowering cold / cached**: ``bsopt.lowering.lower`` of the exported file with the lowered-IR
  cache off, then with it filled;
* **count**: ``bsopt blueprint count search_spaces/bert_exploration.yaml`` with the caches filled;
* **validate**: ``bsopt blueprint validate`` of that blueprint (includes the early fit check: a
  w8a8 BERT-base does not fit a U250, and says so);
* **exact front**: the exact front of a space that fits — w4a4 weights streamed from off-chip memory
  (FINN's ``mem_mode: external``), the kinds of bert_exploration.yaml;
* **study**: a 1,000-trial NSGA-II study of that space (SQLite storage).

Then the growth of lowering and the exact front with the number of encoder layers (1, 2, 4, 12 at
hidden 768) and with hidden size (256, 512, 768 at 4 layers).

Run:  python benchmarks/transformers.py [--sizes tiny,small,base,large] [--no-growth]
Prints tables and writes the section "Transformers" of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from intake import machine, write_section  # noqa: E402

SIZES = {
    "tiny": {},
    "small": {"layers": 4, "hidden": 256, "heads": 4, "seq": 128, "ff": 1024},
    "base": {"layers": 12, "hidden": 768, "heads": 12, "seq": 128, "ff": 3072},
    "large": {"layers": 24, "hidden": 1024, "heads": 16, "seq": 512, "ff": 4096},
}
LABELS = {"tiny": "zoo default (1 layer, hidden 128, seq 32)", "small": "4 layers, hidden 256, seq 128",
          "base": "BERT-base (12 layers, hidden 768, seq 128)", "large": "BERT-large (24 layers, hidden 1024, seq 512)"}
PART = "xcu250-figd2104-2L-e"
READING = ("Reading it: cached commands stay flat from BERT-tiny to BERT-large (the lowered IR holds weight and "
           "threshold summaries, not matrices, and a model's digest is remembered); cold lowering grows with the "
           "weights (per encoder layer it falls as fixed costs spread), the exact solve about linearly with "
           "layers (identical encoder blocks share their option tables). The export holds the float weights "
           "about three times at its peak (the network, the ONNX model, freed blocks in flight; "
           "docs/model-intake.md, \"Export memory\"), once per model; the command that first names a zoo model "
           "exports it in a child process, so its own peak is the larger of the export's and the lowering's.")
STEP_TIMEOUT = 3600

FITS = """
version: "3.0"
name: bert-fits
description: bert_exploration.yaml's kinds with w4a4 weights streamed from off-chip memory
model: {model}
hw_compiler:
  kernels: [[MatMul, [rtl, hls]], LayerNorm, Softmax, Shuffle, ElementwiseBinaryOp, finn:Thresholding, DuplicateStreams]
  transforms:
    streamline: [Streamline, "~MoveScalarMulPastMatMul"]
  config_flags: {{target_device: U250, target_clock_ns: 5.0, standalone_thresholds: true}}
folding:
  kinds:
    MVAU: {{PE: all, SIMD: all, mem_mode: external}}
    Thresholding: {{PE: all}}
    LayerNorm: {{SIMD: all}}
    HWSoftmax: {{SIMD: all}}
    OuterShuffle: {{SIMD: all}}
    InnerShuffle: {{SIMD: all}}
    ElementwiseAdd: {{PE: all}}
    ElementwiseMul: {{PE: all}}
    DuplicateStreams: {{PE: all}}
objectives:
  - {{metric: throughput_fps, direction: maximize}}
  - LUT
  - DSP
  - BRAM_18K
search:
  constraints:
    - {{metric: LUT_util, operator: "<=", value: 0.8}}
    - {{metric: DSP_util, operator: "<=", value: 0.8}}
    - {{metric: BRAM_18K_util, operator: "<=", value: 0.8}}
"""

EXPORT = """
import sys
from bsopt.models import export_model
w, a, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
opts = dict(kv.split("=") for kv in sys.argv[4:])
export_model("bert", w, a, out, **{k: int(v) for k, v in opts.items()})
"""

LOWER = """
import sys
from bsopt.lowering import LoweringOptions, lower
graph = lower(sys.argv[1], LoweringOptions(fpgapart=sys.argv[2], standalone_thresholds=True))
print(len(graph))
"""

EXACT = """
import json, sys, time
from bsopt.explore.exact import exact_front
from bsopt.space.design_space import load_design_space
from bsopt.study.objectives import ObjectiveSet
space = load_design_space(sys.argv[1]).require_valid()
t = time.perf_counter()
front = exact_front(space, ObjectiveSet.from_space(space))
print(json.dumps({"points": len(front.points), "solve_s": time.perf_counter() - t, "tables": front.layers,
                  "estimates": front.options, "notes": front.notes[:1]}))
"""


def run(args: list[str], env: dict[str, str], cwd: Path) -> dict:
    """One step in its own process: wall seconds, that process's peak RSS (MiB, from wait4), its
    output and exit code (killed after STEP_TIMEOUT)."""
    import threading

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err, text=True, env=env, cwd=cwd)
        timer = threading.Timer(STEP_TIMEOUT, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {"s": wall, "mib": usage.ru_maxrss / 1024, "out": out.read(), "err": err.read(),
                "rc": proc.returncode}


def python(code: str, *argv: str) -> list[str]:
    return [sys.executable, "-c", code, *argv]


def bsopt(*argv: str) -> list[str]:
    return [sys.executable, "-m", "bsopt.cli", *argv]


def measure_size(name: str, options: dict, tmp: Path, *, study: bool = True) -> dict:
    cache = tmp / f"cache_{name}"
    env = {**os.environ, "BSOPT_MODEL_CACHE": str(cache), "BSOPT_WORKDIR": str(tmp / f"studies_{name}")}
    query = "&".join(f"{k}={v}" for k, v in options.items())
    model8 = f"zoo:bert?w=8&a=8{'&' + query if query else ''}"
    model4 = f"zoo:bert?w=4&a=4{'&' + query if query else ''}"
    row: dict = {"name": name}
    onnx = tmp / f"bert_{name}_w8a8.onnx"
    row["export"] = run(python(EXPORT, "8", "8", str(onnx), *[f"{k}={v}" for k, v in options.items()]), env, tmp)
    if row["export"]["rc"] != 0:
        row["failed"] = "export: " + row["export"]["err"].strip().splitlines()[-1]
        return row
    row["lower_cold"] = run(python(LOWER, str(onnx), PART), {**env, "BSOPT_LOWERING_CACHE": "0"}, tmp)
    row["layers"] = int(row["lower_cold"]["out"].strip() or 0)
    row["lower_cached"] = run(python(LOWER, str(onnx), PART), env, tmp)  # fills the cache
    row["lower_cached"] = run(python(LOWER, str(onnx), PART), env, tmp)
    bp = ROOT / "search_spaces" / "bert_exploration.yaml"
    # the first command on a model: its zoo copy (exported in a child process) and its IR, then the count
    row["count_first"] = run(bsopt("blueprint", "count", str(bp), "--model", model8), env, tmp)
    row["count"] = run(bsopt("blueprint", "count", str(bp), "--model", model8), env, tmp)
    row["size"] = row["count"]["out"].strip().splitlines()[-1] if row["count"]["rc"] == 0 else "?"
    # the first validate also lowers the other MatMul backend (specialised from the cached generic graph)
    row["validate_first"] = run(bsopt("blueprint", "validate", str(bp), "--model", model8), env, tmp)
    row["validate"] = run(bsopt("blueprint", "validate", str(bp), "--model", model8), env, tmp)
    fits = tmp / f"fits_{name}.yaml"
    fits.write_text(FITS.format(model=model4))
    run(bsopt("blueprint", "count", str(fits)), env, tmp)  # export and lower the w4a4 model outside the timing
    row["exact"] = run(python(EXACT, str(fits)), env, tmp)
    if row["exact"]["rc"] == 0:
        import json

        row["exact_info"] = json.loads(row["exact"]["out"].strip().splitlines()[-1])
    if study:
        row["study"] = run(bsopt("study", "create", f"s_{name}", "--blueprint", str(fits), "--sampler", "nsga2",
                                 "--n-trials", "1000", "--seed", "0", "--quiet",
                                 "--storage", f"sqlite:///{tmp / f's_{name}.db'}"), env, tmp)
    shutil.rmtree(cache, ignore_errors=True)
    return row


def growth(tmp: Path, series: list[tuple[str, dict]]) -> list[dict]:
    rows = []
    for label, options in series:
        r = measure_size(label, options, tmp, study=False)
        r["label"] = label
        rows.append(r)
    return rows


def cell(step: dict | None) -> str:
    if step is None:
        return "–"
    return f"{step['s']:.1f} s / {step['mib']:,.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="tiny,small,base,large")
    ap.add_argument("--no-growth", action="store_true")
    args = ap.parse_args()
    sizes = args.sizes.split(",")
    rows: list[dict] = []
    grown: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bsopt-bench-bert-") as tmp_:
        tmp = Path(tmp_)
        # BERT-large last: the section is rewritten after every model, so a long run keeps what it measured
        for name in [n for n in sizes if n != "large"]:
            print(f"[{name}] ...", flush=True)
            rows.append(measure_size(name, SIZES[name], tmp))
            report(rows, grown)
        if not args.no_growth:  # 12 layers is BERT-base's row; hidden 768 at 4 layers is the L4 row
            series = [(f"L{n}", {"layers": n, "hidden": 768, "heads": 12, "seq": 128, "ff": 3072}) for n in (1, 2, 4)]
            series += [(f"H{h}", {"layers": 4, "hidden": h, "heads": h // 64, "seq": 128, "ff": 4 * h})
                       for h in (256, 512)]
            for label, options in series:
                print(f"[{label}] ...", flush=True)
                grown += growth(tmp, [(label, options)])
                report(rows, grown)
        if "large" in sizes:
            print("[large] ...", flush=True)
            rows.append(measure_size("large", SIZES["large"], tmp))
            report(rows, grown)


def report(rows: list[dict], grown: list[dict]) -> None:
    """Print the tables and write the section of docs/benchmarks.md."""
    lines = [
        "## Transformers",
        "",
        f"`python benchmarks/transformers.py` on {machine()}. Each step is its own process: wall time / that "
        "process's peak RSS. *export*: Brevitas → QONNX (w8a8, once per model: cached). *lowering*: the "
        "exported file to bsopt's dataflow IR, with the IR cache off (cold) and filled (cached). *first count*: "
        "the first `bsopt blueprint count` on the zoo reference: export (in a child process, counted in the peak) "
        "and cold lowering, then the count. *count*, "
        "*validate*: `bsopt blueprint count|validate search_spaces/bert_exploration.yaml --model zoo:bert?w=8&a=8&…` "
        "with the caches filled (validate includes the early fit check: *fits?* says what it reported). "
        "*exact front*: the whole exact front (solve time inside the process, then process wall / RSS) of "
        "the same kinds with w4a4 weights streamed from off-chip memory (FINN's `mem_mode: external`) — a space "
        "that fits a U250. *1,000 trials*: `bsopt study create … --sampler nsga2 --n-trials 1000` of that space.",
        "",
        "| encoder | layers (IR) | space | export | lowering cold | lowering cached | first count | count | "
        "validate first / again | fits? | exact front | front points | 1,000 trials |",
        "|---|---:|---|---|---|---|---|---|---|---|---|---:|---|",
    ]
    lines += [_size_line(r) for r in rows]
    base = next((r for r in rows if r["name"] == "base" and "failed" not in r), None)
    series = [r for r in grown if r["label"].startswith("L")] + ([{**base, "label": "L12"}] if base else []) + \
        [r for r in grown if r["label"].startswith("H")] + \
        [{**r, "label": "H768"} for r in grown if r["label"] == "L4"]
    if series:
        lines += ["", "Growth: the same steps over the number of encoder layers (L1–L12: hidden 768, 12 heads, seq "
                  "128, FF 3072; L12 is BERT-base) and over hidden size (H256–H768: 4 layers, FF 4 × hidden; H768 "
                  "is L4). *exact solve*: inside its process, the w4a4 off-chip-weights space.", "",
                  "| encoder | IR layers | lowering cold | lowering cached | count | exact solve | exact points | "
                  "cold lowering per encoder layer |",
                  "|---|---:|---|---|---|---|---:|---|"]
        for r in series:
            if "lower_cold" not in r:
                lines.append(f"| {r['label']} | failed: {r.get('failed', '?')} |")
                continue
            n = int(r["label"][1:]) if r["label"].startswith("L") else 4
            info = r.get("exact_info") or {}
            lines.append(f"| {r['label']} | {r.get('layers', '?')} | {cell(r.get('lower_cold'))} | "
                         f"{cell(r.get('lower_cached'))} | {cell(r.get('count'))} | "
                         f"{info.get('solve_s', float('nan')):.1f} s | {info.get('points', '?')} | "
                         f"{r['lower_cold']['s'] / n:.2f} s |")
    lines += ["", READING]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    write_section(ROOT / "docs" / "benchmarks.md", "## Transformers", text)


def _size_line(r: dict) -> str:
    if "failed" in r:
        return f"| {LABELS.get(r['name'], r['name'])} | – | – | {r['failed']} |"
    info = r.get("exact_info") or {}
    verdict = "yes" if r["validate"]["rc"] == 0 else ("no: " + _first_short(r["validate"]["err"]))
    exact = (f"{info['solve_s']:.1f} s solve; {cell(r['exact'])}" if info else f"failed ({r['exact']['rc']})")
    size = r.get("size", "?")
    size = f"{size[0]}.{size[1:3]}·10^{len(size) - 1}" if size.isdigit() and len(size) > 6 else size
    return (f"| {LABELS.get(r['name'], r['name'])} | {r['layers']} | {size} | {cell(r['export'])} | "
            f"{cell(r['lower_cold'])} | {cell(r['lower_cached'])} | {cell(r.get('count_first'))} | {cell(r['count'])} | "
            f"{cell(r['validate_first'])}; {cell(r['validate'])} | "
            f"{verdict} | {exact} | {info.get('points', '–')} | {cell(r.get('study'))} |")


def _first_short(err: str) -> str:
    """The resource the fit check names first (``nothing can fit: … needs N LUTs against …``)."""
    import re

    m = re.search(r"needs ([\d,]+) (\w+) against a limit of ([\d,]+)", err)
    return f"{m.group(2)} {m.group(1)} > {m.group(3)}" if m else "error"


if __name__ == "__main__":
    main()
