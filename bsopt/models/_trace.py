"""Brevitas' QONNX export of a module, with each weight copied once.

Brevitas' exporter, as it stands, holds several copies of a network's weights at its peak (BERT-base:
~2.6 GB for 324 MB of float weights): its weight handlers keep a quantised copy of every weight that
nothing reads, torch serialises every parameter into the protobuf, brevitas parses that protobuf
back and runs ``onnxoptimizer`` over it (which serialises and parses it twice more).

:func:`trace_qonnx` runs the same exporter with the weights left out (``export_params=False``: each
parameter becomes a graph input named by its ``state_dict`` key, the graph is a few hundred kB) and
with handlers that drop the unread copies, then adds every parameter as an initializer, copied once
from the module.  The graph torch traces does not depend on ``export_params``; where torch's
constant folding made a new parameter of its own (a graph input the module's ``state_dict`` does not
name), the export is run again the ordinary way, so the result is always the exporter's own.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import onnx
    from torch import nn


def _manager() -> type:
    """A QONNX export manager whose weight handlers drop brevitas' unread copy of the weights."""
    from brevitas.export.onnx.qonnx.handler import BrevitasWeightQuantProxyHandler
    from brevitas.export.onnx.qonnx.manager import QONNXManager

    def lean(handler: type) -> type:
        if not issubclass(handler, BrevitasWeightQuantProxyHandler):
            return handler

        def prepare_for_export(self: Any, module: Any) -> None:
            handler.prepare_for_export(self, module)
            self.quant_weight_values = None  # brevitas 0.13 fills it with every quantised weight, unread

        return type(handler.__name__, (handler,), {"prepare_for_export": prepare_for_export})

    return type("LeanQONNXManager", (QONNXManager,), {"handlers": [lean(h) for h in QONNXManager.handlers]})


def trace_qonnx(module: nn.Module, example: Any, opset: int, *, consume: bool = False) -> onnx.ModelProto:
    """Export ``module`` (eval mode, traced on ``example``) with brevitas' QONNX exporter (TorchScript)
    and return the ONNX model, its parameters as initializers (also listed as graph inputs, as brevitas
    exports them).  ``consume=True`` empties each of the module's parameters once it is copied (the
    module is spent; the network and the model are never both whole in memory)."""
    import torch

    manager = _manager()
    with warnings.catch_warnings():
        # torch's tracer and brevitas warn about constants and deprecated paths for every model
        warnings.simplefilter("ignore")
        with torch.no_grad():
            model = manager.export(module, args=example, export_path=None, opset_version=opset,
                                   dynamo=False, export_params=False)
            if _attach_parameters(model, module, consume):
                return model
            del model  # torch folded parameters into new constants: export them with the graph
            return manager.export(module, args=example, export_path=None, opset_version=opset, dynamo=False)


def _attach_parameters(model: onnx.ModelProto, module: nn.Module, consume: bool) -> bool:
    """Add each parameter graph input of ``model`` as an initializer from ``module``'s state.  False
    (``model`` and ``module`` left as they were) when a graph input after the first (the traced input)
    is no state of the module, or has a dtype numpy cannot hold."""
    import torch
    from onnx import numpy_helper

    state = module.state_dict(keep_vars=True)
    params = [vi.name for vi in model.graph.input[1:]]
    numpy_dtypes = (torch.float32, torch.float64, torch.float16, torch.int64, torch.int32, torch.int8,
                    torch.uint8, torch.bool)
    if any(name not in state or state[name].dtype not in numpy_dtypes for name in params):
        return False
    # The parameters come first, in graph input order, as torch writes them when it exports them.
    constants = list(model.graph.initializer)
    model.graph.ClearField("initializer")
    for name in params:
        tensor = state.pop(name)
        model.graph.initializer.add().CopyFrom(numpy_helper.from_array(tensor.detach().cpu().numpy(), name))
        if consume:
            tensor.data = torch.empty(0, dtype=tensor.dtype)
    model.graph.initializer.extend(constants)
    return True
