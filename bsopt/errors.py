"""Errors bsopt raises for problems a user can act on.

Every error carries *what* went wrong, *where* (a file, a node, a line) and *what to do*.
The CLI prints ``str(error)`` and exits with ``error.exit_code``; no traceback unless ``--debug``.
"""

from __future__ import annotations


class BsoptError(Exception):
    """Base class of all errors bsopt reports to users."""

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class InputError(BsoptError):
    """Bad input from the user: a missing file, a malformed model, a wrong option value."""

    exit_code = 2


class ModelError(InputError):
    """The model cannot be read, understood or lowered to dataflow layers."""


class UnsupportedOpError(ModelError):
    """The model holds an operator bsopt cannot map to a FINN dataflow layer."""


class MissingDependencyError(BsoptError):
    """An optional dependency (an extra) is needed for this feature but is not installed."""

    exit_code = 3


def require(module: str, extra: str, feature: str):
    """Import an optional dependency or raise a MissingDependencyError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{feature} needs the Python package '{module}', which is not installed ({exc})",
            hint=f"install it with: pip install 'bsopt[{extra}]'",
        ) from exc
