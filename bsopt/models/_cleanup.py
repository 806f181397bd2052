"""qonnx's ``cleanup_model`` and shape inference, without copies of the whole model.

qonnx's ``cleanup_model`` applies its transformations to a deep copy of the model each, and its
``InferShapes`` hands the whole model, weights included, to ONNX's shape inference (which serialises
and parses it: two more copies).  For a BERT-base export (324 MB of weights) that is ~1 GB above the
model itself.  Here the same transformations run in the same order on the model in place, and shapes
are inferred on a *skeleton*: the graph without its weights (each large initializer stands in as a
typed graph input; shape inference reads the values of small constants such as a ``Reshape`` target,
never of weights), whose inferred ``value_info`` is then copied back.  The result is the model
``cleanup_model`` returns (tests/test_export_memory.py compares them byte for byte).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.base import Transformation
from qonnx.transformation.infer_shapes import InferShapes

if TYPE_CHECKING:  # pragma: no cover
    import onnx

#: initializers with more elements than this are left out of the skeleton (types and shapes only)
SKELETON_MAX_ELEMENTS = 4096


class InferShapesOnSkeleton(Transformation):
    """qonnx's ``InferShapes``, run on the model without its large initializers."""

    def apply(self, model: ModelWrapper) -> tuple[ModelWrapper, bool]:
        inferred = ModelWrapper(_skeleton(model.model), fix_missing_initializer_valueinfo=False)
        inferred, _ = InferShapes().apply(inferred)
        graph = model.graph
        graph.ClearField("value_info")
        graph.value_info.extend(inferred.graph.value_info)
        graph.ClearField("output")
        graph.output.extend(inferred.graph.output)
        return model, False


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every initializer of more than :data:`SKELETON_MAX_ELEMENTS` elements replaced by
    a graph input of its type and shape (``model`` itself is left as it is)."""
    from onnx import helper

    graph = model.graph
    typed = {vi.name for vi in graph.input} | {vi.name for vi in graph.value_info}
    small, stand_ins = [], []
    for tensor in graph.initializer:
        elements = 1
        for dim in tensor.dims:
            elements *= dim
        if elements <= SKELETON_MAX_ELEMENTS:
            small.append(tensor)
        elif tensor.name not in typed:
            stand_ins.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    skeleton = helper.make_graph(graph.node, graph.name, list(graph.input) + stand_ins, graph.output,
                                 initializer=small, value_info=graph.value_info)
    return helper.make_model(skeleton, opset_imports=model.opset_import, ir_version=model.ir_version)


class InPlaceModel(ModelWrapper):
    """A qonnx ``ModelWrapper`` whose transformations change it in place (no deep copy unless asked
    for) and infer shapes on its skeleton (:class:`InferShapesOnSkeleton` wherever a transformation,
    or one it runs, asks for qonnx's ``InferShapes``)."""

    def transform(self, transformation: Transformation, make_deepcopy: bool = False, *args, **kwargs):
        if type(transformation) is InferShapes:
            transformation = InferShapesOnSkeleton()
        return super().transform(transformation, make_deepcopy, *args, **kwargs)


def cleanup_model(model: ModelWrapper) -> InPlaceModel:
    """qonnx's ``cleanup_model(model)`` (its transformations, in its order), run in place on ``model``'s
    protobuf with shapes inferred on skeletons."""
    from qonnx.util.cleanup import cleanup_model as qonnx_cleanup

    if not isinstance(model, InPlaceModel):
        model = InPlaceModel(model.model, fix_missing_initializer_valueinfo=False)
    return qonnx_cleanup(model)
