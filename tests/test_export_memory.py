"""The memory-lean export is brevitas' and qonnx's own export, byte for byte.

bsopt's export (bsopt/models/_trace.py, _cleanup.py, _protowrite.py) leaves the weights out of torch's
trace, cleans up in place with shapes inferred on a skeleton and writes the file piecewise.  The
expectation here is what the unmodified tools produce: ``brevitas.export.export_qonnx`` to a file, the
same finishing steps on a plain qonnx ModelWrapper (qonnx's ``cleanup_model``, ``InferShapes``,
``InferDataTypes``, deep copies and all), ``onnx.save_model``.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytestmark = pytest.mark.models

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")

from brevitas.export import export_qonnx  # noqa: E402
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.transformation.infer_shapes import InferShapes  # noqa: E402
from qonnx.util.cleanup import cleanup_model  # noqa: E402

from bsopt.errors import InputError, ModelError  # noqa: E402
from bsopt.models import build_model, export_model, export_module  # noqa: E402
from bsopt.models._cleanup import InferShapesOnSkeleton  # noqa: E402
from bsopt.models._nets import snap_weights_to_grid  # noqa: E402
from bsopt.models._protowrite import write_model  # noqa: E402
from bsopt.models._trace import trace_qonnx  # noqa: E402
from bsopt.models.export import _finish, export_model_apart  # noqa: E402
from bsopt.models.zoo import get_entry  # noqa: E402

SMALL_BERT = {"layers": 2, "hidden": 64, "heads": 4, "seq": 16, "ff": 128}


def reference_export(module: torch.nn.Module, example: torch.Tensor, opset: int, *, prepost: bool,
                     cleanup: bool = True) -> bytes:
    """The file the unmodified tools write for ``module``: brevitas' ``export_qonnx`` to a file, then
    bsopt's finishing sequence (cleanup, pre/post-processing, inference) on a plain qonnx ModelWrapper with
    qonnx's own ``cleanup_model`` and ``InferShapes``, then ``onnx.save_model``."""
    import bsopt.models._cleanup as lean_cleanup

    module.eval()
    with tempfile.TemporaryDirectory() as tmp:
        raw = str(Path(tmp) / "raw.onnx")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.no_grad():
                export_qonnx(module, args=example, export_path=raw, opset_version=opset, dynamo=False)
        model = ModelWrapper(raw, fix_missing_initializer_valueinfo=cleanup)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lean_cleanup, "cleanup_model", cleanup_model)
        model = _finish(model, prepost=prepost, cleanup=cleanup)
    assert type(model) is ModelWrapper  # qonnx's own transformations all the way
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ref.onnx"
        onnx.save_model(model.model, str(path))
        return path.read_bytes()


def zoo_reference(name: str, w: int, a: int, *, cleanup: bool = True, **options: int) -> bytes:
    entry = get_entry(name)
    module = snap_weights_to_grid(build_model(name, w, a, **options))
    draw = torch.randn if entry.kind == "encoder" else torch.rand
    example = draw(tuple(entry.shape_for(options)), generator=torch.Generator().manual_seed(0))
    return reference_export(module, example, entry.opset, prepost=entry.prepost, cleanup=cleanup)


@pytest.mark.parametrize(("name", "w", "a", "options"), [
    ("bert", 8, 8, SMALL_BERT),     # weights left out of the trace, attached afterwards
    ("bert", 4, 4, {}),
    ("tfc", 1, 1, {}),              # BipolarQuant, pre/post-processing; TensorNorm folded by torch: ordinary trace
    ("dscnn", 2, 2, {}),
])
def test_zoo_export_is_the_tools_own_file(tmp_path: Path, name: str, w: int, a: int, options: dict) -> None:
    out = export_model(name, w, a, tmp_path / "m.onnx", **options)
    assert out.read_bytes() == zoo_reference(name, w, a, **options)


