"""Zoo models and their QONNX export: structure, bit widths, numerics, determinism, FINN references."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

pytestmark = pytest.mark.models

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")

from qonnx.core.datatype import DataType  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.util.cleanup import cleanup_model  # noqa: E402

from bsopt.errors import InputError, ModelError  # noqa: E402
from bsopt.models import ALLOWED_BITS, ZOO, build_model, export_model, export_module  # noqa: E402
from bsopt.models.export import PREPOST_INPUT, PREPOST_OUTPUT  # noqa: E402

REFERENCE_DIR = Path(os.environ.get("BSOPT_FINN_REFERENCE", "/work/shared/finn_reference")) / "networks"
QUANT_OPS = ("Quant", "BipolarQuant")

# Every export the tests share, exported once per session.  CNV is the slow one: twice only.
TFC_COMBOS = [(1, 1), (2, 2), (4, 4), (8, 8), (1, 2)]
EXEC_CASES = (
    [("tfc", w, a) for w, a in TFC_COMBOS]
    + [("mlp", 1, 1), ("mlp", 4, 2)]
    + [("dscnn", 1, 1), ("dscnn", 2, 2), ("dscnn", 4, 4)]
    + [("cnv", 2, 2)]
)
REFERENCE_CASES = [("tfc", 1, 1, "tfc_w1a1"), ("tfc", 2, 2, "tfc_w2a2"), ("cnv", 1, 1, "cnv_w1a1")]


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``exported(name, w, a, prepost=False, cleanup=True)`` -> path, cached for the session."""
    cache: dict[tuple[str, int, int, bool, bool], Path] = {}
    root = tmp_path_factory.mktemp("zoo")

    def get(name: str, w: int, a: int, prepost: bool = False, cleanup: bool = True) -> Path:
        key = (name, w, a, prepost, cleanup)
        if key not in cache:
            out = root / f"{name}_w{w}a{a}_{'pp' if prepost else 'np'}_{'clean' if cleanup else 'raw'}.onnx"
            cache[key] = export_model(name, w, a, out, prepost=prepost, cleanup=cleanup)
        return cache[key]

    return get


# --------------------------------------------------------------------------------------------
# helpers


def _quant_nodes(model: ModelWrapper) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type in QUANT_OPS]


def _is_weight_quant(model: ModelWrapper, node: onnx.NodeProto) -> bool:
    return model.get_initializer(node.input[0]) is not None


def _bit_width(model: ModelWrapper, node: onnx.NodeProto) -> int:
    if node.op_type == "BipolarQuant":
        return 1
    return int(model.get_initializer(node.input[3]))


def _weight_of(model: ModelWrapper, node: onnx.NodeProto) -> np.ndarray:
    """The (float) weight initializer behind a MatMul/Conv, looking through its weight quantiser."""
    producer = model.find_producer(node.input[1])
    assert producer is not None and producer.op_type in QUANT_OPS, node.name
    weight = model.get_initializer(producer.input[0])
    assert weight is not None
    return weight


def _input_bits(name: str, act_bits: int) -> int:
    bits = ZOO[name].input_bits
    return act_bits if bits is None else bits


def _load_reference(directory: str) -> onnx.ModelProto:
    for candidate in ("model_qonnx_prepost.onnx", "model_qonnx_prepost.onnx.gz"):
        path = REFERENCE_DIR / directory / candidate
        if path.exists():
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            return onnx.load_model_from_string(data)
    pytest.skip(f"FINN reference network {directory} not found under {REFERENCE_DIR}")


