"""bsopt: multi-objective design-space exploration of FINN dataflow accelerators."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bsopt")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

from bsopt.errors import BsoptError, InputError, ModelError, UnsupportedOpError  # noqa: E402

__all__ = ["__version__", "BsoptError", "InputError", "ModelError", "UnsupportedOpError"]
