"""The run loop of a co-design study: ask a quantisation, train it in a worker, store its exact hardware
front as trials.

Per quantisation the sampler proposes (or the grid's next one):

1. a training job goes to the executor (the driver itself with one worker, else local worker processes
   or Ray actors); it carries the accuracy curves of the finished trainings with no more bits in any
   layer, which its pruner compares against after every epoch (:mod:`bsopt.models.pruning`);
2. a pruned training is told PRUNED (its curve kept for later judgements); a finished one has been
   exported as QONNX (cached by everything that determines it);
3. the trained model is lowered and its folding solved exactly (:func:`bsopt.explore.codesign.hardware_front`);
   the sampler's trial becomes the first front point and the others are added as trials, each with the
   quantisation's accuracy, its folding, its metrics and constraint violations, and the path of the
   trained model (``bsopt study export`` writes it beside the FINN files).

A killed run leaves RUNNING trials: the next run fails them and asks their quantisations again (their
training, if it had finished, comes from the cache).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import optuna
from optuna.trial import TrialState

from bsopt import settings
from bsopt.backends.result import BuildStatus
from bsopt.errors import BsoptError
from bsopt.execute.base import BackendSpec, Task
from bsopt.explore import codesign
from bsopt.models.quantized import (
    Quantization,
    buildable_neighbour,
    cache_key,
    every_quantization,
    finn_cannot_build,
    from_params,
    to_params,
    uniform_quantizations,
)
from bsopt.storage import rdb
from bsopt.study.dashboard import metric_summary
from bsopt.study.drivers import DriverLock, is_shared, lock_path
from bsopt.study.params import OptunaSpace
from bsopt.study.runner import MAX_CONSECUTIVE_FAILURES, MAX_RETRIES, RunStats, log_run

log = logging.getLogger(__name__)

#: stop asking after this many proposals in a row of quantisations already trained
MAX_PROPOSED_AGAIN = 50


@dataclass
class CodesignStats(RunStats):
    trainings: int = 0  # quantisations trained or read from the cache in this run
    trained_epochs: int = 0
    epochs_saved: int = 0  # epochs the pruner spared
    training_seconds: float = 0.0
    designs: int = 0  # hardware front points stored
    duplicates: int = 0  # quantisations the sampler proposed again
    unbuildable: int = 0  # quantisations FINN cannot build (not trained)


def trained_cache():
    """Where trained, exported quantisations are kept (shared by the studies of a study root)."""
    return settings.model_cache() / "trained"


class CodesignRunner:
    def __init__(self, ctx, *, workers: int | None = None, executor: str = "local", ray_address: str | None = None,
                 build_timeout: float | None = None, progress: bool = True, max_failures: int | None = None):
        self.ctx = ctx
        bp = ctx.space.blueprint
        self.spec, self.training = bp.quantization, bp.training
        self.blueprint = ctx.study.user_attrs["blueprint_path"]
        self.dists = codesign.distributions(self.spec)
        self.workers = workers or ctx.space.search_config.parallel_builds or 1
        self.executor_name, self.ray_address, self.build_timeout = executor, ray_address, build_timeout
        self.progress = progress
        self.max_failures = MAX_CONSECUTIVE_FAILURES if max_failures is None else max_failures
        # worker processes share the cores: one torch thread pool each, not one per core each
        threads = max(1, (os.cpu_count() or 1) // self.workers) if self.workers > 1 else None
        self.spec_backend = BackendSpec("train", "", "latest", None,
                                        {"blueprint": self.blueprint, "cache_dir": str(trained_cache().resolve()),
                                         "threads": threads, "reuse": bool(ctx.space.global_config.cache_results)},
                                        str(ctx.workdir))

    # -- executors ----------------------------------------------------------------------------------
    def _executor(self):
        if self.executor_name == "ray":
            from bsopt.execute.ray_executor import RayExecutor

            return RayExecutor(self.spec_backend, self.workers, timeout=self.build_timeout, address=self.ray_address)
        if self.workers == 1 and self.build_timeout is None:
            from bsopt.execute.inprocess import InProcessExecutor

            return InProcessExecutor(self.spec_backend)
        from bsopt.execute.local import LocalExecutor

        return LocalExecutor(self.spec_backend, self.workers, timeout=self.build_timeout)

    # -- what is known ---------------------------------------------------------------------------------
    def _trainings(self) -> list[tuple[Quantization, dict[str, Any]]]:
        """Finished trainings of the study (one trial each carries ``training``)."""
        out = []
        for t in rdb.read_trials(self.ctx.study, keys=("training",)):
            record = t.user_attrs.get("training")
            if record and t.state.is_finished():
                record = json.loads(record) if isinstance(record, str) else record
                out.append((Quantization.from_dict(record["quantization"]), record))
        return out

    def recover(self) -> int:
        """Fail RUNNING trials a killed run left and ask their quantisations again."""
        study = self.ctx.study
        stale = rdb.trials_in(study, (TrialState.RUNNING,))
        for t in stale:
            q_params = {k: v for k, v in t.params.items() if k in self.dists}
            rdb.set_attrs(study, t, {"quantization": from_params(self.spec, q_params).label, "final": True,
                                     "error": "interrupted: its run stopped (Ctrl-C or killed) while training it; "
                                     "trained again by the next run"}, {})
            study.tell(t.number, state=TrialState.FAIL)
            if q_params or not self.dists:
                study.enqueue_trial(q_params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
        return len(stale)

    # -- the loop ----------------------------------------------------------------------------------------
    def optimize(self, n_trials: int | None = None, timeout: float | None = None) -> CodesignStats:
        path = lock_path(self.ctx.storage_url, self.ctx.name)  # one driver per study on a file storage
        lock = DriverLock(path, self.ctx.name, self.ctx.storage_url) if path is not None else None
        try:
            return self._optimize(n_trials, timeout)
        finally:
            if lock is not None:
                lock.release()

    def _optimize(self, n_trials: int | None, timeout: float | None) -> CodesignStats:
        stats = CodesignStats(started=time.time())
        if not is_shared(self.ctx.storage):  # (on a server database another driver's trials may be running)
            stats.recovered = self.recover()
        study = self.ctx.study
        budget = n_trials or self.ctx.space.search_config.max_evaluations or self.spec.size
        finished = self._trainings()
        known = {q for q, _ in finished}
        grid = None
        if isinstance(self.ctx.strategy, codesign.QuantizationGrid):
            grid = (q for q in every_quantization(self.spec) if q not in known and finn_cannot_build(q) is None)
        if grid is None and not rdb.n_trials(study):  # a new study starts where a hand sweep would
            for q in uniform_quantizations(self.spec):
                study.enqueue_trial(to_params(self.spec, q), user_attrs={"uniform": True})
        deadline = None if timeout is None else time.time() + timeout
        inflight: set[Quantization] = set()
        launched = again = 0
        bar = _Progress(self.ctx.name, budget, self.progress)
        with self._executor() as ex, bar:
            while True:
                while (launched < budget and ex.free_slots() > 0 and not stats.stopped
                       and (deadline is None or time.time() < deadline)):
                    if grid is not None:
                        q = next(grid, None)
                        if q is None:
                            stats.stopped = self._all_trained()
                            break
                        study.enqueue_trial(to_params(self.spec, q))
                    trial = study.ask(self.dists)
                    q = from_params(self.spec, trial.params)
                    duplicate = q in known or q in inflight
                    reason = None if duplicate else finn_cannot_build(q)
                    if duplicate:  # not trained twice, and not counted
                        stats.duplicates += 1
                        rdb.set_attrs(study, trial, {"duplicate": q.label, "quantization": q.label,
                                                     "pruned_reason": "proposed again (trained already)"}, {})
                        study.tell(trial, state=TrialState.PRUNED)
                    elif reason is not None:  # not trained (no place in the budget); its nearest buildable is
                        stats.trials += 1
                        stats.failed += 1
                        stats.unbuildable += 1
                        near = buildable_neighbour(self.spec, q)
                        attrs = {"quantization": q.label, "final": True, "unbuildable": True,
                                 "error": f"FINN cannot build this quantisation: {reason}"}
                        if near is not None and near not in known and near not in inflight:
                            attrs["instead"] = near.label
                            study.enqueue_trial(to_params(self.spec, near), user_attrs={"instead_of": q.label})
                        rdb.set_attrs(study, trial, attrs, {})
                        study.tell(trial, state=TrialState.FAIL)
                    else:
                        again = 0
                        launched += 1
                        inflight.add(q)
                        job = self._job(q, [record for other, record in finished if other.at_most(q)])
                        ex.submit(Task(job, job.config_id, trial, submitted=time.time()))
                        continue
                    again += 1
                    if len(known) + len(inflight) >= self._buildable:
                        stats.stopped = self._all_trained()
                    elif again >= MAX_PROPOSED_AGAIN:
                        stats.stopped = (f"the sampler proposed {again} quantisations in a row that were trained "
                                         "already or that FINN cannot build")
                if ex.inflight == 0:
                    break
                for task, result in ex.poll(timeout=1.0):
                    q = Quantization.from_dict(task.cfg.quantization)
                    if not result.ok and result.status != BuildStatus.PRUNED and result.recoverable \
                            and task.attempt < MAX_RETRIES:
                        task.attempt += 1
                        stats.retries += 1
                        ex.submit(task)
                        continue
                    inflight.discard(q)
                    record = self._tell(task, result, stats)
                    if record is not None:
                        finished.append((q, record))
                        known.add(q)
                    bar.update(stats)
                    if self.max_failures and stats.failure_streak >= self.max_failures and not stats.feasible \
                            and stats.trainings == 0:
                        stats.stopped = f"{stats.failure_streak} trainings failed in a row"
                        stats.systematic = result.error_message or ""
        log_run(self.ctx, stats, workers=self.workers, executor=self.executor_name)
        return stats

    @cached_property
    def _buildable(self) -> int:
        """How many quantisations FINN can build (the whole space beyond a million)."""
        return self.spec.size if self.spec.size > 10**6 else sum(
            1 for q in every_quantization(self.spec) if finn_cannot_build(q) is None)

    def _all_trained(self) -> str:
        n = self._buildable
        if n == self.spec.size:
            return f"every quantisation ({n}) has been trained"
        return (f"every quantisation FINN can build ({n} of {self.spec.size}) has been trained (the others feed "
                "1-bit activations into multi-bit weights)")

    def _job(self, q: Quantization, peers: list[dict[str, Any]]):
        from bsopt.backends.train import TrainJob

        keep = ("curve", "pruned", "pruner_state")
        return TrainJob(cache_key(self.spec, self.training, q), q.to_dict(),
                        [{k: p.get(k) for k in keep} for p in peers])

    def _tell(self, task: Task, result, stats: CodesignStats) -> dict[str, Any] | None:
        """Store a training's outcome; the record of a finished (or pruned) training, else None."""
        study, trial, objectives = self.ctx.study, task.trial, self.ctx.objectives
        stats.trials += 1
        if "trained" not in result.artifacts:
            stats.failed += 1
            stats.failure_streak += 1
            label = Quantization.from_dict(task.cfg.quantization).label
            rdb.set_attrs(study, trial, {"error": (result.error_message or result.status)[:2000], "final": True,
                                         "quantization": label, "status": result.status, "worker": result.worker},
                          {})
            study.tell(trial, state=TrialState.FAIL)
            log.warning("training failed: %s", result.error_message)
            return None
        record = json.loads(result.artifacts["trained"])
        q = Quantization.from_dict(record["quantization"])
        stats.trainings += 1
        stats.cache_hits += bool(record["cached"])
        stats.builds += not record["cached"]
        if not record["cached"]:
            stats.trained_epochs += len(record["curve"])
            stats.training_seconds += record["seconds"]
        rdb.set_curve(study, trial, record["curve"])  # the dashboard's learning curve of this training
        common = {"quantization": q.label, "weight_bits": list(q.weight_bits), "act_bits": list(q.act_bits),
                  "accuracy_curve": [round(a, 6) for a in record["curve"]], "epochs_trained": len(record["curve"]),
                  "training_seconds": round(record["seconds"], 3), "cache_hit": bool(record["cached"]),
                  "worker": result.worker, "status": result.status}
        training = json.dumps(record)
        if result.status == BuildStatus.PRUNED:
            stats.pruned += 1
            stats.epochs_saved += self.training.epochs - len(record["curve"])
            attrs = {**common, "training": training, "pruned_reason": result.error_message or "",
                     "m:accuracy": record["accuracy"]}
            rdb.set_attrs(study, trial, attrs, {})
            study.tell(trial, state=TrialState.PRUNED)
            return record

        def fail(error: str) -> dict[str, Any]:  # a trained model without designs
            stats.failed += 1
            rdb.set_attrs(study, trial, {**common, "training": training, "final": True, "status": "FAILED",
                                         "error": error[:2000]}, {})
            study.tell(trial, state=TrialState.FAIL)
            return record

        try:
            front = codesign.hardware_front(self.blueprint, record["model_path"], objectives,
                                            self.spec.front_points or None)
        except Exception as exc:  # noqa: BLE001 - a model the flow cannot handle fails its trial, not the run
            errors = getattr(exc, "errors", None)  # a BlueprintError: the model's own messages
            why = "; ".join(f"{e.key_path}: {e.message}" for e in errors[:3]) if errors else \
                (exc.message if isinstance(exc, BsoptError) else f"{type(exc).__name__}: {exc}")
            return fail(f"the trained model's hardware cannot be solved: {why}")
        stats.failure_streak = 0
        common["model_path"] = record["model_path"]
        common["hardware_front_size"] = front.size
        if not front.points:
            return fail(f"no folding of {q.label} meets the constraints (its exact hardware front is empty)")
        ospace = OptunaSpace(front.space.parameters)
        q_params = {k: v for k, v in trial.params.items() if k in self.dists}
        added = []
        for i, point in enumerate(front.points):
            metrics = {**point["metrics"], "accuracy": record["accuracy"]}
            violations = objectives.violations(metrics)
            feasible = all(v <= 0 for v in violations.values())
            stats.feasible += feasible
            stats.designs += 1
            attrs = {**common, "config_id": point["config_id"], "config_index": point["config_index"],
                     "backend": "estimate",
                     "summary": metric_summary(metrics), "feasible": feasible,
                     **{f"m:{k}": v for k, v in metrics.items()}, **{f"c:{k}": v for k, v in violations.items()}}
            if point.get("warnings"):
                attrs["warnings"] = "; ".join(point["warnings"])[:2000]
            values = objectives.values(metrics)
            params = ospace.to_params(point["values"])
            if i == 0:  # the sampler's trial: the quantisation's first design, and its training record
                rdb.set_params(study, trial, params, ospace.distributions)
                rdb.set_attrs(study, trial, {**attrs, "training": training}, violations)
                study.tell(trial, values)
                continue
            now = datetime.datetime.now()
            added.append(optuna.trial.FrozenTrial(
                number=-1, state=TrialState.COMPLETE, value=None, values=values, datetime_start=now,
                datetime_complete=now, params={**q_params, **params},
                distributions={**{k: self.dists[k] for k in q_params}, **ospace.distributions},
                user_attrs={**attrs, "training_trial": trial.number}, system_attrs=rdb.constraint_attrs(violations),
                intermediate_values={}, trial_id=-1))
        rdb.add_trials(study, added)
        return record


class _Progress:
    """A rich progress bar over quantisations: pruned, designs, feasible, ETA (nothing with --quiet)."""

    def __init__(self, name: str, total: int, enabled: bool):
        self.name, self.total, self.enabled = name, total, enabled
        self._progress = self._task = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=12),
                                      MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeRemainingColumn())
            self._progress.__enter__()
            name = self.name if len(self.name) <= 16 else self.name[:15] + "…"
            self._task = self._progress.add_task(name, total=self.total, info="")
        return self

    def update(self, stats: CodesignStats) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=stats.trainings + stats.failed - stats.unbuildable, info=(
                f"pruned {stats.pruned} · designs {stats.designs} · ok {stats.feasible}"))

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
