"""Golden data: what the real FINN reports after it inserts data-width converters and FIFOs.

How to run (from anywhere; ~5 minutes, needs the FINN environment of ../shared/finn_src/setup_finn.sh):

    python tests/data/finn_inserted/generate.py                  # every case, rewrites the JSONs here
    python tests/data/finn_inserted/generate.py --cases tfc_w2a2_a,bert_w4a8_a
    python tests/data/finn_inserted/generate.py --check           # only re-check the JSONs here

Options: ``--finn-home`` (default ``$BSOPT_FINN_HOME`` or ``~/.cache/bsopt/finn``), ``--workdir``
(build folders and exported zoo models; default ``~/.cache/bsopt/finn_inserted``; kept, so a rerun
skips model exports), ``--out`` (default: this folder).

It runs in bsopt's Python (3.11, bsopt importable; this file puts the repository root on sys.path).
Per case:

1. bsopt: ``load_design_space(blueprint)`` and ``space.config(k)`` for a seeded random ``k``; the
   folding config may then be edited (FIFO depths, ``parallel_window``).
2. FINN (``FINN_HOME/bin/python -m finn.builder.build_dataflow BUILD_DIR``): the blueprint's estimate-
   only steps, ``save_intermediate_models`` on, folding (and specialize-layers) config as bsopt writes
   them. The folded model is ``output/intermediate_models/step_generate_estimate_reports.onnx``.
   BERT cannot go through FINN's own steps (see README): its folded graph is written from bsopt's
   lowered graph instead and FINN's ApplyConfig applies the folding config (``flow: bsopt_lowered_ir``).
3. FINN (``finn_side.py`` in FINN's Python): InsertDWC -> InsertFIFO(create_shallow_fifos=True) ->
   SpecializeLayers(part) -> GiveUniqueNodeNames, recording every node before and after.
4. Here: ``<case>.json``, checks (totals, DWC and FIFO counts, widths, depths), ``index.json`` and a
   summary table.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))

FINN_COMMIT = "73ba5ed64e805cb765dda7e57694338d1917848f"
QONNX_COMMIT = "f5c9819bd00f01f41e70639b8461c8e4b39432f7"
FOLDED = "output/intermediate_models/step_generate_estimate_reports.onnx"
#: FINN's estimate-only flow for a model FINN can convert (bsopt's ESTIMATE_ONLY_STEPS minus SetFolding)
SEEDED_BUILD = ("import random, runpy, sys; random.seed(0); sys.argv = ['build_dataflow'] + sys.argv[1:]; "
                "runpy.run_module('finn.builder.build_dataflow', run_name='__main__')")
INSERTED_PREFIXES = ("StreamingDataWidthConverter", "StreamingFIFO")
#: attributes of DWC/FIFO nodes that are code-generation / simulation bookkeeping, left out of "attrs"
INFRA_ATTRS = {"backend", "code_gen_dir_ipgen", "code_gen_dir_cppsim", "executable_path", "ipgen_path", "ip_path",
               "ip_vlnv", "exec_mode", "rtlsim_so", "rtlsim_trace", "res_estimate", "res_synth", "cycles_rtlsim",
               "cycles_estimate", "gen_top_module", "output_hook", "io_chrc_in", "io_chrc_out", "io_chrc_pads_in",
               "io_chrc_pads_out", "io_chrc_period", "partition_id", "device_id", "slr", "mem_port",
               "depth_monitor", "mlo_max_iter", "preferred_impl_style"}


# ============================================================================ the cases
@dataclasses.dataclass
class Case:
    name: str
    blueprint: str
    seed: int
    model: str | None = None  # overrides the blueprint's model (a zoo reference)
    edit: Callable | None = None  # edit(folding_config, space) -> description of the edit
    flow: str = "finn"  # "finn": FINN's own estimate-only flow; "ir": bsopt's lowered graph (BERT)


def _name(folding: dict, prefix: str) -> str:
    """The folding-config key of the first node whose name starts with prefix (backend choices rename)."""
    return next(k for k in folding if k.startswith(prefix))


def edit_tfc_fifos(folding: dict, space) -> str:
    """FIFO depths through inFIFODepths/outFIFODepths (InsertFIFO takes max(producer out, consumer in))."""
    thr = _name(folding, "Thresholding_")
    depths = {
        thr: {"inFIFODepths": [33], "outFIFODepths": [1]},  # graph-input FIFO 33
        "MVAU_hls_0": {"inFIFODepths": [1], "outFIFODepths": [64]},  # thr -> MVAU0: max(1, 1) = 1
        "MVAU_hls_1": {"inFIFODepths": [512], "outFIFODepths": [300]},  # 64 vs 512; 300
        "MVAU_hls_2": {"inFIFODepths": [2], "outFIFODepths": [8192]},
        "MVAU_hls_3": {"inFIFODepths": [4097], "outFIFODepths": [2]},  # max(8192, 4097)
        "LabelSelect_hls_0": {"inFIFODepths": [3], "outFIFODepths": [40000]},  # graph-output FIFO 40000
    }
    for node, d in depths.items():
        folding.setdefault(node, {}).update(d)
    # no DWC between the thresholds and MVAU_hls_0, so that their FIFO is max(1, 1) = 1 deep
    folding[thr]["PE"] = folding["MVAU_hls_0"]["SIMD"]
    return (f"{thr} PE = MVAU_hls_0 SIMD = {folding[thr]['PE']} (no DWC between them); FIFO depths set with "
            "inFIFODepths/outFIFODepths: " + json.dumps(depths, sort_keys=True))


def edit_cnv_parallel_window(folding: dict, space) -> str:
    """parallel_window=1 on the two non-depthwise convolution SWGs, SIMD = IFMChannels there."""
    layers = {layer.name: layer for layer in space.model_info.dataflow}
    out = {}
    for name in ("ConvolutionInputGenerator_rtl_0", "ConvolutionInputGenerator_rtl_1"):
        a = layers[name].attrs
        assert a["depthwise"] == 0
        folding.setdefault(name, {}).update({"SIMD": a["IFMChannels"], "parallel_window": 1})
        out[name] = folding[name]
    return "parallel_window=1 with SIMD=IFMChannels: " + json.dumps(out, sort_keys=True)


def edit_dscnn_parallel_window(folding: dict, space) -> str:
    """A depthwise VVAU with SIMD = k*k and its SWG in parallel_window mode, as FINN's SetFolding does."""
    vvau, swg = "VVAU_hls_0", "ConvolutionInputGenerator_rtl_1"
    pe = folding[vvau]["PE"]
    layers = {layer.name: layer for layer in space.model_info.dataflow}
    k = int(np.prod(layers[vvau].attrs["Kernel"]))
    folding[vvau]["SIMD"] = k
    folding.setdefault(swg, {}).update({"SIMD": pe, "parallel_window": 1})
    return f"{vvau}: SIMD={k} (kernel size), PE={pe}; {swg}: SIMD={pe}, parallel_window=1"


