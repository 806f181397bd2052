"""Fuzzing the inputs users write: blueprints, QONNX models and FINN folding configs, mutated by seeded
generators from valid ones, through the commands that read them (``blueprint validate``/``count``,
``model inspect``, ``estimate``). Each must end in a result or a clear error (exit 0 or 2, or another
BsoptError code) — never "internal error" — within 10 s and without growing the process by 500 MB.

Counts (issue 19): 1,100 blueprints, 330 ONNX files, 330 folding configs, in chunks that xdist spreads.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import random
import resource
import time
from pathlib import Path

import pytest
import yaml
from finn_reference import network_dirs, prepost_model

from bsopt.cli import main

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"
MAX_SECONDS = 10.0
MAX_GROWTH_MB = 500.0

WEIRD = [None, True, False, 0, -1, 1, 2, 3, 7, 10**12, -(10**12), 2**63, 0.5, -0.0, 1e308, float("nan"),
         float("inf"), "", " ", "all", "auto", "~", "x" * 300, "\x00\x01", "ünïcödé", "../../etc/passwd",
         "zoo:nope", "zoo:tfc?w=99&a=2", "zoo:dscnn?w=4&a=4/../..", "zoo:tfc?w=2&a=2&foo=1", "${HOME}", "{build_dir}",
         "MVAU", "MVAU_hls_0", "PE", "SIMD", "step_streamline", "lut", "block", [], [[]], [1, 2], [[1, 2], [3]],
         ["all"], {}, {"a": 1}, {"PE": "all"}, {"low": 1, "high": 0}, {"low": 1, "high": 1e9, "log": True},
         [{"metric": [["LUT"]]}], {"metric": "LUT", "operator": "<=", "value": "x"}]


def _weird(rng: random.Random):
    v = rng.choice(WEIRD)
    if rng.random() < 0.1:  # nested a few levels
        for _ in range(rng.randint(1, 4)):
            v = rng.choice([[v], {"k": v}, {rng.choice(["PE", "SIMD", "kinds", "layers", "search"]): v}])
    return copy.deepcopy(v)


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in list(tree.items()):
            yield from _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths(v, (*prefix, i))


def _get(tree, path):
    for p in path:
        tree = tree[p]
    return tree


def mutate_tree(rng: random.Random, tree, n: int):
    """``n`` random edits: replace a value, delete or rename a key, add an unknown key, duplicate a
    subtree elsewhere, change a container's type."""
    tree = copy.deepcopy(tree)
    for _ in range(n):
        paths = list(_paths(tree))
        path = rng.choice(paths)
        if not path:
            if rng.random() < 0.05:
                tree = _weird(rng)
            continue
        parent = _get(tree, path[:-1])
        key = path[-1]
        op = rng.random()
        if op < 0.45:
            parent[key] = _weird(rng)
        elif op < 0.6 and isinstance(parent, dict):
            del parent[key]
        elif op < 0.72 and isinstance(parent, dict):
            value = parent.pop(key)
            name = str(key)
            new = rng.choice([name.upper(), name[:-1], name + "s", name.replace("_", "-"), "x" + name, 17, None])
            parent[new] = value
        elif op < 0.84 and isinstance(parent, dict):
            parent[rng.choice(["extra", "PE", "SIMD", "kinds", "layers", "backend", "extends", "mode", "version",
                               "strategy", "ram_style", "parallel_window"])] = _weird(rng)
        elif op < 0.92:
            other = _get(tree, rng.choice(paths))
            try:
                parent[key] = copy.deepcopy(other)
            except RecursionError:
                pass
        else:
            value = parent[key]
            parent[key] = list(value.items()) if isinstance(value, dict) else \
                ({str(i): v for i, v in enumerate(value)} if isinstance(value, list) else [value])
    return tree


