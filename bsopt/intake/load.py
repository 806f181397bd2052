"""Read a QONNX model from disk, with errors a user can act on."""

from __future__ import annotations

import gzip
from pathlib import Path

import onnx

from bsopt.errors import ModelError

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")
QUANT_OPS = ("Quant", "BipolarQuant", "Trunc", "IntQuant", "FloatQuant")


def read_onnx(path: str | Path) -> onnx.ModelProto:
    """Load an ONNX file (``.onnx`` or gzip-compressed ``.onnx.gz``) and check it is well formed."""
    p = Path(path)
    try:
        p.stat()
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte: no file can have it
        raise ModelError(f"not a usable model path ({getattr(exc, 'strerror', None) or exc})", where=str(p)[:200],
                         hint="check the path") from None
    if not p.exists():
        raise ModelError(
            "model file not found",
            where=str(p),
            hint="check the path; export a zoo model with: bsopt model export tfc --out tfc.onnx",
        )
    if p.is_dir():
        raise ModelError("expected an ONNX file but this is a directory", where=str(p))
    data = p.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except OSError as exc:
            raise ModelError(f"corrupt gzip file ({exc})", where=str(p)) from exc
    if not data:
        raise ModelError("the file is empty", where=str(p), hint="re-export the model")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ModelError(
            f"not an ONNX model: the file could not be parsed as ONNX protobuf ({type(exc).__name__})",
            where=str(p),
            hint="pass a QONNX .onnx file exported with brevitas' export_qonnx (or bsopt model export)",
        ) from exc
    if len(model.graph.node) == 0:
        raise ModelError(
            "not an ONNX model: the file parsed but holds no graph nodes",
            where=str(p),
            hint="pass a QONNX .onnx file exported with brevitas' export_qonnx (or bsopt model export)",
        )
    try:
        onnx.checker.check_model(data if len(data) < 2**31 else model)  # the bytes: no second serialisation
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise ModelError(f"invalid ONNX model: {first}", where=str(p)) from exc
    except (UnicodeDecodeError, ValueError) as exc:  # damaged strings inside an otherwise parseable file
        raise ModelError(f"invalid ONNX model: {type(exc).__name__}: {exc}"[:300], where=str(p),
                         hint="the file is damaged: re-export the model") from exc
    return model


def is_quantized(model: onnx.ModelProto) -> bool:
    """True if the model holds quantization: QONNX quantizer nodes or integer datatype annotations."""
    if any(n.op_type in QUANT_OPS or n.op_type == "MultiThreshold" for n in model.graph.node):
        return True
    for ann in model.graph.quantization_annotation:
        for kv in ann.quant_parameter_tensor_names:
            if kv.key == "finn_datatype" and ("INT" in kv.value or kv.value in ("BIPOLAR", "BINARY")):
                return True
    return False


def _quantized_proto(path: str | Path) -> onnx.ModelProto:
    proto = read_onnx(path)
    if not is_quantized(proto):
        raise ModelError(
            "the model is not quantized: it has no QONNX Quant/BipolarQuant nodes and no integer "
            "datatype annotations, so FINN cannot map it to integer dataflow hardware",
            where=str(path),
            hint="quantize it with Brevitas and export with brevitas.export.export_qonnx "
            "(or use: bsopt model export --module pkg.mod:factory --input-shape ...)",
        )
    return proto


def load_graph(path: str | Path):
    """Read a QONNX model for lowering: an :class:`~bsopt.intake.graph.OnnxGraph` (constants folded,
    shapes inferred, nodes in qonnx's order), prepared in time linear in the graph's size.

    Raises :class:`ModelError` as :func:`load_model` does.
    """
    return prepare(_quantized_proto(path), where=str(path))


def prepare(proto: onnx.ModelProto, where: str = "model"):
    """An :class:`~bsopt.intake.graph.OnnxGraph` of a parsed model, with preparation failures as
    :class:`ModelError`."""
    from bsopt.intake.graph import OnnxGraph

    try:
        return OnnxGraph(proto, where=where)
    except Exception as exc:
        raise ModelError(
            f"could not prepare the model ({type(exc).__name__}: {exc})"[:400],
            where=where,
            hint="check that the model opens in Netron and was exported with opset >= 11",
        ) from exc


def load_model(path: str | Path, *, cleanup: bool = True):
    """Load a QONNX model into a qonnx ``ModelWrapper``, cleaned up and with shapes inferred.

    Raises :class:`ModelError` when the file is missing, is not ONNX, or holds no quantization
    (FINN, and so bsopt, needs a quantized model: export it with Brevitas' ``export_qonnx``).
    """
    from qonnx.core.modelwrapper import ModelWrapper

    model = ModelWrapper(_quantized_proto(path))
    if cleanup:
        model = clean(model, where=str(path))
    return model


def clean(model, where: str = "model"):
    """qonnx's cleanup (shape inference, constant folding, static inputs removed), keeping the
    exporter's node names so that users recognise their layers; unnamed nodes get unique names."""
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (
        GiveUniqueParameterTensors,
        RemoveStaticGraphInputs,
        RemoveUnusedTensors,
        SortGraph,
    )
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    for node in model.graph.node:
        if node.op_type in ("Quant", "Trunc", "BipolarQuant"):
            node.domain = "qonnx.custom_op.general"
    steps = [
        InferShapes(),
        GiveUniqueParameterTensors(),
        FoldConstants(exclude_op_types=["Quant", "BipolarQuant", "QuantizeLinear", "DequantizeLinear"]),
        FoldTransposeIntoQuantInit(),
        RemoveUnusedTensors(),
        RemoveStaticGraphInputs(),
        SortGraph(),
        InferShapes(),
        InferDataTypes(),
    ]
    try:
        for step in steps:
            model = model.transform(step)
    except Exception as exc:
        raise ModelError(
            f"qonnx could not clean up the model ({type(exc).__name__}: {exc})",
            where=where,
            hint="check that the model opens in Netron and was exported with opset >= 11",
        ) from exc
    seen: dict[str, int] = {}
    for node in model.graph.node:
        if not node.name or node.name in seen:
            base = node.op_type
            seen[base] = seen.get(base, -1) + 1
            node.name = f"{base}_{seen[base]}"
            while node.name in seen:
                seen[base] += 1
                node.name = f"{base}_{seen[base]}"
        seen.setdefault(node.name, 0)
    return model