def edit_bert_fifos(folding: dict, space) -> str:
    """Deeper FIFOs on the residual paths: DuplicateStreams out (per output) and ElementwiseAdd in."""
    d = {"DuplicateStreams_hls_0": {"outFIFODepths": [2, 2, 2, 256]},
         "ElementwiseAdd_hls_0": {"inFIFODepths": [128, 2]},
         "DuplicateStreams_hls_1": {"outFIFODepths": [2, 1024]},
         "ElementwiseAdd_hls_1": {"inFIFODepths": [2, 64]}}
    for node, v in d.items():
        folding.setdefault(node, {}).update(v)
    return "FIFO depths on the residual branches: " + json.dumps(d, sort_keys=True)


CASES = [
    Case("tfc_w2a2_a", "tfc_folding.yaml", 1),
    Case("tfc_w2a2_b", "tfc_folding.yaml", 2),
    Case("tfc_w2a2_c", "tfc_folding.yaml", 3),
    Case("tfc_w2a2_fifo", "tfc_folding.yaml", 4, edit=edit_tfc_fifos),
    Case("cnv_w1a1_a", "cnv_folding.yaml", 1),
    Case("cnv_w1a1_b", "cnv_folding.yaml", 2),
    Case("cnv_w1a1_c", "cnv_folding.yaml", 3),
    Case("cnv_w1a1_pw", "cnv_folding.yaml", 4, edit=edit_cnv_parallel_window),
    Case("cnv_w2a2_a", "cnv_folding.yaml", 5, model="zoo:cnv?w=2&a=2"),
    Case("dscnn_w4a4_a", "dscnn_folding.yaml", 1),
    Case("dscnn_w4a4_b", "dscnn_folding.yaml", 2),
    Case("dscnn_w4a4_pw", "dscnn_folding.yaml", 3, edit=edit_dscnn_parallel_window),
    Case("mlp_w4a4_a", "mlp_folding.yaml", 1),
    Case("mlp_w4a4_b", "mlp_folding.yaml", 2),
    Case("bert_w4a8_a", "bert_folding.yaml", 1, flow="ir"),
    Case("bert_w4a8_b", "bert_folding.yaml", 2, flow="ir", edit=edit_bert_fifos),
]