def mutate_text(rng: random.Random, text: str) -> str:
    op = rng.random()
    if op < 0.25:
        return text[: rng.randint(0, len(text))]
    if op < 0.5:
        i = rng.randint(0, len(text))
        return text[:i] + rng.choice(["\x00", "\t", ":", "- ", "&a ", "*a", "!!python/object:os.system ''",
                                      "{", "]", "\n  x: [", "\\", "'", '"', "\ufeff", "%YAML 1.1\n"]) + text[i:]
    if op < 0.7:
        lines = text.splitlines()
        if lines:
            i = rng.randrange(len(lines))
            lines.insert(rng.randrange(len(lines) + 1), lines[i])  # a duplicated line (key)
        return "\n".join(lines)
    if op < 0.85:
        depth = rng.choice([50, 500, 5000])
        return text + "\ndeep: " + "[" * depth + "]" * depth + "\n"
    return text.replace(" ", rng.choice(["  ", "\t", ""]), rng.randint(1, 5))


class Budget:
    """Each case within MAX_SECONDS; the process's peak within MAX_GROWTH_MB of where it started."""

    def __init__(self):
        self.start_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.problems: dict[str, list] = {}  # first line of the problem -> the cases showing it

    def run(self, argv: list[str], label) -> tuple[int, str]:
        err = io.StringIO()
        t = time.time()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            rc = main(argv)
        took = time.time() - t
        text = err.getvalue()
        if "internal error" in text:
            line = next(li for li in text.splitlines() if "internal error" in li)
            self.problems.setdefault(line[:160], []).append((label, argv[-1]))
        elif rc == 1 and "error" not in text:  # exit 1 only for a stated BsoptError
            self.problems.setdefault(f"exit 1 without an error message: {text[-200:]}", []).append((label, argv))
        if took > MAX_SECONDS:
            self.problems.setdefault(f"took {took:.1f} s (limit {MAX_SECONDS})", []).append((label, argv))
        return rc, text

    def check(self):
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - self.start_peak
        assert grown < MAX_GROWTH_MB, grown
        report = "\n".join(f"{len(cases)}x {problem}\n   e.g. {cases[0]}" for problem, cases in self.problems.items())
        assert not self.problems, report