def _op_types(model: ModelWrapper | onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _initializers(model: ModelWrapper | onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _random_input(name: str, seed: int = 1) -> torch.Tensor:
    return torch.rand(ZOO[name].input_shape, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------
# registry, validation, build


def test_zoo_registry() -> None:
    assert set(ZOO) == {"tfc", "cnv", "mlp", "dscnn", "bert"}
    for key, entry in ZOO.items():
        assert entry.name == key
        assert entry.input_shape[0] == 1
        assert len(entry.input_shape) == (4 if entry.kind == "classifier" else 3)
        assert entry.prepost == (entry.kind == "classifier")
        assert entry.description and "\n" not in entry.description
    bert = ZOO["bert"]
    assert bert.resolve_options() == {"layers": 1, "hidden": 128, "heads": 4, "seq": 32, "ff": 512}
    assert bert.shape_for() == bert.input_shape == (1, 32, 128)


@pytest.mark.parametrize("bits", [(3, 2), (2, 0), (16, 8), (2, 5), (True, 2)])
def test_invalid_bits_raise_input_error(bits: tuple[int, int], tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        build_model("tfc", *bits)
    assert info.value.hint is not None and "1, 2, 4, 8" in info.value.hint
    with pytest.raises(InputError):
        export_model("tfc", *bits, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_unknown_model_lists_zoo(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        build_model("resnet", 2, 2)
    assert all(name in str(info.value) for name in ZOO)
    with pytest.raises(InputError):
        export_model("resnet", 2, 2, tmp_path / "x.onnx")


def test_build_is_deterministic_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(1234)
    expected_next = torch.rand(3)
    torch.manual_seed(1234)
    a = build_model("mlp", 2, 2, seed=7)
    assert torch.equal(torch.rand(3), expected_next)
    b = build_model("mlp", 2, 2, seed=7)
    c = build_model("mlp", 2, 2, seed=8)
    assert not a.training
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if k.endswith("weight"))


def test_import_without_torch() -> None:
    """ZOO metadata imports with torch unavailable; building then names the missing extra."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # makes `import torch` raise ImportError
        import bsopt.models as m
        assert "torch" not in [k for k, v in sys.modules.items() if v is not None]
        assert set(m.ZOO) == {"tfc", "cnv", "mlp", "dscnn", "bert"}
        assert m.ZOO["bert"].shape_for({"seq": 64}) == (1, 64, 128)
        from bsopt.errors import MissingDependencyError
        try:
            m.build_model("tfc", 1, 1)
        except MissingDependencyError as exc:
            assert "models" in str(exc), exc
        else:
            raise AssertionError("expected MissingDependencyError")
        """
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------
# exported graphs: validity, numerics, quantisers


@pytest.mark.parametrize(("name", "w", "a"), EXEC_CASES)
def test_export_matches_torch(exported: Callable[..., Path], name: str, w: int, a: int) -> None:
    path = exported(name, w, a)
    onnx.checker.check_model(str(path))
    model = ModelWrapper(str(path))
    assert [i.name for i in model.graph.input] == ["global_in"]
    assert model.get_tensor_shape("global_in") == list(ZOO[name].input_shape)

    x = _random_input(name)
    out = execute_onnx(model, {"global_in": x.numpy()})[model.graph.output[0].name]
    with torch.no_grad():
        expected = build_model(name, w, a)(x).numpy()
    assert out.shape == expected.shape == (1, ZOO[name].num_classes)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    assert out.argmax() == expected.argmax()


@pytest.mark.parametrize(("name", "w", "a"), EXEC_CASES)
def test_quantiser_bit_widths(exported: Callable[..., Path], name: str, w: int, a: int) -> None:
    model = ModelWrapper(str(exported(name, w, a)))
    quants = _quant_nodes(model)
    weight_quants = [n for n in quants if _is_weight_quant(model, n)]
    act_quants = [n for n in quants if not _is_weight_quant(model, n)]
    compute = [n for n in model.graph.node if n.op_type in ("MatMul", "Conv")]
    assert len(weight_quants) == len(compute)
    # one quantiser on the input plus one after every layer but the classifier
    assert len(act_quants) == len(compute)

    for node in weight_quants:
        assert _bit_width(model, node) == w, node.name
    # in topological order the input quantiser precedes every other activation quantiser
    input_quant = next(
        n for n in model.graph.node if n.op_type in QUANT_OPS and not _is_weight_quant(model, n)
    )
    assert _bit_width(model, input_quant) == _input_bits(name, a)
    for node in act_quants:
        if node is not input_quant:
            assert _bit_width(model, node) == a, node.name

    for node in quants:
        # constant, per-tensor scales and zero points: every quantiser parameter is a scalar initializer
        for param in node.input[1:]:
            value = model.get_initializer(param)
            assert value is not None and np.asarray(value).size == 1, (node.name, param)
        if node.op_type == "Quant":
            assert model.get_initializer(node.input[2]) == 0
            assert node.attribute and {att.name for att in node.attribute} >= {"signed", "narrow"}
        if node in weight_quants and node.op_type == "Quant":
            np.testing.assert_allclose(model.get_initializer(node.input[1]), 1.0 / (2 ** (w - 1) - 1))

    bipolar = {n.op_type == "BipolarQuant" for n in weight_quants}
    assert bipolar == {w == 1}
    if w == 1 or a == 1:
        assert any(n.op_type == "BipolarQuant" for n in quants)
    if a == 1:
        assert all(n.op_type == "BipolarQuant" for n in act_quants if n is not input_quant)


def test_tfc_structure(exported: Callable[..., Path]) -> None:
    model = ModelWrapper(str(exported("tfc", 2, 2)))
    matmuls = model.get_nodes_by_op_type("MatMul")
    shapes = [tuple(_weight_of(model, n).shape) for n in matmuls]
    expected = [(784, 64), (64, 64), (64, 64), (64, 10)]
    assert all(s in (e, e[::-1]) for s, e in zip(shapes, expected, strict=True)), shapes
    assert len(model.get_nodes_by_op_type("BatchNormalization")) == 3
    assert _op_types(model)[-4:] == ["Sub", "Div", "Mul", "Add"]  # the TensorNorm tail


def test_mlp_structure(exported: Callable[..., Path]) -> None:
    model = ModelWrapper(str(exported("mlp", 1, 1)))
    shapes = [tuple(sorted(_weight_of(model, n).shape)) for n in model.get_nodes_by_op_type("MatMul")]
    assert shapes == [(128, 784), (64, 128), (10, 64)]


def test_cnv_structure(exported: Callable[..., Path]) -> None:
    model = ModelWrapper(str(exported("cnv", 2, 2)))
    convs = model.get_nodes_by_op_type("Conv")
    matmuls = model.get_nodes_by_op_type("MatMul") + model.get_nodes_by_op_type("Gemm")
    assert len(convs) == 6 and len(matmuls) == 3
    conv_shapes = [tuple(_weight_of(model, n).shape) for n in convs]
    assert conv_shapes == [
        (64, 3, 3, 3),
        (64, 64, 3, 3),
        (128, 64, 3, 3),
        (128, 128, 3, 3),
        (256, 128, 3, 3),
        (256, 256, 3, 3),
    ]
    for node in convs:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["pads"] == [0, 0, 0, 0] and attrs["group"] == 1
    fc_shapes = [tuple(sorted(_weight_of(model, n).shape)) for n in matmuls]
    assert fc_shapes == [(256, 512), (512, 512), (10, 512)]
    assert len(model.get_nodes_by_op_type("MaxPool")) == 2
    assert len(model.get_nodes_by_op_type("BatchNormalization")) == 8


def test_dscnn_structure(exported: Callable[..., Path]) -> None:
    model = ModelWrapper(str(exported("dscnn", 2, 2)))
    convs = model.get_nodes_by_op_type("Conv")
    depthwise, pointwise, padded = [], [], []
    for node in convs:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        weight = _weight_of(model, node)
        in_channels = model.get_tensor_shape(node.input[0])[1]
        if attrs["group"] > 1:
            assert attrs["group"] == in_channels == weight.shape[0] and weight.shape[1] == 1
            depthwise.append(node)
        elif attrs["kernel_shape"] == [1, 1]:
            pointwise.append(node)
        if any(attrs["pads"]):
            padded.append(node)
    assert len(depthwise) == 4 and len(pointwise) == 4 and len(padded) == 1
    # every depthwise convolution feeds (through BN and an activation) a pointwise one
    order = [n.name for n in convs]
    assert all(order[order.index(d.name) + 1] in {p.name for p in pointwise} for d in depthwise)
    assert len(model.get_nodes_by_op_type("MaxPool")) == 3
    assert [tuple(sorted(_weight_of(model, n).shape)) for n in model.get_nodes_by_op_type("MatMul")] == [
        (10, 128)
    ]


# --------------------------------------------------------------------------------------------
# pre/post-processing, self-containedness, determinism


def test_prepost_tfc(exported: Callable[..., Path]) -> None:
    path = exported("tfc", 2, 2, prepost=True)
    onnx.checker.check_model(str(path))
    model = ModelWrapper(str(path))
    assert [i.name for i in model.graph.input] == [PREPOST_INPUT]
    assert [o.name for o in model.graph.output] == [PREPOST_OUTPUT]
    assert model.get_tensor_datatype(PREPOST_INPUT) == DataType["UINT8"]
    assert model.get_tensor_datatype(PREPOST_OUTPUT) == DataType["UINT32"]
    assert model.get_tensor_shape(PREPOST_OUTPUT) == [1, 1]
    first = model.find_consumer(PREPOST_INPUT)
    assert first.op_type == "Div"
    divisor = model.get_initializer(first.input[1])
    assert divisor.dtype == np.float32 and float(divisor) == 255.0
    assert model.graph.node[-1].op_type == "TopK"

    net = build_model("tfc", 2, 2)
    rng = np.random.default_rng(3)
    for _ in range(3):
        pixels = rng.integers(0, 256, size=ZOO["tfc"].input_shape).astype(np.float32)
        index = execute_onnx(model, {PREPOST_INPUT: pixels})[PREPOST_OUTPUT]
        with torch.no_grad():
            expected = net(torch.from_numpy(pixels / 255.0)).argmax(dim=1)
        assert int(index.reshape(-1)[0]) == int(expected[0])


def test_export_is_self_contained(tmp_path: Path) -> None:
    out = export_model("mlp", 2, 2, tmp_path / "sub" / "mlp.onnx")
    assert out == tmp_path / "sub" / "mlp.onnx"
    assert sorted(p.name for p in out.parent.iterdir()) == ["mlp.onnx"]
    proto = onnx.load(str(out), load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert {(o.domain, o.version) for o in proto.opset_import} >= {("", 13)}


def test_export_is_deterministic(exported: Callable[..., Path], tmp_path: Path) -> None:
    first = exported("tfc", 2, 2, prepost=True)
    again = export_model("tfc", 2, 2, tmp_path / "again.onnx")
    assert first.read_bytes() == again.read_bytes()
    first_ds = exported("dscnn", 2, 2)
    again_ds = export_model("dscnn", 2, 2, tmp_path / "again_ds.onnx", prepost=False)
    assert first_ds.read_bytes() == again_ds.read_bytes()
    other = export_model("tfc", 2, 2, tmp_path / "other.onnx", seed=1)
    ref, alt = _initializers(ModelWrapper(str(first))), _initializers(ModelWrapper(str(other)))
    assert ref.keys() == alt.keys()
    assert any(not np.array_equal(ref[k], alt[k]) for k in ref)


# --------------------------------------------------------------------------------------------
# FINN reference networks (brevitas bnn_pynq, seed 0, exported by the FINN golden-data tools)


@pytest.mark.parametrize(("name", "w", "a", "directory"), REFERENCE_CASES)
def test_matches_finn_reference_after_cleanup(
    exported: Callable[..., Path], name: str, w: int, a: int, directory: str
) -> None:
    """Our default export (prepost + cleanup) equals the reference put through the same cleanup."""
    reference = cleanup_model(ModelWrapper(_load_reference(directory)))
    ours = ModelWrapper(str(exported(name, w, a, prepost=True)))
    print(f"\n{directory} reference: {_op_types(reference)}\n{directory} ours:      {_op_types(ours)}")
    assert _op_types(ours) == _op_types(reference)
    ref_inits, our_inits = _initializers(reference), _initializers(ours)
    assert {k: v.shape for k, v in our_inits.items()} == {k: v.shape for k, v in ref_inits.items()}
    # seed 0 reproduces the reference weights exactly (names are structural after cleanup)
    for key, value in ref_inits.items():
        np.testing.assert_array_equal(our_inits[key], value, err_msg=key)


@pytest.mark.parametrize(("name", "w", "a", "directory"), [c for c in REFERENCE_CASES if c[0] == "tfc"])
def test_raw_export_equals_finn_reference(
    exported: Callable[..., Path], name: str, w: int, a: int, directory: str
) -> None:
    """Without cleanup the export is the reference graph itself: nodes, tensors, annotations."""
    reference = _load_reference(directory)
    ours = onnx.load(str(exported(name, w, a, prepost=True, cleanup=False)))
    assert _op_types(ours) == _op_types(reference)
    for field in ("node", "input", "output", "quantization_annotation"):
        assert getattr(ours.graph, field) == getattr(reference.graph, field), field
    ref_inits, our_inits = _initializers(reference), _initializers(ours)
    assert our_inits.keys() == ref_inits.keys()
    for key, value in ref_inits.items():
        np.testing.assert_array_equal(our_inits[key], value, err_msg=key)


# --------------------------------------------------------------------------------------------
# export_module


USER_MODULE = """
import torch
from brevitas.nn import QuantIdentity, QuantLinear
from bsopt.models._nets import ActQuant, WeightQuant


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.inp = QuantIdentity(act_quant=ActQuant, bit_width=4)
        self.fc = QuantLinear(16, 4, bias=False, weight_quant=WeightQuant, weight_bit_width=4)

    def forward(self, x):
        return self.fc(self.inp(x.reshape(x.shape[0], -1)))


def make():
    return Tiny()


instance = Tiny()
not_a_module = 42


def broken():
    raise RuntimeError("no weights here")


def mismatched():
    return torch.nn.Linear(3, 2)
"""


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = "bsopt_test_user_nets"
    (tmp_path / f"{name}.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


@pytest.mark.parametrize("attr", ["make", "Tiny", "instance"])
def test_export_module(user_module: str, tmp_path: Path, attr: str) -> None:
    out = export_module(f"{user_module}:{attr}", (1, 1, 4, 4), tmp_path / "user.onnx")
    onnx.checker.check_model(str(out))
    model = ModelWrapper(str(out))
    assert {n.op_type for n in model.graph.node} >= {"Quant", "MatMul"}
    x = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    module = sys.modules[user_module].make().eval()
    with torch.no_grad():
        expected = module(x).numpy()
    out_value = execute_onnx(model, {"global_in": x.numpy()})[model.graph.output[0].name]
    np.testing.assert_allclose(out_value, expected, rtol=1e-5, atol=1e-5)


def test_export_module_prepost(user_module: str, tmp_path: Path) -> None:
    out = export_module(f"{user_module}:make", (1, 1, 4, 4), tmp_path / "user_pp.onnx", prepost=True)
    model = ModelWrapper(str(out))
    assert model.graph.input[0].name == PREPOST_INPUT
    assert model.get_tensor_datatype(PREPOST_INPUT) == DataType["UINT8"]
    assert model.graph.node[-1].op_type == "TopK"


@pytest.mark.parametrize(
    ("spec", "error", "fragment"),
    [
        ("no_colon_here", InputError, "malformed"),
        (":make", InputError, "malformed"),
        ("bsopt_no_such_module_xyz:make", InputError, "cannot import"),
        ("{mod}:missing", InputError, "no attribute 'missing'"),
        ("{mod}:not_a_module", ModelError, "neither an nn.Module"),
        ("{mod}:broken", ModelError, "no weights here"),
    ],
)
def test_export_module_errors(
    user_module: str, tmp_path: Path, spec: str, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as info:
        export_module(spec.format(mod=user_module), (1, 1, 4, 4), tmp_path / "x.onnx")
    assert fragment in str(info.value)
    if error is InputError:
        assert info.value.hint  # type: ignore[attr-defined]


def test_export_module_failure_is_model_error(user_module: str, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        export_module(f"{user_module}:mismatched", (1, 5), tmp_path / "x.onnx")
    assert "export" in str(info.value)
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(InputError, match="invalid input shape"):
        export_module(f"{user_module}:make", (1, 0, 4), tmp_path / "x.onnx")


def test_allowed_bits_constant() -> None:
    assert ALLOWED_BITS == (1, 2, 4, 8)