# ============================================================================ running one case
def finn_python(home: Path) -> Path:
    py = home / "bin" / "python"
    if not py.exists():
        sys.exit(f"no FINN python at {py}: run ../shared/finn_src/setup_finn.sh {home}")
    return py


def run(cmd: list[str], cwd: Path, log: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    log.write_text(f"$ {' '.join(map(str, cmd))}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def ir_description(graph, d: Path) -> tuple[Path, Path]:
    """bsopt's lowered graph as finn_side.py's --ir JSON plus an npz of its weights/thresholds/constants."""
    layers, arrays = [], {}
    for layer in graph.layers:
        layers.append({"name": layer.name, "op_type": layer.op_type, "kind": layer.kind, "inputs": list(layer.inputs),
                       "output": layer.output, "out_shape": list(layer.out_shape), "attrs": layer.attrs})
        for what in ("weights", "hw_thresholds", "params"):
            arr = getattr(layer, what, None)
            if arr is not None:
                arrays[f"{layer.name}__{what}"] = np.asarray(arr, dtype=np.float64)
    first = {t: next(layer for layer in graph.layers if t in layer.inputs) for t in graph.inputs}
    last = {t: next(layer for layer in graph.layers if layer.output == t) for t in graph.outputs}
    ins = [{"name": t, "shape": list(first[t].in_shapes[first[t].inputs.index(t)]),
            "datatype": first[t].attrs.get("inputDataType") or first[t].attrs.get("lhs_dtype")} for t in graph.inputs]
    outs = [{"name": t, "shape": list(last[t].out_shape)} for t in graph.outputs]
    (d / "ir.json").write_text(json.dumps({"inputs": ins, "outputs": outs, "layers": layers}, default=_np_default))
    np.savez(d / "ir.npz", **arrays)
    return d / "ir.json", d / "ir.npz"


def _np_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def run_case(case: Case, space, args, py: Path) -> tuple[dict, dict]:
    from bsopt.backends.estimate import EstimateBackend
    from bsopt.backends.finn_config import dataflow_build_config

    total = space.get_total_combinations()
    k = random.Random(case.seed).randrange(total)
    cfg = space.config(k)
    folding = copy.deepcopy(cfg.folding_config)
    edit = case.edit(folding, space) if case.edit else None
    cfg = dataclasses.replace(cfg, folding_config=folding)
    part, clock = cfg.target["part"], cfg.target["clock_ns"]
    d = args.workdir / "builds" / case.name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    (d / "folding_config.json").write_text(json.dumps(folding, indent=2))
    if cfg.specialize_config is not None:
        (d / "specialize_layers_config.json").write_text(json.dumps(cfg.specialize_config, indent=2))
    t0 = time.time()
    report_total = None
    if case.flow == "finn":
        shutil.copyfile(cfg.model_path, d / "model.onnx")
        dcfg = dataflow_build_config(cfg)
        dcfg["save_intermediate_models"] = True
        (d / "dataflow_build_config.json").write_text(json.dumps(dcfg, indent=2))
        # = python -m finn.builder.build_dataflow DIR, with Python's random seeded: FINN names some new
        # tensors with qonnx's random_string (CNV's input, e.g.); seeded, the files are reproducible
        proc = run([py, "-c", SEEDED_BUILD, d], d, d / "finn_build.log")
        if proc.returncode != 0 or "Completed successfully" not in proc.stdout:
            tail = (d / "output" / "build_dataflow.log").read_text()[-3000:] if (d / "output").exists() else ""
            raise RuntimeError(f"FINN build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}\n{tail}")
        steps = dcfg["steps"]
        report = json.loads((d / "output/report/estimate_layer_resources.json").read_text())
        report_total = report["total"]
        side = [py, HERE / "finn_side.py", "--model", d / FOLDED]
    else:  # BERT: FINN's steps cannot convert it (README); bsopt's lowered graph stands in for the folded model
        backend = EstimateBackend.for_space(space)
        backend.keep_parameters = True  # the matrices themselves go to FINN's side
        graph = backend.graph_for(cfg, part, str(cfg.target["finn_version"].value))
        ir, arrays = ir_description(graph, d)
        steps = None
        side = [py, HERE / "finn_side.py", "--ir", ir, "--arrays", arrays]
    side += ["--part", part, "--folding", d / "folding_config.json", "--out", d / "raw.json"]
    proc = run(side, d, d / "finn_side.log")
    if proc.returncode != 0:
        raise RuntimeError(f"finn_side.py failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    raw = json.loads((d / "raw.json").read_text())
    wall = time.time() - t0

    # bsopt's own estimate of the folded model (a cross-check only; not part of the golden data)
    try:
        est = EstimateBackend.for_space(space).build(cfg)
        bsopt_before = {m: est.values.get(m) for m in ("LUT", "BRAM_18K", "URAM", "DSP")} if est.ok else est.error_message
    except Exception as exc:  # noqa: BLE001 - bsopt may be mid-edit; the golden data does not depend on it
        bsopt_before = f"{type(exc).__name__}: {exc}"

    def clean(n, full):
        rec = {k: n[k] for k in ("name", "op_type", "inputs", "outputs")}
        if "name_before" in n:
            rec["name_before"] = n["name_before"]
        if full:
            attrs = n["attrs"]
            if n["op_type"].startswith(INSERTED_PREFIXES):
                attrs = {a: v for a, v in attrs.items() if a not in INFRA_ATTRS}
            rec["attrs"] = attrs
        rec["estimate"] = n["estimate"]
        for key in ("stream_inputs", "input_datatypes", "output_datatypes", "normal_input_shapes",
                    "folded_input_shapes", "normal_output_shapes", "folded_output_shapes", "instream_widths",
                    "outstream_widths"):
            rec[key] = n[key]
        return rec

    zoo = case.model or space.blueprint.model
    out = {
        "case": case.name,
        "model": zoo,
        "model_file": Path(cfg.model_path).name,
        "blueprint": f"search_spaces/{case.blueprint}",
        "config_index": k,
        "seed": case.seed,
        "edit": edit,
        "flow": "finn_estimate_flow" if case.flow == "finn" else "bsopt_lowered_ir",
        "finn_steps": steps,
        "part": part,
        "clock_ns": clock,
        "finn_commit": FINN_COMMIT,
        "qonnx_commit": QONNX_COMMIT,
        "versions": raw["versions"],
        "transforms": ["InsertDWC()", "InsertFIFO(create_shallow_fifos=True)", f"SpecializeLayers('{part}')",
                       "GiveUniqueNodeNames()"],
        "folding_config": folding,
        "specialize_config": cfg.specialize_config,
        "graph_before": raw["before"]["graph"],
        "graph_after": raw["after"]["graph"],
        "total_before": raw["before"]["total"],
        "finn_report_total_before": report_total,
        "total": raw["after"]["total"],
        "performance_before": raw["before"]["performance"],
        "performance_after": raw["after"]["performance"],
        "renamed_by_insertion": {n["name_before"]: n["name"] for n in raw["after"]["nodes"]
                                 if n.get("name_before") not in (None, n["name"])},
        "rest_of_step_check": raw["rest_of_step_check"],
        "ir_renamed_by_finn": raw["ir_renamed"],
        "before": [clean(n, True) for n in raw["before"]["nodes"]],
        "after": [clean(n, True) for n in raw["after"]["nodes"]],
    }
    return out, {"wall_s": wall, "bsopt_before": bsopt_before}


# ============================================================================ checks
def summed(nodes: list[dict]) -> dict:
    """FINN's aggregate_dict_keys over per-node estimates (floats, efficiencies left out, no cycles)."""
    tot: dict[str, float] = {}
    for n in nodes:
        for k, v in n["estimate"].items():
            if "efficiency" in k or k == "cycles":
                continue
            tot[k] = tot.get(k, 0.0) + float(v)
    return tot


def edges(nodes: list[dict]):
    """(producer, out index, consumer, in index) for every tensor between two nodes of the list."""
    prod = {t: (n, i) for n in nodes for i, t in enumerate(n["outputs"])}
    for c in nodes:
        for j, t in enumerate(c["inputs"]):
            if t in prod:
                p, i = prod[t]
                yield p, i, c, j


def check(case: dict) -> dict:
    """Checks of one case file; raises AssertionError with the reason. Returns the summary row."""
    before, after = case["before"], case["after"]
    errors = []
    for label, nodes, total in (("after", after, case["total"]), ("before", before, case["total_before"])):
        s = summed(nodes)
        if s != total:
            errors.append(f"{label}: per-node sum {s} != total {total}")
    if case["finn_report_total_before"] is not None and case["finn_report_total_before"] != case["total_before"]:
        errors.append(f"FINN report total {case['finn_report_total_before']} != total_before {case['total_before']}")
    # DWCs: one per producer/consumer pair whose folded last dims differ
    mismatched = [(p, i, c, j) for p, i, c, j in edges(before)
                  if p["folded_output_shapes"][i][-1] != c["folded_input_shapes"][j][-1]]
    dwcs = [n for n in after if n["op_type"].startswith("StreamingDataWidthConverter")]
    fifos = [n for n in after if n["op_type"].startswith("StreamingFIFO")]
    if len(dwcs) != len(mismatched):
        errors.append(f"{len(dwcs)} DWCs but {len(mismatched)} mismatched pairs")
    for n in dwcs:
        a = n["attrs"]
        rtl = a["inWidth"] % a["outWidth"] == 0 or a["outWidth"] % a["inWidth"] == 0
        if n["op_type"] != f"StreamingDataWidthConverter_{'rtl' if rtl else 'hls'}":
            errors.append(f"{n['name']}: {n['op_type']} with widths {a['inWidth']}->{a['outWidth']}")
    # the DWC's widths are the producer's out-stream and the consumer's in-stream widths (before insertion)
    by_name = {n["name"]: n for n in before}
    for p, i, c, j in mismatched:
        want = (p["outstream_widths"][i], c["instream_widths"][j])
        if not any((n["attrs"]["inWidth"], n["attrs"]["outWidth"]) == want for n in dwcs):
            errors.append(f"no DWC {want} for {p['name']} -> {c['name']}")
    # FIFOs: every edge of the graph with DWCs, plus one per graph input and output
    n_edges = sum(1 for _ in edges(before)) + len(mismatched)
    want_fifos = n_edges + len(case["graph_before"]["inputs"]) + len(case["graph_before"]["outputs"])
    if len(fifos) != want_fifos:
        errors.append(f"{len(fifos)} FIFOs, expected {want_fifos}")
    # FIFO depths: max(producer outFIFODepths[i], consumer inFIFODepths[j]); DWCs have [2]; graph I/O >= 2
    prod = {t: (n, i) for n in after for i, t in enumerate(n["outputs"])}
    cons = {t: (n, j) for n in after for j, t in enumerate(n["inputs"])}
    for f in fifos:
        p = prod.get(f["inputs"][0])
        c = cons.get(f["outputs"][0])
        pd = p[0]["attrs"].get("outFIFODepths", [2])[p[1]] if p else None
        cd = c[0]["attrs"].get("inFIFODepths", [2])[c[1]] if c else None
        if p and c:
            want = max(pd, cd)
        else:
            want = max(pd if p else cd, 2)
        if f["attrs"]["depth"] != want:
            errors.append(f"{f['name']}: depth {f['attrs']['depth']}, expected {want}")
    # non-inserted nodes keep their estimates
    for n in after:
        if not n["op_type"].startswith(INSERTED_PREFIXES):
            b = by_name.get(n["name_before"])
            if b is None:
                errors.append(f"{n['name']} renamed or new")
            elif b["estimate"] != n["estimate"]:
                errors.append(f"{n['name']}: estimate changed by insertion")
    assert not errors, f"{case['case']}: " + "; ".join(errors)
    tb, ta = case["total_before"], case["total"]
    return {"case": case["case"], "before": len(before), "after": len(after),
            "dwc_hls": sum(n["op_type"].endswith("_hls") for n in dwcs),
            "dwc_rtl": sum(n["op_type"].endswith("_rtl") for n in dwcs), "fifo": len(fifos),
            "max_fifo_depth": max(f["attrs"]["depth"] for f in fifos),
            "LUT": (tb["LUT"], ta["LUT"]), "BRAM_18K": (tb["BRAM_18K"], ta["BRAM_18K"]),
            "URAM": (tb["URAM"], ta["URAM"]), "DSP": (tb["DSP"], ta["DSP"])}


def table(rows: list[dict], extra: dict[str, dict] | None = None) -> str:
    head = ("| case | nodes before/after | DWC hls/rtl | FIFO (max depth) | LUT before → after | "
            "BRAM_18K before → after | URAM before → after |")
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        lines.append(f"| {r['case']} | {r['before']} / {r['after']} | {r['dwc_hls']} / {r['dwc_rtl']} | "
                     f"{r['fifo']} ({r['max_fifo_depth']}) | {r['LUT'][0]:g} → {r['LUT'][1]:g} | "
                     f"{r['BRAM_18K'][0]:g} → {r['BRAM_18K'][1]:g} | {r['URAM'][0]:g} → {r['URAM'][1]:g} |")
    return "\n".join(lines)


# ============================================================================ writing
def dump(case: dict) -> str:
    """Compact JSON: one top-level key per line, one node per line."""
    parts = []
    for k, v in case.items():
        if isinstance(v, list) and v and isinstance(v[0], dict) and k in ("before", "after"):
            body = ",\n".join("  " + json.dumps(x, separators=(",", ":")) for x in v)
            parts.append(f" {json.dumps(k)}: [\n{body}\n ]")
        else:
            parts.append(f" {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", help="comma-separated case names (default: all)")
    ap.add_argument("--finn-home", type=Path,
                    default=Path(os.environ.get("BSOPT_FINN_HOME", Path.home() / ".cache/bsopt/finn")))
    ap.add_argument("--workdir", type=Path, default=Path.home() / ".cache/bsopt/finn_inserted")
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--check", action="store_true", help="only check the case files in --out")
    args = ap.parse_args()
    wanted = set(args.cases.split(",")) if args.cases else None
    cases = [c for c in CASES if wanted is None or c.name in wanted]
    if wanted and len(cases) != len(wanted):
        sys.exit(f"unknown cases: {sorted(wanted - {c.name for c in CASES})}")

    if args.check:
        rows = [check(json.loads((args.out / f"{c.name}.json").read_text())) for c in cases
                if (args.out / f"{c.name}.json").exists()]
        print(table(rows))
        return 0

    py = finn_python(args.finn_home)
    args.workdir = args.workdir.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("BSOPT_MODEL_CACHE", str(args.workdir / "models"))
    from bsopt.space.design_space import load_design_space

    spaces: dict[tuple[str, str | None], object] = {}
    index_path = args.out / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    rows, failures = [], {}
    start = time.time()
    for case in cases:
        key = (case.blueprint, case.model)
        if key not in spaces:
            spaces[key] = load_design_space(ROOT / "search_spaces" / case.blueprint, model=case.model,
                                            for_builds=True).require_valid()
        print(f"== {case.name}", flush=True)
        try:
            data, info = run_case(case, spaces[key], args, py)
            row = check(data)
        except Exception as exc:  # noqa: BLE001 - reported, the other cases go on
            failures[case.name] = f"{type(exc).__name__}: {exc}"
            print(f"   FAILED: {failures[case.name][:3000]}", flush=True)
            index[case.name] = {"status": "failed", "error": failures[case.name][:2000]}
            continue
        (args.out / f"{case.name}.json").write_text(dump(data))
        rows.append(row)
        index[case.name] = {"status": "ok", "model": data["model"], "part": data["part"], "flow": data["flow"],
                            "config_index": data["config_index"], "nodes_before": row["before"],
                            "nodes_after": row["after"], "dwc_hls": row["dwc_hls"], "dwc_rtl": row["dwc_rtl"],
                            "fifo": row["fifo"], "total_before": data["total_before"], "total": data["total"]}
        match = info["bsopt_before"] == {k: data["total_before"][k] for k in ("LUT", "BRAM_18K", "URAM", "DSP")} \
            if isinstance(info["bsopt_before"], dict) else info["bsopt_before"]
        print(f"   ok in {info['wall_s']:.1f} s: {row['before']} -> {row['after']} nodes, DWC hls/rtl "
              f"{row['dwc_hls']}/{row['dwc_rtl']}, {row['fifo']} FIFOs; bsopt's estimate == FINN before: {match}",
              flush=True)
    index_path.write_text(json.dumps(dict(sorted(index.items())), indent=1) + "\n")
    print(f"\n{len(rows)} cases in {time.time() - start:.0f} s\n")
    print(table(rows))
    for name, err in failures.items():
        print(f"\nFAILED {name}: {err[:1500]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
