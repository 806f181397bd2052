"""bsopt: multi-objective design-space exploration of FINN dataflow accelerators."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bsopt")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

from bsopt.errors import BsoptError, InputError, ModelError, UnsupportedOpError  # noqa: E402

_LAZY = {
    "lower": "bsopt.lowering",
    "LoweringOptions": "bsopt.lowering",
    "DataflowGraph": "bsopt.ir.layers",
    "Layer": "bsopt.ir.layers",
    "ModelInfo": "bsopt.lowering.info",
    "inspect_model": "bsopt.lowering.info",
    "load_model": "bsopt.intake.load",
    "export_model": "bsopt.models",
    "export_module": "bsopt.models",
    "estimate_node": "bsopt.estimate",
    "estimate_network": "bsopt.estimate.network",
    "load_design_space": "bsopt.space.design_space",
    "create_study": "bsopt.study.api",
    "load_study": "bsopt.study.api",
    "list_studies": "bsopt.study.api",
    "delete_study": "bsopt.study.api",
    "Study": "bsopt.study.api",
    "StudyFailed": "bsopt.study.api",
    "RunOptions": "bsopt.study.api",
}


def __getattr__(name: str):
    """The public API, imported on first use so that ``import bsopt`` stays fast."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bsopt' has no attribute {name!r}")


__all__ = ["__version__", "BsoptError", "InputError", "ModelError", "UnsupportedOpError", *_LAZY]
