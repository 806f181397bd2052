"""The training backend of co-design studies: a job is one quantisation; building it trains the model
(Brevitas QAT, the pruner consulted after each epoch) and exports it as QONNX.

It runs in the study's executors like any backend (the driver's process, local worker processes, Ray
actors); the job carries what its pruner needs (the peers' accuracy curves), so no worker reads the
study's storage. What a finished training produced is cached (:mod:`bsopt.models.quantized`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from bsopt.backends.result import BuildResult, BuildStatus

#: why the pruner stopped a training (its epochs are in the trial's accuracy_curve)
PRUNED_REASON = "stopped early by the pruner: trains worse than quantisations with no more bits in any layer"


@dataclass
class TrainJob:
    """One quantisation to train, with the curves its pruner compares against."""

    config_id: str  # the quantisation's cache key
    quantization: dict[str, list[int]]
    peers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"job": "train", "config_id": self.config_id, "quantization": self.quantization, "peers": self.peers}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainJob:
        return cls(d["config_id"], d["quantization"], list(d.get("peers") or []))


class TrainBackend:
    """Trains and exports quantisations of a co-design blueprint (``options``: ``blueprint``, its path;
    ``cache_dir``, where trained models are kept)."""

    name = "train"

    def __init__(self, options: dict[str, Any]):
        from bsopt.blueprint.loader import read_blueprint

        bp, diagnostics = read_blueprint(options["blueprint"])
        diagnostics.raise_if_errors()
        self.spec, self.training = bp.quantization, bp.training
        self.cache_dir = options["cache_dir"]
        self.reuse = options.get("reuse", True)
        if options.get("threads"):  # one of several worker processes
            import torch

            torch.set_num_threads(int(options["threads"]))

    @staticmethod
    def job_from_dict(d: dict[str, Any]) -> TrainJob:
        return TrainJob.from_dict(d)

    def build(self, job: TrainJob) -> BuildResult:
        from bsopt.models.pruning import PeerPruning
        from bsopt.models.quantized import Quantization, train_and_export

        start = time.time()
        q = Quantization.from_dict(job.quantization)
        pruning = PeerPruning(self.training.pruner, self.training.epochs, job.peers)
        trained = train_and_export(self.spec, self.training, q, self.cache_dir, report=pruning, reuse=self.reuse)
        record = {**trained.to_dict(), "pruner_state": pruning.state, "stopped_at": pruning.stopped_at}
        status = BuildStatus.PRUNED if trained.pruned else BuildStatus.SUCCESS
        return BuildResult(job.config_id, status, start, time.time(), values={"accuracy": trained.accuracy},
                           artifacts={"trained": json.dumps(record)}, backend=self.name, cache_hit=trained.cached,
                           error_message=PRUNED_REASON if trained.pruned else None)