def _bases(model: Path) -> list[tuple[str, dict | str]]:
    """Valid blueprints to mutate: the shipped ones (their models replaced by a reference TFC, so that
    no zoo export runs) and a few written here."""
    out = []
    for path in sorted(SPACES.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and "model" in data:
            data["model"] = str(model)
        out.append((path.name, data))
    out.append(("v3-kernels", {"version": "3.0", "name": "k", "model": str(model), "hw_compiler": {
        "kernels": ["MVAU", ["Thresholding", "~"], {"MVAU": ["hls", "rtl"]}],
        "transforms": {"cleanup": ["RemoveIdentityOps", ["~", "GiveUniqueNodeNames"]]},
        "build_steps": ["step_qonnx_to_finn", "step_streamline", ["step_minimize_bit_width", "~"]],
        "config_flags": {"target_fps": [1000, 100000], "mvau_wwidth_max": 36}},
        "search": {"strategy": "random", "max_evaluations": 10,
                   "constraints": [{"metric": "LUT_util", "operator": "<=", "value": 0.7}]},
        "global": {"output_stage": "estimates"}}))
    out.append(("folding-layers", {"version": "3.0", "name": "f", "model": str(model),
                                   "hw_compiler": {"build_steps": ["step_streamline"]},
                                   "folding": {"layers": {"MVAU_hls_0": {"PE": [1, 2, 4], "SIMD": "all"}},
                                               "kinds": {"Thresholding": {"PE": "all"}}},
                                   "objectives": ["throughput_fps", "LUT"]}))
    return out


@pytest.fixture(scope="module")
def tfc():
    return prepost_model("tfc_w2a2")


@pytest.mark.parametrize("chunk", range(10))
def test_fuzzed_blueprints_are_results_or_clear_errors(chunk, tfc, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BSOPT_MODEL_CACHE", str(tmp_path / "models"))
    (tmp_path / "_finn_estimate_flow.yaml").write_text((SPACES / "_finn_estimate_flow.yaml").read_text())
    rng = random.Random(1000 + chunk)
    bases = _bases(Path(tfc))
    budget = Budget()
    for i in range(110):
        name, base = rng.choice(bases)
        tree = mutate_tree(rng, base, rng.randint(1, 4))
        try:
            text = yaml.safe_dump(tree, allow_unicode=True, sort_keys=False)
        except (yaml.YAMLError, RecursionError):
            text = str(tree)
        if rng.random() < 0.3:
            text = mutate_text(rng, text)
        path = tmp_path / f"bp{i}.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        budget.run(["blueprint", "validate", str(path)], (chunk, i, name))
        if rng.random() < 0.3:
            budget.run(["blueprint", "count", str(path)], (chunk, i, name))
    budget.check()


# ------------------------------------------------------------------ ONNX models
def mutate_model(rng: random.Random, model):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = copy.deepcopy(model)
    g = m.graph
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        nodes = list(g.node)
        if op < 0.15 and nodes:
            g.node.remove(rng.choice(nodes))
        elif op < 0.27 and nodes:
            rng.choice(nodes).op_type = rng.choice(["Conv", "Foo", "MatMul", "Quant", "Relu", "Gemm", "LayerNorm",
                                                    "Softmax", "", "Add"])
        elif op < 0.4 and g.initializer:
            init = rng.choice(list(g.initializer))
            if rng.random() < 0.5:
                g.initializer.remove(init)
            else:
                arr = numpy_helper.to_array(init).copy()
                if arr.size:
                    values = [0, -3, 100] + ([float("nan"), float("inf"), 1e30] if arr.dtype.kind == "f" else [])
                    arr.flat[rng.randrange(arr.size)] = rng.choice(values)
                init.CopyFrom(numpy_helper.from_array(arr.astype(arr.dtype), init.name))
        elif op < 0.5 and nodes:
            node = rng.choice(nodes)
            if node.attribute:
                attr = rng.choice(list(node.attribute))
                node.attribute.remove(attr)
                if rng.random() < 0.6:
                    node.attribute.append(helper.make_attribute(attr.name, rng.choice(
                        [0, -1, 10**9, 1.5, "x", [1, 2, 3]])))
        elif op < 0.6 and (g.input or g.output):
            vi = rng.choice(list(g.input) + list(g.output))
            dims = vi.type.tensor_type.shape.dim
            if dims:
                d = rng.choice(list(dims))
                choice = rng.choice([0, -1, 7, 10**6, "N"])
                if isinstance(choice, str):
                    d.dim_param = choice
                else:
                    d.dim_value = choice
            if rng.random() < 0.3:
                vi.type.tensor_type.elem_type = rng.choice([TensorProto.INT8, TensorProto.STRING, TensorProto.DOUBLE, 0])
        elif op < 0.7 and nodes:
            node = rng.choice(nodes)
            if node.input:
                node.input[rng.randrange(len(node.input))] = rng.choice(
                    [node.output[0] if node.output else "", "missing_tensor", ""])
        elif op < 0.78 and nodes:
            node = rng.choice(nodes)
            if node.output:
                node.output[0] = rng.choice(nodes).output[0] if rng.choice(nodes).output else "dup"
        elif op < 0.85 and g.output:
            g.output.remove(rng.choice(list(g.output)))
        elif op < 0.9:
            m.opset_import[0].version = rng.choice([1, 7, 99, 0])
        elif op < 0.95 and nodes:
            node = rng.choice(nodes)
            node.domain = rng.choice(["", "qonnx.custom_op.general", "finn.custom_op.fpgadataflow", "x.y"])
        else:
            g.ClearField("value_info")
    try:
        return m.SerializeToString()
    except (ValueError, onnx.onnx_cpp2py_export.checker.ValidationError):  # pragma: no cover - defensive
        return b""


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    op = rng.random()
    if op < 0.4:
        return bytes(b[: rng.randint(0, len(b))])
    if op < 0.8:
        for _ in range(rng.randint(1, 20)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    return bytes(b) + bytes(rng.randrange(256) for _ in range(rng.randint(1, 100)))


@pytest.mark.parametrize("chunk", range(3))
def test_fuzzed_onnx_models_are_results_or_clear_errors(chunk, tfc, tmp_path):
    import gzip

    import onnx

    src = Path(tfc)
    data = gzip.decompress(src.read_bytes()) if src.suffix == ".gz" else src.read_bytes()
    model = onnx.load_from_string(data)
    rng = random.Random(2000 + chunk)
    budget = Budget()
    for i in range(110):
        blob = mutate_model(rng, model) if rng.random() < 0.7 else mutate_bytes(rng, data)
        path = tmp_path / f"m{i}.onnx"
        path.write_bytes(blob)
        budget.run(["model", "inspect", str(path)], (chunk, i))
        if rng.random() < 0.3:
            budget.run(["estimate", "-m", str(path), "--json"], (chunk, i))
    budget.check()


# ------------------------------------------------------------------ folding configs
def _valid_folding(tfc: str, tmp_path: Path) -> dict:
    out = tmp_path / "valid.json"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["fold", "-m", tfc, "--target-fps", "100000", "--out", str(out)]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("chunk", range(3))
def test_fuzzed_folding_configs_are_results_or_clear_errors(chunk, tfc, tmp_path):
    base = _valid_folding(str(tfc), tmp_path)
    rng = random.Random(3000 + chunk)
    budget = Budget()
    for i in range(110):
        tree = mutate_tree(rng, base, rng.randint(1, 4))
        try:
            text = json.dumps(tree, allow_nan=True)
        except (TypeError, ValueError, RecursionError):
            text = str(tree)
        if rng.random() < 0.25:
            text = mutate_text(rng, text)
        path = tmp_path / f"f{i}.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        if rng.random() < 0.5:
            budget.run(["estimate", "-m", str(tfc), "--folding", str(path), "--json"], (chunk, i))
        else:
            budget.run(["model", "inspect", str(tfc), "--folding-config", str(path)], (chunk, i))
    budget.check()


def test_the_inputs_issue_19_names_are_clear_errors(tfc, tmp_path, monkeypatch):
    """The fuzzed inputs that ended in internal errors before, each by name."""
    monkeypatch.chdir(tmp_path)
    budget = Budget()
    base = f"version: '3.0'\nname: n\nmodel: {tfc}\nhw_compiler: {{build_steps: [step_streamline, step_minimize_bit_width]}}\n"
    blueprints = {
        "nul": base + "search: {strategy: \x00\x01}\n",
        "extends-nul": "extends: 'a\x00b.yaml'\n" + base,
        "metric-nested": base + "objectives: [{metric: [[LUT]]}]\n",
        "constraint-nested": base + "search: {constraints: [{metric: {a: 1}, operator: '<=', value: 1}]}\n",
        "zoo-dots": base.replace(str(tfc), "'zoo:dscnn?w=4&a=4/../..'"),
        "float-search": base + "search: 1.5\n",
        "min-max-dict": base + "folding: {kinds: {MVAU: {PE: {min: {a: 1}, max: 4}}}}\n",
        "long-objectives-file": base + "objectives: " + "x" * 400 + "\n",
    }
    for name, text in blueprints.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        rc, err = budget.run(["blueprint", "validate", str(path)], name)
        assert rc == 2 and "error" in err, (name, err)
    foldings = {"bool-entry": '{"MVAU_hls_0": true}', "string-pe": '{"MVAU_hls_0": {"PE": "4"}}',
                "list-pe": '{"MVAU_hls_0": {"PE": [4]}}', "top-list": "[1, 2]",
                "deep": "[" * 100000 + "]" * 100000, "nan-simd": '{"MVAU_hls_0": {"SIMD": NaN}}',
                "defaults-kinds": '{"Defaults": {"PE": [2, [3]]}}',
                "typo-attribute": '{"MVAU_hls_0": {"PE": 4, "SIMDD": 2}}'}
    for name, text in foldings.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        for argv in (["estimate", "-m", str(tfc), "--folding", str(path)],
                     ["model", "inspect", str(tfc), "--folding-config", str(path)]):
            rc, err = budget.run(argv, name)
            assert rc == 2 and "error" in err, (name, argv, err)
    bad = tmp_path / "bad_pe.json"
    bad.write_text('{"MVAU_hls_0": {"PE": 3}}')  # does not divide the layer's 64 outputs: estimate and inspect agree
    for argv in (["estimate", "-m", str(tfc), "--folding", str(bad)],
                 ["model", "inspect", str(tfc), "--folding-config", str(bad)]):
        rc, err = budget.run(argv, "bad_pe")
        assert rc == 2 and "PE = 3 does not divide" in err.replace("PE=3", "PE = 3"), err
    budget.check()
