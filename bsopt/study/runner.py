"""The study loop: ask a sampler, build on an executor, tell — with cache, gates, claims, retries.

Per asked trial: the content-addressed cache answers identical builds; on a shared storage the claim
protocol (:mod:`bsopt.study.drivers`) makes sure no other driver is building the same configuration;
an estimate gate prunes configurations an expensive backend need not build; the rest go to the
executor (in this process, a pool of killable local workers, or Ray actors). Finished builds are
retried when their failure is recoverable (a lost worker, a backend exception), marked TIMEOUT when
killed at their timeout, cached, and told to Optuna with their metrics and constraints.

With a cheap backend on a single-driver storage the sampler works on an in-memory copy of the study
and trials are written to the storage in batches; otherwise every trial is written as it happens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from bsopt import settings
from bsopt.backends.result import BuildResult, BuildStatus
from bsopt.blueprint.config import DEFAULT_MAX_CONSECUTIVE_FAILURES
from bsopt.errors import InputError
from bsopt.execute.base import BackendSpec, Task, worker_rss
from bsopt.explore import SAMPLE
from bsopt.explore.samplers import continue_generations
from bsopt.storage import rdb
from bsopt.study import queries
from bsopt.study.cache import BuildCache, cache_key
from bsopt.study.dashboard import metric_summary
from bsopt.study.drivers import HEARTBEAT_S, DriverLock, Drivers, is_shared, lock_path
from bsopt.study.resources import Monitor

log = logging.getLogger(__name__)

MAX_RETRIES = 2
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
EXECUTORS = ("local", "ray")
#: stop launching builds after this many failed in a row with none succeeding (0: never stop)
MAX_CONSECUTIVE_FAILURES = DEFAULT_MAX_CONSECUTIVE_FAILURES


def log_run(ctx, stats, **more: Any) -> None:
    """One JSON line per run in studies/<name>/runs.jsonl (what ran, how long, what it found)."""
    try:
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        with open(ctx.workdir / "runs.jsonl", "a") as fh:
            fh.write(json.dumps({**dataclasses.asdict(stats), "ended": time.time(), "sampler": ctx.sampler,
                                 **more}) + "\n")
    except OSError:  # a read-only working directory must not fail the study
        pass


class _PointTrial:
    """A trial of a point a strategy chose without a sampler (exact front, grid), in a batched run: it
    lives in memory until its batch is written (:func:`rdb.add_trials` numbers it), so evaluating a
    point costs no Optuna ask/tell (each deep-copies the trial) and no per-trial transaction."""

    __slots__ = ("values", "user_attrs", "datetime_start")
    number = None  # given when stored
    _trial_id = None

    def __init__(self, values: dict[str, Any], user_attrs: dict[str, Any]):
        self.values = values
        self.user_attrs = dict(user_attrs)
        self.datetime_start = datetime.datetime.now()

    def finished(self, state: TrialState, values, attrs: dict[str, Any], constraints: dict[str, float],
                 ospace) -> optuna.trial.FrozenTrial:
        return optuna.trial.FrozenTrial(
            number=-1, state=state, value=None, values=values, datetime_start=self.datetime_start,
            datetime_complete=datetime.datetime.now(), params=ospace.to_params(self.values),
            distributions=ospace.distributions, user_attrs={**self.user_attrs, **attrs},
            system_attrs=rdb.constraint_attrs(constraints), intermediate_values={}, trial_id=-1)


@dataclass
class RunStats:
    started: float
    trials: int = 0
    builds: int = 0
    cache_hits: int = 0
    shared_hits: int = 0  # answered by another trial's build of the same configuration
    feasible: int = 0
    failed: int = 0
    timeouts: int = 0
    pruned: int = 0
    retries: int = 0
    recovered: int = 0
    submitted: int = 0  # builds handed to the executor (retries not counted)
    stopped: str = ""  # why launching stopped early (low disk, repeated failures), if it did
    failure_streak: int = 0  # builds that failed in a row (since this run's last successful build)
    streak_errors: dict[str, int] = dataclasses.field(default_factory=dict)  # their messages
    systematic: str = ""  # the error that failed every build of a stopped streak, with its hint
    published: str = ""  # what went to optuna-dashboard at the end


@dataclass
class _Duplicate:
    trial: Any
    cfg: Any
    key: str
    owner_id: int


class Runner:
    """Runs trials of a loaded study (a :class:`~bsopt.study.engine.StudyContext`)."""

    flush_every = 500
    flush_seconds = 2.0
    #: the in-memory working copy keeps at most this many finished trials (the Pareto front and the
    #: most recent ones): memory stays bounded however long the study runs
    max_history = 4000

    def __init__(self, ctx, *, workers: int | None = None, executor: str = "local", ray_address: str | None = None,
                 cache_path=None, progress: bool = True, build_timeout: float | None = None, batch: bool = True,
                 retry_timeouts: bool = False, min_free_disk_gb: float = 1.0, monitor_interval: float = 10.0,
                 build_budget: int | None = None, pareto_gate: bool = False, seeds: bool = True,
                 max_failures: int | None = None):
        from pathlib import Path

        if executor not in EXECUTORS:
            raise InputError(f"unknown executor '{executor}'", where="--executor", hint="executors: local, ray")
        self.ctx = ctx
        self.batch = batch
        self._study = ctx.study
        space = ctx.space
        self.backend_name = space.blueprint.backend
        target = space.fixed_target()
        self.spec = BackendSpec(self.backend_name, space.model_path, target["finn_version"], target["part"],
                                space.blueprint.backend_options, str(Path(ctx.workdir).resolve()))
        self._local = self.spec.create()
        self.expensive = bool(getattr(self._local, "expensive", False))
        check = getattr(self._local, "check_environment", None)
        if callable(check):  # a FINN that is not there fails here, not in every build
            check()
        identity = getattr(self._local, "cache_identity", None)
        self._cache_identity = identity() if callable(identity) else None
        if workers is None:
            workers = space.search_config.parallel_builds or (os.cpu_count() or 1 if self.expensive else 1)
        self.workers = max(1, int(workers))
        self.executor_name = executor
        self.ray_address = ray_address
        if build_timeout is None and space.global_config.timeout_minutes:
            build_timeout = float(space.global_config.timeout_minutes) * 60.0
        self.build_timeout = build_timeout
        self.retry_timeouts = retry_timeouts
        self.cache = BuildCache(cache_path or settings.cache_path())
        self.use_cache = space.global_config.cache_results
        self.progress = progress
        self.monitor = Monitor(ctx.workdir, min_free_gb=min_free_disk_gb, interval=monitor_interval)
        # staged gate: before an expensive backend builds anything, the estimate decides whether the
        # configuration can meet the constraints at all
        self._gate = None
        if self.expensive:
            from bsopt.backends.estimate import EstimateBackend

            self._gate = EstimateBackend.for_space(space)
        #: multi-fidelity: at most this many expensive builds per run; build only estimate-Pareto candidates
        self.build_budget = build_budget
        self.seeds = seeds  # start samplers from FINN's SetFolding at a spread of target_fps
        if max_failures is None:
            max_failures = space.search_config.max_consecutive_failures
        if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 0:
            raise InputError(f"the number of failed builds in a row that stops a study must be a whole number "
                             f">= 0 (0: never stop), got {max_failures!r}",
                             where="--max-failures / search.max_consecutive_failures")
        self.max_failures = max_failures
        self.pareto_gate = pareto_gate
        self._built_estimates: list[tuple[int, tuple[float, ...]]] = []
        self.shared = is_shared(ctx.storage)
        self.drivers = Drivers(ctx.study) if self.shared else None
        self.executor = None
        self._dupes: list[_Duplicate] = []
        self._built: dict[int, str | None] = {}
        self.publish = True  # artifacts and figures for optuna-dashboard after each run
        self._pending: list = []
        self._archive = queries.FrontArchive(ctx.objectives.directions)  # the feasible front told so far
        self._last_flush = 0.0
        self._last_recover = 0.0

    # -- executors --------------------------------------------------------------------------------
    def _make_executor(self):
        if self.executor_name == "ray":
            from bsopt.execute.ray_executor import RayExecutor

            return RayExecutor(self.spec, self.workers, timeout=self.build_timeout, address=self.ray_address)
        if self.workers == 1 and not self.expensive and self.build_timeout is None:
            from bsopt.execute.inprocess import InProcessExecutor

            return InProcessExecutor(self.spec, backend=self._local)
        from bsopt.execute.local import LocalExecutor

        return LocalExecutor(self.spec, self.workers, timeout=self.build_timeout)

    # -- recovery -----------------------------------------------------------------------------
    def recover(self) -> int:
        """Fail RUNNING trials left by killed drivers and re-enqueue their parameters (on a shared
        storage only those whose driver's heartbeat stopped)."""
        study = self.ctx.study
        stale = rdb.trials_in(study, (TrialState.RUNNING,))
        if self.drivers is not None:
            alive = self.drivers.alive()
            stale = [t for t in stale if self.drivers.is_stale(t, alive)]
        n = 0
        for t in stale:
            try:
                study.tell(t.number, state=TrialState.FAIL)
            except (RuntimeError, ValueError):  # another driver recovered it first
                continue
            n += 1
            study.set_user_attr(f"recovered_{t.number}", True)
            if t.params:
                attrs = {k: v for k, v in t.user_attrs.items() if k in ("config_index", "seed")}
                study.enqueue_trial(t.params, user_attrs={**attrs, "retry_of": t.number}, skip_if_exists=False)
        return n

    # -- telling ------------------------------------------------------------------------------------
    def _tell(self, trial, cfg, result: BuildResult, stats: RunStats, *, duplicate_of: int | None = None,
              estimate: dict[str, float] | None = None) -> None:
        study, obj = self._study, self.ctx.objectives
        attrs: dict[str, Any] = {"config_id": cfg.config_id, "config_index": cfg.index, "status": result.status,
                                 "backend": result.backend or self.backend_name, "cache_hit": result.cache_hit,
                                 "build_seconds": round(result.duration, 6)}
        if result.worker and not result.cache_hit:
            attrs["worker"] = result.worker
            if self._study is self.ctx.study:  # built in this run: its reports go to the dashboard
                self._built[trial._trial_id] = result.artifacts.get("reports")
        if duplicate_of is not None:
            attrs["duplicate_of"] = duplicate_of
        if result.warnings:
            attrs["warnings"] = "; ".join(result.warnings)[:2000]
        if estimate:  # the gate's estimate beside the real metrics, for calibration
            attrs.update({f"e:{k}": v for k, v in estimate.items()})
        if result.logs and not result.cache_hit:
            log = self._write_log(cfg, result)
            if log:
                attrs["log"] = log
        stats.trials += 1
        if duplicate_of is not None:
            stats.shared_hits += 1
        elif result.cache_hit:
            stats.cache_hits += 1
        else:
            stats.builds += 1
        state, values, constraints = TrialState.COMPLETE, None, {}
        if result.status == BuildStatus.PRUNED:
            attrs["pruned_reason"] = result.error_message or ""
            stats.pruned += 1
            state = TrialState.PRUNED
        elif not result.ok:
            attrs["error"] = (result.error_message or "")[:2000]
            attrs["final"] = True
            stats.failure_streak += 1
            message = result.error_message or result.status
            stats.streak_errors[message] = stats.streak_errors.get(message, 0) + 1
            if result.status == BuildStatus.TIMEOUT:
                stats.timeouts += 1
            else:
                stats.failed += 1
            state = TrialState.FAIL
        else:
            stats.failure_streak = 0
            stats.streak_errors = {}
            for k, v in result.values.items():
                attrs[f"m:{k}"] = v
            attrs["summary"] = metric_summary(result.values)
            violations = obj.violations(result.values)
            for k, v in violations.items():
                attrs[f"c:{k}"] = v
            ok = all(v <= 0 for v in violations.values())
            attrs["feasible"] = ok
            if ok:
                stats.feasible += 1
            try:
                values = obj.values(result.values)
            except KeyError as exc:
                attrs["error"] = str(exc)
                stats.failed += 1
                state = TrialState.FAIL
            constraints = violations
        if state == TrialState.COMPLETE and attrs.get("feasible"):
            self._archive.add(values)
        if isinstance(trial, _PointTrial):  # no Optuna round trip: stored with its batch
            self._pending.append(trial.finished(state, values, attrs, constraints, self.ctx.ospace))
            self._flush()
            return
        rdb.set_attrs(study, trial, attrs, constraints)
        if state == TrialState.COMPLETE:
            study.tell(trial, values)
        else:
            study.tell(trial, state=state)
        self._finished(trial)

    def _write_log(self, cfg, result: BuildResult) -> str | None:
        """A build's log under studies/<name>/logs/ (the storage keeps only its path)."""
        try:
            path = self.ctx.workdir / "logs" / f"{cfg.config_id}.log"
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as fh:
                fh.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {result.status} on {result.worker or '?'}\n")
                fh.write(result.logs.rstrip() + "\n")
            return str(path.resolve())
        except OSError:
            return None

    def _gate_check(self, trial, cfg, stats: RunStats) -> dict[str, float] | None:
        """The staged gate before an expensive build. Returns the estimate's metrics when the
        configuration may be built; tells the trial PRUNED (with the reason) and returns None when its
        estimate violates a constraint, fails, or (with ``pareto_gate``) is dominated by the estimate
        of a configuration already built."""
        est = self._gate.build(cfg)
        reason = None
        if not est.ok:
            reason = f"estimate failed: {est.error_message}"
        elif est.values.get("codegen_issues"):
            reason = "FINN's code generation would reject it: " + "; ".join(est.warnings[:3])
        else:
            violated = {k: v for k, v in self.ctx.objectives.violations(est.values).items() if v > 0}
            if violated:
                reason = "estimate violates " + ", ".join(violated)
            elif self.pareto_gate:
                point = self._min_point(est.values)
                if point is not None:
                    for number, other in self._built_estimates:
                        if all(a <= b for a, b in zip(other, point, strict=True)) and other != point:
                            reason = f"not a Pareto candidate: its estimate is dominated by trial {number}'s"
                            break
        if reason is None:
            return est.values
        attrs = {"config_id": cfg.config_id, "config_index": cfg.index, "status": "PRUNED",
                 "pruned_reason": reason[:2000], **{f"e:{k}": v for k, v in est.values.items()}}
        rdb.set_attrs(self._study, trial, attrs, {})
        self._study.tell(trial, state=TrialState.PRUNED)
        self._finished(trial)
        stats.trials += 1
        stats.pruned += 1
        return None

    def _min_point(self, values: dict[str, float]) -> tuple[float, ...] | None:
        try:
            vals = self.ctx.objectives.values(values)
        except KeyError:
            return None
        return tuple(-v if d == "maximize" else v for v, d in zip(vals, self.ctx.objectives.directions, strict=True))

    # -- one asked trial ------------------------------------------------------------------------
    def _launch(self, trial, values, stats: RunStats) -> None:
        cfg = self.ctx.space.config_from_values(values)
        key = cache_key(cfg, self.backend_name, self._cache_identity)
        hit = self.cache.get(key) if self.use_cache else None
        if hit is not None:
            self._tell(trial, cfg, hit, stats)
            return
        if self.drivers is not None:
            owner = self.drivers.claim(trial, cfg.config_id)
            if owner is not None:
                self._dupes.append(_Duplicate(trial, cfg, key, owner._trial_id))
                return
        self._submit(trial, cfg, key, stats)

    def _submit(self, trial, cfg, key: str, stats: RunStats) -> None:
        """The estimate gate (expensive backends), then the executor."""
        estimate = None
        if self._gate is not None:
            estimate = self._gate_check(trial, cfg, stats)
            if estimate is None:
                return
            point = self._min_point(estimate)
            if point is not None:
                self._built_estimates.append((trial.number, point))
        self.executor.submit(Task(cfg, key, trial, estimate=estimate))
        stats.submitted += 1

    def _finish(self, task: Task, result: BuildResult, stats: RunStats) -> None:
        retry = result.recoverable or (result.status == BuildStatus.TIMEOUT and self.retry_timeouts)
        if retry and not result.ok and task.attempt < MAX_RETRIES:
            task.attempt += 1
            task.errors.append(result.error_message or result.status)
            stats.retries += 1
            self.executor.submit(task)
            return
        if task.errors:
            result.warnings.append("retried after: " + "; ".join(task.errors))
        if self.use_cache:
            self.cache.put(task.key, result)
        self._tell(task.trial, task.cfg, result, stats, estimate=task.estimate)

    def _check_duplicates(self, stats: RunStats) -> None:
        """Tell waiting duplicates whose owner finished; take over those whose owner's driver died."""
        if not self._dupes:
            return
        alive = self.drivers.alive()
        still = []
        for d in self._dupes:
            owner = self.ctx.study._storage.get_trial(d.owner_id)
            if owner.state == TrialState.RUNNING and not self.drivers.is_stale(owner, alive):
                still.append(d)
                continue
            if owner.state == TrialState.RUNNING or (owner.state == TrialState.FAIL and
                                                     not owner.user_attrs.get("final")):
                # its driver died: build it here (when a slot is free)
                if self.executor.free_slots() > 0:
                    self._submit(d.trial, d.cfg, d.key, stats)
                else:
                    still.append(d)
                continue
            self._tell(d.trial, d.cfg, _copied_result(owner, d.cfg), stats, duplicate_of=owner.number)
        self._dupes = still

    # -- the loop ----------------------------------------------------------------------------
    def optimize(self, n_trials: int | None = None, timeout: float | None = None) -> RunStats:
        """Run trials until ``n_trials`` more are done, the timeout passes, or a grid is exhausted."""
        ctx = self.ctx
        lock = None
        path = None if self.shared else lock_path(ctx.storage_url, ctx.name)
        if path is not None:
            lock = DriverLock(path, ctx.name, ctx.storage_url)
        stats = RunStats(time.time())
        try:
            if self.drivers is not None:
                self.drivers.beat(force=True)
            stats.recovered = self.recover()
            self._last_recover = time.time()
            strategy = ctx.strategy
            if timeout is None and ctx.space.search_config.timeout_minutes:
                timeout = float(ctx.space.search_config.timeout_minutes) * 60.0  # the blueprint's run limit
            if n_trials is None and timeout is None:
                n_trials = strategy.default_trials(ctx.space)
            waiting = len(rdb.trials_in(ctx.study, (TrialState.WAITING,)))
            batched = self.batch and not self.shared and not self.expensive and waiting == 0
            # the stored trials, light (objective values and constraints): the front so far, the history
            done = rdb.read_trials(ctx.study, states=_FINISHED, keys=("c:",))
            front = queries.pareto_front(done, ctx.objectives.directions)
            self._study = self._working_copy(done, front) if batched else ctx.study
            if self._study is ctx.study:
                continue_generations(ctx.study, [t._trial_id for t in front],
                                     lambda key: rdb.max_system_attr(ctx.study, key))
            # points a strategy chose without a sampler, in a batched run, skip Optuna's ask/tell entirely
            direct = batched and strategy.knows_points and strategy.sampler_free
            self._pending = []
            self._last_flush = time.time()
            if self.pareto_gate:  # the estimates of configurations built in earlier runs
                for t in rdb.read_trials(ctx.study):
                    est = {k[2:]: v for k, v in t.user_attrs.items() if k.startswith("e:")}
                    if est and "worker" in t.user_attrs:
                        point = self._min_point(est)
                        if point is not None:
                            self._built_estimates.append((t.number, point))
            with _status_line(self.progress) as status:
                points = strategy.points(ctx, n_trials=n_trials, estimator=self._local, gate=self._gate,
                                         build_budget=self.build_budget, status=status)
            self.exact_info = getattr(strategy, "info", None)
            if points is None and not done and waiting == 0 and self.seeds:
                self._enqueue_seeds()
            deadline = time.time() + timeout if timeout else None
            self.executor = self._make_executor()
            self._archive = queries.FrontArchive(ctx.objectives.directions)
            for t in done:
                if queries.feasible(t):
                    self._archive.add(t.values)
            del done, front
            box = queries.study_box(ctx.study)
            progress = _Progress(ctx, n_trials, enabled=self.progress, archive=self._archive, box=box)
            exhausted = False
            with progress, self.executor:
                while True:
                    while not exhausted and self.executor.free_slots() > 0:
                        busy = self.executor.inflight + len(self._dupes)
                        if n_trials is not None and stats.trials + busy >= n_trials:
                            break
                        if deadline is not None and time.time() >= deadline:
                            break
                        if self.build_budget is not None and stats.submitted >= self.build_budget:
                            stats.stopped = f"build budget of {self.build_budget} reached"
                            exhausted = True
                            break
                        if self.max_failures and stats.failure_streak >= self.max_failures:
                            stats.systematic = max(stats.streak_errors, key=stats.streak_errors.get)
                            stats.stopped = (f"{stats.failure_streak} builds failed in a row and none succeeded "
                                             f"(search.max_consecutive_failures: {self.max_failures})")
                            exhausted = True
                            break
                        if self.monitor.disk_low():
                            stats.stopped = (f"free disk {self.monitor.free_gb():.2f} GB is below "
                                             f"{self.monitor.min_free_gb:g} GB: no new builds started")
                            exhausted = True
                            break
                        # enqueued trials (recovered ones, seeds) come first; a strategy's points after them
                        if points is not None and waiting > 0:
                            waiting -= 1
                        elif points is not None:
                            point = next(points, None)
                            if point is None:
                                exhausted = True
                                stats.stopped = strategy.exhausted(ctx.space)
                                break
                            if point != SAMPLE and direct:  # a known point, no sampler: no Optuna trial
                                self._launch(_PointTrial(point[0], point[1]), {**ctx.ospace.fixed, **point[0]},
                                             stats)
                                progress.update(stats)
                                continue
                            if point != SAMPLE:  # SAMPLE: the sampler proposes this one
                                self._study.enqueue_trial(ctx.ospace.to_params(point[0]), user_attrs=point[1])
                        trial, values = ctx.ospace.ask(self._study)
                        self._launch(trial, values, stats)
                        progress.update(stats)
                    if self.executor.inflight == 0 and not self._dupes:
                        break
                    wait_s = 0.5 if self._dupes else (HEARTBEAT_S if self.drivers is not None else 10.0)
                    for task, result in self.executor.poll(timeout=wait_s):
                        self._finish(task, result, stats)
                        progress.update(stats)
                    self._check_duplicates(stats)
                    self._housekeeping()
                self._record_resources(force=True)  # while the workers are still up
        finally:
            self._flush(force=True)
            self._flush_cache()
            self._fix_reference_box()
            if self.publish and stats.trials:
                self._publish(stats)
            self._log_run(stats)
            if lock is not None:
                lock.release()
        return stats

    #: the hypervolume reference box is fixed once the study has this many feasible trials
    box_after = 20

    def _fix_reference_box(self) -> None:
        """Record the study's hypervolume reference box (see :data:`queries.HV_MEANING`) at the end of
        the first run that leaves it with :attr:`box_after` feasible trials; it never changes after."""
        archive = self._archive
        if archive.count < self.box_after or queries.study_box(self.ctx.study) is not None:
            return
        try:
            self.ctx.study.set_user_attr(queries.HV_BOX_ATTR, {**archive.box(), "metrics": list(
                self.ctx.objectives.metrics), "directions": list(self.ctx.objectives.directions),
                "feasible_trials": archive.count})
        except Exception:  # noqa: BLE001 - the trials are stored; the box is fixed by a later run
            log.warning("could not record the hypervolume reference box of study %s", self.ctx.name)

    def _publish(self, stats: RunStats) -> None:
        """Artifacts and figures for optuna-dashboard (never fails the run; skipped for huge studies)."""
        from bsopt.study import dashboard

        try:
            n = rdb.n_trials(self.ctx.study)
            if n > dashboard.PUBLISH_MAX_TRIALS:
                stats.published = f"skipped: {n} trials (more than {dashboard.PUBLISH_MAX_TRIALS})"
                return
            out = dashboard.publish(self.ctx, extra=self._built,
                                    estimator=self._local if self.backend_name == "estimate" else None)
            stats.published = f"{out['files']} artifact file(s) for {out['trials']} trial(s), {out['figures']} figure(s)"
        except Exception as exc:  # noqa: BLE001 - the dashboard is a view: it must not fail a study
            stats.published = f"failed: {type(exc).__name__}: {exc}"

    def _housekeeping(self) -> None:
        if self.drivers is not None:
            self.drivers.beat()
            if time.time() - self._last_recover > 30.0:
                self._last_recover = time.time()
                self.recover()
        self._record_resources()

    def _record_resources(self, force: bool = False) -> None:
        def sizes() -> list[int]:
            own = getattr(self.executor, "worker_rss", None)  # Ray actors report their own
            if callable(own):
                return own()
            return worker_rss(self.executor.worker_pids() if self.executor is not None else [])

        r = self.monitor.sample(sizes, force=force)
        if r is not None:
            try:
                self.ctx.study.set_user_attr("resources", r.to_dict())
            except Exception:  # noqa: BLE001 - monitoring must never stop a study
                pass

    def _log_run(self, stats: RunStats) -> None:
        log_run(self.ctx, stats, workers=self.workers, executor=getattr(self.executor, "name", self.executor_name),
                resources=self.monitor.now.to_dict())

    # -- batched persistence ---------------------------------------------------------------------
    def _working_copy(self, done: list, front: list) -> optuna.Study:
        """An in-memory study holding the sampler's history: the stored Pareto front and the most recent
        finished trials (a quarter of :attr:`max_history`; :meth:`_trim` keeps up to all of it), read with their
        parameters from the storage by id — not the whole study. ``done``: the stored finished trials
        (light records), ``front``: their feasible Pareto front."""
        ctx = self.ctx
        mem = optuna.create_study(directions=ctx.objectives.directions,
                                  sampler=ctx.strategy.sampler(ctx.study.user_attrs.get("seed"),
                                                               len(ctx.objectives.metrics)))
        if (ctx.strategy.knows_points and ctx.strategy.sampler_free) or not done:
            return mem  # its sampler reads no history (see _trim)
        recent = done[-(self.max_history // 4):]  # plenty for a sampler; the run's trimming keeps more
        ids = {t._trial_id for t in recent} | {t._trial_id for t in front}
        kept = sorted(rdb.full_trials(ctx.study, ids, user_attrs=False), key=lambda t: t.number)
        mem.add_trials(kept)
        new_id = {t_old._trial_id: t_new._trial_id
                  for t_old, t_new in zip(kept, mem.get_trials(deepcopy=False), strict=True)}
        continue_generations(mem, [new_id[t._trial_id] for t in front if t._trial_id in new_id],
                             lambda key: max((t.system_attrs[key] for t in kept if t.state == TrialState.COMPLETE
                                              and key in t.system_attrs), default=None))
        return mem

    def _finished(self, trial) -> None:
        if self._study is self.ctx.study:
            return
        self._pending.append(self._study._storage.get_trial(trial._trial_id))
        self._flush()

    def _flush(self, force: bool = False) -> None:
        pending = self._pending
        if not pending:
            return
        if force or len(pending) >= self.flush_every or time.time() - self._last_flush >= self.flush_seconds:
            rdb.add_trials(self.ctx.study, pending)
            self._pending = []
            self._last_flush = time.time()
            self._flush_cache()
            self._trim()

    def _flush_cache(self) -> None:
        try:
            self.cache.flush()
        except sqlite3.Error as exc:  # only a cache: the trials are stored; say it and go on
            log.warning("could not write the build cache %s: %s", self.cache.path, exc)

    def _trim(self) -> None:
        """Rebuild the working copy from the front, the latest trials and (for genetic samplers) the
        current parent population when it grows too long. The parent population is carried over in
        the sampler's own cache, so that NSGA-II continues where it was instead of re-deriving every
        generation from the first."""
        old = self._study
        trials = old.get_trials(deepcopy=False)
        if len(trials) <= self.max_history or any(not t.state.is_finished() for t in trials):
            return
        prefix_fn = getattr(old.sampler, "_get_parent_cache_key_prefix", None)
        parents: tuple[str, list[int]] | None = None
        if prefix_fn is not None:
            prefix = prefix_fn()
            cached = {k: v for k, v in old._storage.get_study_system_attrs(old._study_id).items()
                      if k.startswith(prefix)}
            if cached:
                key = max(cached, key=lambda k: int(k[len(prefix):]))
                parents = (key, cached[key])
        keep = {t._trial_id for t in queries.pareto_front(trials, self.ctx.objectives.directions)}
        if parents:
            keep |= set(parents[1])
        recent = trials[-(self.max_history // 2):]
        recent_ids = {t._trial_id for t in recent}
        kept = [t for t in trials if t._trial_id in keep and t._trial_id not in recent_ids] + recent
        mem = optuna.create_study(directions=self.ctx.objectives.directions,
                                  sampler=self.ctx.strategy.sampler(self.ctx.study.user_attrs.get("seed"),
                                                                    len(self.ctx.objectives.metrics)))
        mem.add_trials(kept)
        if parents:
            new_ids = {t_old._trial_id: t_new._trial_id
                       for t_old, t_new in zip(kept, mem.get_trials(deepcopy=False), strict=True)}
            mem._storage.set_study_system_attr(mem._study_id, parents[0], [new_ids[i] for i in parents[1]])
        self._study = mem

    def _enqueue_seeds(self) -> None:
        from bsopt.explore.seeds import folding_seeds

        try:
            seeds = folding_seeds(self.ctx.space, estimator=self._gate or self._local)
        except Exception:  # noqa: BLE001 - seeds are a convenience; never block a study on them
            return
        for values in seeds:
            try:
                self._study.enqueue_trial(self.ctx.ospace.to_params(values), user_attrs={"seed": "finn_setfolding"})
            except (KeyError, ValueError):
                continue



def _copied_result(owner, cfg) -> BuildResult:
    """The result another trial's build of the same configuration produced, as recorded on it."""
    attrs = owner.user_attrs
    now = time.time()
    if owner.state == TrialState.PRUNED:
        return BuildResult(cfg.config_id, BuildStatus.PRUNED, now, now, backend=attrs.get("backend", ""),
                           error_message=attrs.get("pruned_reason"), cache_hit=True)
    status = attrs.get("status", BuildStatus.FAILED if owner.state == TrialState.FAIL else BuildStatus.SUCCESS)
    values = {k[2:]: v for k, v in attrs.items() if k.startswith("m:")}
    return BuildResult(cfg.config_id, status, now, now, values=values, backend=attrs.get("backend", ""),
                       error_message=attrs.get("error"), cache_hit=True)


@contextlib.contextmanager
def _status_line(enabled: bool):
    """A transient status line on stderr while a strategy prepares its points (an exact solve of a
    large space takes a while): yields ``status(text)``, or None with --quiet."""
    if not enabled:
        yield None
        return
    from rich.console import Console

    with Console(stderr=True).status("preparing the strategy's points") as line:
        yield line.update


class _Progress:
    """A rich progress bar: trials, feasible, hypervolume, rate, ETA (or nothing with --quiet)."""

    def __init__(self, ctx, total: int | None, enabled: bool, archive: queries.FrontArchive,
                 box: dict[str, list[float]] | None = None):
        self.ctx, self.total, self.enabled = ctx, total, enabled
        self.archive = archive
        self.box = box  # the study's fixed hypervolume reference box (None: provisional, the points so far)
        self._progress = None
        self._task = None
        self._last_hv = 0.0
        self._last = 0.0
        self._stats: RunStats | None = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            # fits 80 columns: a short bar, and the study name cut to 16 characters
            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=12),
                                      MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                                      transient=False)
            self._progress.__enter__()
            name = self.ctx.name if len(self.ctx.name) <= 16 else self.ctx.name[:15] + "…"
            self._task = self._progress.add_task(name, total=self.total, info="")
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            if self._stats is not None:  # the last line shows the final front's hypervolume, not a stale one
                self.update(self._stats, final=True)
            self._progress.__exit__(*exc)

    def update(self, stats: RunStats, final: bool = False) -> None:
        if self._progress is None:
            return
        self._stats = stats
        now = time.time()
        if final or now - self._last > 2.0 or (self.total and stats.trials >= self.total):
            self._last_hv = self.archive.hypervolume(self.box)
            self._last = now
        rate = stats.trials / max(now - stats.started, 1e-9)
        self._progress.update(self._task, completed=stats.trials, info=(
            f"ok {stats.feasible} · HV {self._last_hv:.3f}{'' if self.box else '*'} · {rate:.0f}/s"))
