"""BuildConfig: one point of a design space, everything a backend needs to build it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


@dataclass
class BuildConfig:
    """The seed's BuildConfig, plus the target and per-layer folding in FINN's folding-config shape.

    ``config_id`` is ``dse_<space hash>_config_<number>``: unique within a space (the number is the
    configuration's index). :meth:`content_hash` identifies what would be built, for caching
    across spaces and studies.
    """

    config_id: str
    model_path: str | None
    kernel_selections: dict[str, str | None]
    transform_sequence: list[str]
    build_steps: list[str]
    backend: str
    config_flags: dict[str, Any]
    global_config: dict[str, Any]
    target: dict[str, Any] = field(default_factory=dict)
    folding_config: dict[str, Any] | None = None
    #: FINN's specialize-layers config (preferred_impl_style per generic layer name) when backends vary
    specialize_config: dict[str, Any] | None = None
    finn_config: dict[str, Any] = field(default_factory=dict)
    processing: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    index: int | None = None
    space_id: str = ""
    model_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildConfig:
        return cls(**data)

    def content_hash(self) -> str:
        """sha256 over what determines the build's result (not ids, not bookkeeping)."""
        content = {
            "model": self.model_sha256 or self.model_path,
            "kernels": self.kernel_selections,
            "transforms": self.transform_sequence,
            "steps": self.build_steps,
            "backend": self.backend,
            "flags": self.config_flags,
            "finn_config": self.finn_config,
            "target": self.target,
            "folding": self.folding_config,
            "specialize": self.specialize_config,
            "processing": self.processing,
            "output_stage": self.global_config.get("output_stage"),
        }
        return hashlib.sha256(canonical_json(content).encode()).hexdigest()
