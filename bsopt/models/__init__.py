"""Quantised Brevitas models for FINN and their QONNX export.

``ZOO`` and the bit-width checks import without torch; :func:`build_model`,
:func:`export_model` and :func:`export_module` need the ``models`` extra (torch + brevitas) and
import it on first use.
"""

from bsopt.models.export import export_model, export_module
from bsopt.models.zoo import ALLOWED_BITS, ZOO, ZooEntry, build_model

__all__ = ["ALLOWED_BITS", "ZOO", "ZooEntry", "build_model", "export_model", "export_module"]