def test_export_without_cleanup_is_brevitas_raw_graph(tmp_path: Path) -> None:
    out = export_model("bert", 2, 2, tmp_path / "raw.onnx", cleanup=False, **SMALL_BERT)
    expected = onnx.load_from_string(zoo_reference("bert", 2, 2, cleanup=False, **SMALL_BERT))
    got = onnx.load(str(out))
    # torch numbers its traced input by a global counter, so only that name differs between two traces
    assert got.graph.input[0].name != "" and expected.graph.input[0].name != ""
    rename = {got.graph.input[0].name: expected.graph.input[0].name}
    for node in got.graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
    got.graph.input[0].name = expected.graph.input[0].name
    assert got.SerializeToString() == expected.SerializeToString()


class _BnNet(torch.nn.Module):
    """A user network whose parameters torch leaves alone (conv, eval-mode BatchNorm, linear)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = QuantIdentity(bit_width=4, return_quant_tensor=True)
        self.conv = QuantConv2d(3, 8, 3, weight_bit_width=4, bias=False)
        self.bn = torch.nn.BatchNorm2d(8)
        self.act = QuantReLU(bit_width=4)
        self.fc = QuantLinear(8 * 6 * 6, 10, weight_bit_width=4, bias=True)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.bn(self.conv(self.inp(x)))).flatten(1))


def make_bn_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return _BnNet()


def test_user_module_export_is_the_tools_own_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    out = export_module("test_export_memory:make_bn_net", (1, 3, 8, 8), tmp_path / "bn.onnx", prepost=True)
    example = torch.rand((1, 3, 8, 8), generator=torch.Generator().manual_seed(0))
    assert out.read_bytes() == reference_export(make_bn_net(), example, 13, prepost=True)


def test_trace_leaves_the_weights_out_and_attaches_each_once() -> None:
    module = make_bn_net().eval()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    example = torch.rand((1, 3, 8, 8))
    model = trace_qonnx(module, example, 13)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    params = [vi.name for vi in model.graph.input[1:]]
    assert params and set(params) <= set(before)
    for name in params:  # each parameter is an initializer holding the module's values
        np.testing.assert_array_equal(inits[name], before[name].numpy())
    assert [t.name for t in model.graph.initializer][: len(params)] == params
    for name, value in module.state_dict().items():  # not consumed: the caller's module is intact
        assert torch.equal(value, before[name])
    trace_qonnx(module, example, 13, consume=True)
    assert module.conv.weight.numel() == 0 and module.fc.weight.numel() == 0


def test_export_handlers_keep_no_copy_of_the_weights() -> None:
    from bsopt.models._trace import _manager

    module = build_model("bert", 4, 4, **SMALL_BERT)
    proxy = module.layers[0].ff1.weight_quant
    handler = _manager().handler_from_module(proxy, no_inheritance=True)
    assert handler is not None
    original, lean = handler.__mro__[1](), handler()
    original.prepare_for_export(proxy)
    lean.prepare_for_export(proxy)
    # brevitas keeps the quantised weight per layer; the lean handler exports the same symbols without it
    assert getattr(original, "quant_weight_values", None)
    assert lean.quant_weight_values is None
    assert lean.symbolic_kwargs.keys() == original.symbolic_kwargs.keys()


def test_shapes_on_the_skeleton_are_onnx_shapes_of_the_whole_model() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 96)).astype(np.float32)          # 6,144 elements: left out of the skeleton
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]),
         helper.make_node("Reshape", ["y", "shape"], ["z"]),     # needs the value of a small constant
         helper.make_node("Transpose", ["z"], ["t"], perm=[0, 2, 1]),
         helper.make_node("Relu", ["t"], ["out"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 64])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([2, 2, 96]), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    whole = ModelWrapper(onnx.ModelProto.FromString(model.SerializeToString())).transform(InferShapes())
    lean = ModelWrapper(model).transform(InferShapesOnSkeleton())
    assert lean.get_tensor_shape("t") == [2, 96, 2] and lean.get_tensor_shape("out") == [2, 96, 2]
    assert lean.model.SerializeToString() == whole.model.SerializeToString()


def test_piecewise_file_is_what_protobuf_serialises() -> None:
    tensors = [numpy_helper.from_array(np.arange(n, dtype=np.float32).reshape(-1, 1), f"w{n}") for n in (1, 300, 70000)]
    graph = helper.make_graph([helper.make_node("Add", ["x", "w1"], ["y"], name="add", doc_string="d")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
                              initializer=tensors, doc_string="graph doc",
                              value_info=[helper.make_tensor_value_info("v", TensorProto.FLOAT, [2])])
    graph.quantization_annotation.add(tensor_name="x")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("qonnx", 1)],
                              producer_name="p", doc_string="model doc")
    helper.set_model_props(model, {"a": "1", "b": "2"})   # a field numbered after the graph
    for m in (model, onnx.ModelProto(), helper.make_model(helper.make_graph([], "empty", [], []))):
        out = io.BytesIO()
        write_model(m, out)
        assert out.getvalue() == m.SerializeToString()


def test_export_apart_writes_the_same_file(tmp_path: Path) -> None:
    here = export_model("tfc", 2, 2, tmp_path / "here.onnx")
    apart = export_model_apart("tfc", 2, 2, tmp_path / "apart.onnx", apart=True)
    assert apart == tmp_path / "apart.onnx" and apart.read_bytes() == here.read_bytes()


def test_export_apart_brings_back_the_childs_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="weight_bits=3") as info:
        export_model_apart("tfc", 3, 2, tmp_path / "x.onnx", apart=True)
    assert "allowed values" in (info.value.hint or "")
    with pytest.raises(InputError, match="layers=0"):
        export_model_apart("bert", 8, 8, tmp_path / "x.onnx", apart=True, layers=0)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.skipif(os.name != "posix", reason="a POSIX signal")
def test_export_apart_says_how_the_child_died(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    killer = tmp_path / "python"
    killer.write_text("#!/bin/sh\necho 'about to die' >&2\nkill -9 $$\n")
    killer.chmod(killer.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(sys, "executable", str(killer))
    with pytest.raises(ModelError, match="killed by signal 9: about to die") as info:
        export_model_apart("tfc", 2, 2, tmp_path / "x.onnx", apart=True)
    assert "out of memory" in (info.value.hint or "")


def test_command_without_torch_exports_zoo_models_apart(tmp_path: Path) -> None:
    """A blueprint's zoo reference exports in a child: the command's own process never imports torch."""
    code = ("import sys; from bsopt.space.design_space import load_design_space; "
            "s = load_design_space(sys.argv[1], 'zoo:tfc?w=2&a=2'); "
            "print(s.get_total_combinations(), 'torch' in sys.modules)")
    blueprint = Path(__file__).resolve().parents[1] / "search_spaces" / "tfc_folding.yaml"
    env = {**os.environ, "BSOPT_MODEL_CACHE": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code, str(blueprint)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    count, imported = proc.stdout.split()
    assert int(count) > 0 and imported == "False"
    (model,) = tmp_path.glob("tfc_w2a2*.onnx")
    assert model.read_bytes() == zoo_reference("tfc", 2, 2)


def test_bad_export_requests_are_refused_before_torch_or_the_export(tmp_path: Path) -> None:
    """Bits, options and an unwritable output: refused at once (no torch import, no export first)."""
    code = ("import sys\nfrom bsopt.errors import InputError\nfrom bsopt.models import export_model\n"
            "for args, kw in [(('tfc', 3, 2, sys.argv[1] + '/a.onnx'), {}),\n"
            "                 (('bert', 8, 8, sys.argv[1] + '/b.onnx'), {'heads': 5}),\n"
            "                 (('tfc', 2, 2, '/proc/bsopt-test/x.onnx'), {})]:\n"
            "    try:\n        export_model(*args, **kw)\n    except InputError as exc:\n        print(exc.message, exc.where)\n"
            "print('torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0, proc.stderr
    assert "weight_bits=3" in lines[0] and "not a multiple of heads=5" in lines[1]
    assert lines[2].startswith("cannot write the model there: ") and lines[2].endswith(" /proc/bsopt-test/x.onnx")
    assert lines[3] == "False"  # torch was never imported


def test_a_child_that_fails_outside_bsopts_errors_says_so_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:  # a million-wide encoder: torch cannot allocate its weights
        export_model_apart("bert", 8, 8, tmp_path / "x.onnx", apart=True, hidden=1_000_000, heads=1, ff=4)
    message = info.value.message
    assert message.startswith("RuntimeError: ") and "\n" not in message and "Traceback" not in message
    assert "smaller model" in (info.value.hint or "")
