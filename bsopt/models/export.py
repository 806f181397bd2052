"""Export Brevitas models (zoo models or user modules) to self-contained QONNX files.

The export runs brevitas' QONNX exporter through torch's TorchScript-based ONNX exporter
(``dynamo=False``: with torch >= 2.9 the dynamo exporter writes external ``.data`` files and fails
in the opset adapter), then tidies the graph with qonnx' ``cleanup_model``.

With ``prepost=True`` FINN's pre- and post-processing is built into the model, as FINN's
end-to-end flow does in its ``pre_post`` step:

* a new graph input ``global_in_uint8`` (FLOAT container, qonnx datatype ``UINT8``),
* a ``Div`` by a float32 ``255.0`` that produces the original input tensor,
* qonnx ``InsertTopK(k=1)`` at the end; the graph output ``global_out_topk_indices`` holds the
  index of the largest logit (qonnx datatype ``UINT32``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bsopt.errors import InputError, ModelError, require
from bsopt.models.zoo import build_model, check_bits, get_entry, require_brevitas

if TYPE_CHECKING:  # pragma: no cover
    from qonnx.core.modelwrapper import ModelWrapper
    from torch import nn

    from bsopt.models._cleanup import InPlaceModel

__all__ = [
    "PREPOST_INPUT",
    "PREPOST_OUTPUT",
    "add_prepost",
    "export_model",
    "export_module",
    "load_module",
]

#: Name of the UINT8 graph input that ``prepost=True`` adds.
PREPOST_INPUT = "global_in_uint8"
#: Name of the TopK-index graph output that ``prepost=True`` adds.
PREPOST_OUTPUT = "global_out_topk_indices"

_OPSET = 13


def export_model(
    name: str,
    weight_bits: int,
    act_bits: int,
    out_path: str | os.PathLike[str],
    seed: int = 0,
    prepost: bool | None = None,
    *,
    snap_weights: bool = True,
    cleanup: bool = True,
    **options: int,
) -> Path:
    """Build zoo model ``name`` and export it as QONNX to ``out_path``.

    Args:
        name: a key of :data:`bsopt.models.ZOO`.
        weight_bits, act_bits: bit widths, each in ``(1, 2, 4, 8)``; 1 means bipolar.
        out_path: the ``.onnx`` file to write (parent directories are created).
        seed: seed of the (untrained) weights; see :func:`bsopt.models.build_model`.
        prepost: build FINN's UINT8 ``Div``-by-255 input and TopK(1) output into the model
            (default: for classifiers; encoders such as ``bert`` have no pre/post-processing).
        snap_weights: store the float weights already on their quantisation grid.  The network
            computes exactly the same function; the file only holds grid values (it compresses
            well and, for ``seed=0``, matches FINN's golden exports).
        cleanup: run qonnx ``cleanup_model`` (plus shape and datatype inference).  ``False``
            keeps the graph as brevitas exported it (initializers also listed as graph inputs).
        options: architecture options of the entry (``bert``: layers, hidden, heads, seq, ff).

    Returns:
        ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: unknown model name or unsupported bit widths.
        ModelError: the export itself failed.
        MissingDependencyError: torch or brevitas is not installed.
    """
    entry = _checked_entry(name, weight_bits, act_bits, options)
    if prepost is None:
        prepost = entry.prepost
    elif prepost and not entry.prepost:
        raise InputError(f"zoo model {name!r} is an {entry.kind}: FINN's image pre/post-processing does not apply",
                         hint="export it without prepost")

    def build() -> nn.Module:
        model = build_model(name, weight_bits, act_bits, seed=seed, **options)
        if snap_weights:
            from bsopt.models._nets import snap_weights_to_grid

            snap_weights_to_grid(model)
        return model

    return _export(
        build,
        entry.shape_for(options),
        Path(out_path),
        prepost=prepost,
        cleanup=cleanup,
        what=f"zoo model {name!r} (w{weight_bits}a{act_bits})",
        opset=entry.opset,
        example="normal" if entry.kind == "encoder" else "uniform",
        consume=True,
    )


def _checked_entry(name: str, weight_bits: int, act_bits: int, options: dict[str, int]):
    """The zoo entry of an export request whose bits and options are good (checked without torch)."""
    entry = get_entry(name)
    check_bits(weight_bits, act_bits, entry.allowed_bits)
    entry.resolve_options(options)
    return entry


def export_model_apart(
    name: str,
    weight_bits: int,
    act_bits: int,
    out_path: str | os.PathLike[str],
    seed: int = 0,
    *,
    apart: bool | None = None,
    **options: int,
) -> Path:
    """:func:`export_model` (the entry's default pre/post-processing) run in a Python process of its own.

    The export needs torch, Brevitas and, at its peak, the model's weights about three times over
    (BERT-base: ~1.2 GB); in a child process all of it is returned to the system when the child exits,
    and the command that asked for the model goes on without torch.  ``apart=None`` (default) runs it
    apart unless this process has imported torch already (then the child's main cost, importing torch,
    buys nothing and the export runs here); ``True`` / ``False`` force either way.

    Raises what :func:`export_model` raises (the child's error, with its message and hint), or
    :class:`ModelError` when the child fails otherwise (killed, out of memory).
    """
    import json
    import subprocess
    import sys

    if apart is None:
        apart = "torch" not in sys.modules
    if not apart:
        return export_model(name, weight_bits, act_bits, out_path, seed=seed, **options)
    _checked_entry(name, weight_bits, act_bits, options)  # bad input refused here, before a child starts
    request = json.dumps({"name": name, "weight_bits": weight_bits, "act_bits": act_bits,
                          "out_path": os.fspath(out_path), "seed": seed, "options": options})
    # the child imports this bsopt, wherever it was imported from
    here = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", "import sys; from bsopt.models.export import _export_here; "
                           "_export_here(sys.argv[1])", request], capture_output=True, text=True, env=env)
    if proc.returncode == 0:
        return Path(out_path)
    from bsopt import errors

    try:
        err = json.loads(proc.stdout.strip().splitlines()[-1])
        cls = getattr(errors, err["type"])
        if not (isinstance(cls, type) and issubclass(cls, errors.BsoptError)):
            raise TypeError(cls)
    except (IndexError, ValueError, KeyError, AttributeError, TypeError):
        tail = " / ".join(proc.stderr.strip().splitlines()[-3:])
        how = f"was killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exited with {proc.returncode}"
        options_text = "".join(f" --set {k}={v}" for k, v in options.items()) + (f" --seed {seed}" if seed else "")
        command = f"bsopt --debug model export {name} -w {weight_bits} -a {act_bits}{options_text} -o model.onnx"
        hint = (f"signal 9 is usually the system out of memory: close other work, or export it alone with `{command}`"
                if proc.returncode == -9 else f"for the whole traceback run `{command}`")
        raise ModelError(f"the export of zoo model {name!r} (w{weight_bits}a{act_bits}) {how}"
                         + (f": {tail}" if tail else ""), hint=hint) from None
    raise cls(err["message"], where=err["where"], hint=err["hint"])


def _export_here(request: str) -> None:
    """The child of :func:`export_model_apart`: export, or print the error as JSON and exit with its code."""
    import json
    import sys

    from bsopt.errors import BsoptError

    args = json.loads(request)
    try:
        export_model(args["name"], args["weight_bits"], args["act_bits"], args["out_path"], seed=args["seed"],
                     **args["options"])
    except BsoptError as exc:
        print(json.dumps({"type": type(exc).__name__, "message": exc.message, "where": exc.where,
                          "hint": exc.hint}))
        sys.exit(exc.exit_code)
    except (Exception, MemoryError) as exc:  # e.g. torch cannot allocate the weights of a huge model
        print(json.dumps({"type": "ModelError", "message": f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}",
                          "where": None, "hint": "a smaller model (fewer layers, smaller hidden/ff) needs less "
                          "memory" if "alloc" in str(exc) else None}))
        sys.exit(1)


def export_module(
    spec: str,
    input_shape: Sequence[int],
    out_path: str | os.PathLike[str],
    prepost: bool = False,
    *,
    cleanup: bool = True,
    opset: int = _OPSET,
) -> Path:
    """Import a Brevitas module from ``spec`` (``"pkg.mod:factory"``) and export it as QONNX.

    ``factory`` may be a callable taking no arguments and returning an ``nn.Module`` (a class or
    a function), or an ``nn.Module`` instance.  The module is put in eval mode and exported like
    :func:`export_model` does (without weight snapping: user weights are left as they are).

    Args:
        spec: ``"package.module:attribute"``; dotted attribute paths are allowed after the colon.
        input_shape: the shape of the example input, batch dimension included, e.g. ``(1, 3, 32, 32)``.
        out_path: the ``.onnx`` file to write.
        prepost: add FINN's UINT8 input and TopK(1) output (for image classifiers fed [0, 1] inputs).
        cleanup: as for :func:`export_model`.
        opset: ONNX opset of the export (13 by default, as FINN's flows; 17 or later keeps
            ``LayerNormalization`` whole, which transformers need).

    Raises:
        InputError: malformed ``spec``, missing module or attribute, bad ``input_shape``.
        ModelError: the factory failed, returned something else than an ``nn.Module``, or the
            export failed.
    """
    shape = _check_shape(input_shape)
    # not consumed: the spec may name a module instance its package goes on using
    return _export(lambda: load_module(spec), shape, Path(out_path), prepost=prepost, cleanup=cleanup, what=spec,
                   opset=opset, consume=False)


def export_trained(module: nn.Module, input_shape: Sequence[int], out_path: str | os.PathLike[str], *,
                   prepost: bool = True) -> Path:
    """Export a trained Brevitas module (e.g. from :func:`bsopt.models.train.train`) as QONNX, its
    weights as trained (no snapping), with FINN's pre/post-processing for a classifier."""
    return _export(lambda: module, _check_shape(input_shape), Path(out_path), prepost=prepost, cleanup=True,
                   what="the trained module", consume=False)


def resolve_reference(spec: str) -> Any:
    """The object ``"package.module:attribute"`` names (imported; dotted attributes followed)."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise InputError(
            f"malformed module spec {spec!r}",
            hint="write it as 'package.module:factory', e.g. 'mypkg.nets:build_model'",
        )
    import sys

    if "" not in sys.path and os.getcwd() not in sys.path:  # as `python -m` does: the working directory's
        sys.path.insert(0, os.getcwd())                    # modules import under the `bsopt` command too
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise InputError(
            f"cannot import module {module_name!r} ({exc})",
            where=spec,
            hint="check the spelling and that the module is on PYTHONPATH (or installed)",
        ) from exc
    except Exception as exc:
        raise ModelError(
            f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}", where=spec
        ) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            public = sorted(n for n in dir(obj) if not n.startswith("_"))
            raise InputError(
                f"{type(obj).__name__} {getattr(obj, '__name__', module_name)!r} has no attribute {part!r}",
                where=spec,
                hint="available names: " + (", ".join(public[:30]) or "(none)"),
            ) from None
    return obj


def load_module(spec: str) -> nn.Module:
    """Resolve ``"pkg.mod:factory"`` to an ``nn.Module`` in eval mode (see :func:`export_module`)."""
    torch = require("torch", "models", "model export")
    obj = resolve_reference(spec)
    attr_path = spec.partition(":")[2]
    if not isinstance(obj, torch.nn.Module):
        if not callable(obj):
            raise ModelError(
                f"{attr_path!r} is a {type(obj).__name__}, neither an nn.Module nor a factory",
                where=spec,
                hint="point the spec at a module instance or a zero-argument callable returning one",
            )
        try:
            obj = obj()
        except Exception as exc:
            raise ModelError(
                f"calling factory {attr_path!r} failed: {type(exc).__name__}: {exc}",
                where=spec,
                hint="the factory is called without arguments; wrap it in a function with defaults",
            ) from exc
        if not isinstance(obj, torch.nn.Module):
            raise ModelError(
                f"factory {attr_path!r} returned a {type(obj).__name__}, not a torch nn.Module",
                where=spec,
            )
    return obj.eval()


def add_prepost(model: ModelWrapper) -> ModelWrapper:
    """Build FINN's pre/post-processing into ``model`` (in place) and return it.

    The first graph input is replaced by :data:`PREPOST_INPUT` (UINT8 annotation) feeding a
    ``Div`` by 255.0 whose output is the old input tensor; ``InsertTopK(k=1)`` adds a ``TopK``
    whose index output becomes :data:`PREPOST_OUTPUT`.
    """
    from onnx import TensorProto, helper
    from qonnx.core.datatype import DataType
    from qonnx.transformation.insert_topk import InsertTopK

    graph = model.graph
    old_input = graph.input[0]
    shape = model.get_tensor_shape(old_input.name)
    new_input = helper.make_tensor_value_info(PREPOST_INPUT, TensorProto.FLOAT, shape)
    graph.input.remove(old_input)
    graph.input.insert(0, new_input)
    graph.value_info.append(old_input)
    divisor = "/preproc/div_by"
    graph.initializer.append(helper.make_tensor(divisor, TensorProto.FLOAT, [], [255.0]))
    graph.node.insert(
        0, helper.make_node("Div", [PREPOST_INPUT, divisor], [old_input.name], name="/preproc/Div")
    )
    model.set_tensor_datatype(PREPOST_INPUT, DataType["UINT8"])

    # cleanup=False: leave the rest of the graph (node order, static inputs) exactly as it was
    model = model.transform(InsertTopK(k=1), cleanup=False)
    topk = model.find_producer(model.graph.output[0].name)
    if topk is None or topk.op_type != "TopK" or len(topk.input) < 2:
        raise ModelError("could not add the TopK post-processing: the graph output is not a TopK")
    topk.name = "/postproc/TopK"
    for old, new in zip(
        [topk.input[1], topk.output[0], topk.output[1]],
        ["/postproc/TopK_k", "/postproc/TopK_values", PREPOST_OUTPUT],
        strict=True,
    ):
        model.rename_tensor(old, new)
    return model


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise InputError(
            f"invalid input shape {input_shape!r}",
            hint="give positive dimensions, batch first, e.g. (1, 3, 32, 32)",
        )
    return shape


def _export(
    build: Callable[[], nn.Module],
    input_shape: Sequence[int],
    out_path: Path,
    *,
    prepost: bool,
    cleanup: bool,
    what: str,
    opset: int = _OPSET,
    example: str = "uniform",
    consume: bool,
) -> Path:
    """Export the module ``build()`` returns to QONNX at ``out_path``: brevitas export, cleanup,
    optional pre/post.  ``consume``: the module is this export's own (its parameters are emptied as
    they are copied into the ONNX model); ``False`` for a module the caller keeps using."""
    _check_writable(out_path)
    torch = require("torch", "models", "model export")
    require_brevitas("model export")
    from bsopt.models._malloc import large_blocks_returned

    generator = torch.Generator().manual_seed(0)
    draw = torch.randn if example == "normal" else torch.rand
    example_input = draw(tuple(input_shape), generator=generator)
    with large_blocks_returned():
        model = _traced(build, example_input, opset, consume=consume, cleanup=cleanup, what=what)
        try:
            model = _finish(model, prepost=prepost, cleanup=cleanup)
        except Exception as exc:
            raise ModelError(
                f"post-processing the QONNX export of {what} failed: {type(exc).__name__}: {exc}"
            ) from exc
        _save(model, out_path)
    return out_path


def _traced(build: Callable[[], nn.Module], example: Any, opset: int, *, consume: bool, cleanup: bool,
            what: str) -> InPlaceModel:
    """The brevitas export of ``build()`` as a model qonnx transforms in place; the module is gone
    (garbage-collected: brevitas' proxies hold cycles) when this returns."""
    import gc

    from bsopt.models._cleanup import InPlaceModel
    from bsopt.models._trace import trace_qonnx

    module = build().eval()
    try:
        traced = trace_qonnx(module, example, opset, consume=consume)
    except Exception as exc:
        raise ModelError(
            f"QONNX export of {what} failed: {type(exc).__name__}: {exc}",
            hint=f"check that the module runs on an input of shape {tuple(example.shape)} "
            "and uses Brevitas quantised layers that support QONNX export",
        ) from exc
    del module
    gc.collect()
    # Without cleanup, keep the graph as exported (no value_info added for initializers).
    return InPlaceModel(traced, fix_missing_initializer_valueinfo=cleanup)


def _finish(model: ModelWrapper, *, prepost: bool, cleanup: bool) -> ModelWrapper:
    """Cleanup, optional pre/post-processing, shape and datatype inference."""
    from qonnx.core.datatype import DataType
    from qonnx.transformation.infer_datatypes import InferDataTypes
    from qonnx.transformation.infer_shapes import InferShapes

    from bsopt.models._cleanup import cleanup_model

    if cleanup:
        model = cleanup_model(model)
    if prepost:
        model = add_prepost(model)
        if cleanup:
            model = cleanup_model(model)
            # cleanup renames the graph ends to global_in / global_out; restore the FINN names
            model.rename_tensor(model.graph.input[0].name, PREPOST_INPUT)
            model.rename_tensor(model.graph.output[0].name, PREPOST_OUTPUT)
        model.set_tensor_datatype(PREPOST_INPUT, DataType["UINT8"])
    if cleanup:
        model = model.transform(InferShapes())
        model = model.transform(InferDataTypes())
        if prepost:
            # InferDataTypes leaves graph inputs alone, but make the contract explicit
            model.set_tensor_datatype(PREPOST_INPUT, DataType["UINT8"])
    return model


def _check_writable(out_path: Path) -> None:
    """Refuse an output the export could not write, before the export (minutes for a large model)."""
    tmp_path = out_path.with_name(f".{out_path.name}.tmp")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path.touch()
    except OSError as exc:
        raise InputError(f"cannot write the model there: {exc.strerror or exc}", where=str(out_path),
                         hint="choose a writable directory") from exc
    finally:
        tmp_path.unlink(missing_ok=True)


def _save(model: ModelWrapper, out_path: Path) -> None:
    """Write a single self-contained file (no external data), atomically, one initializer at a time
    (the bytes ``onnx.save_model`` writes)."""
    from bsopt.models._protowrite import write_model

    tmp_path = out_path.with_name(f".{out_path.name}.tmp")
    try:
        with open(tmp_path, "wb") as out:
            write_model(model.model, out)
        os.replace(tmp_path, out_path)
    except OSError as exc:
        raise InputError(f"cannot write {out_path}: {exc}", hint="check the directory is writable") from exc
    finally:
        tmp_path.unlink(missing_ok=True)
