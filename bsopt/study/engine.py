"""The study engine: ask a sampler, build, tell — with cache, constraints, gates, resume and progress.

A study lives in an Optuna storage (default SQLite ``studies/bsopt.db``). Its user attributes hold
what is needed to continue it from another process: the blueprint (path and text), the model, the
space fingerprint, the sampler and seed. Each trial carries the BuildConfig's id and index, its
metrics (``m:<name>``), feasibility and per-constraint violations, the build status and duration,
and whether the cache answered. Killed runs leave RUNNING trials behind: the next ``optimize``
fails them and re-enqueues their parameters, so nothing is lost and nothing is built twice.
"""

from __future__ import annotations

import time
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from bsopt import __version__
from bsopt.build.result import BuildResult, BuildStatus
from bsopt.errors import BsoptError, InputError
from bsopt.study import queries
from bsopt.study.cache import BuildCache, cache_key
from bsopt.study.objectives import ObjectiveSet
from bsopt.study.params import OptunaSpace
from bsopt.study.samplers import make_sampler, resolve

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message=".*multivariate.*", category=optuna.exceptions.ExperimentalWarning)

DEFAULT_STORAGE_FILE = Path("studies") / "bsopt.db"
MAX_RETRIES = 2


def default_storage() -> str:
    DEFAULT_STORAGE_FILE.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_STORAGE_FILE}"


_MEMORY_STORAGE = None


def open_storage(url: str | None):
    """An Optuna storage from a URL, a journal file path (.log/.journal/.jsonl), or ``memory`` (this
    process only, nothing persisted: for benchmarks and experiments)."""
    global _MEMORY_STORAGE
    if url == "memory":
        if _MEMORY_STORAGE is None:
            _MEMORY_STORAGE = optuna.storages.InMemoryStorage()
        return _MEMORY_STORAGE
    url = url or default_storage()
    if url.endswith((".log", ".journal", ".jsonl")) and "://" not in url:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        return _sqlite_storage(url)
    try:
        return optuna.storages.get_storage(url)
    except Exception as exc:  # noqa: BLE001 - bad URLs raise many kinds of errors
        raise InputError(f"cannot open study storage: {exc}", where=url,
                         hint="use sqlite:///path.db, postgresql://user@host/db or a journal file path") from exc


def _sqlite_storage(url: str):
    """SQLite with write-ahead logging and normal sync: safe against process kills (not against power
    loss of the last transactions), and an order of magnitude faster per trial than the defaults."""
    from sqlalchemy import event

    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})

    @event.listens_for(storage.engine, "connect")
    def _pragmas(dbapi_conn, _record):  # pragma: no cover - exercised through every sqlite study
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    storage.engine.dispose()  # connections made before the listener existed get the pragmas too
    return storage


def study_names(storage_url: str | None) -> list[str]:
    storage = open_storage(storage_url)
    return [s.study_name for s in optuna.study.get_all_study_summaries(storage)]


@dataclass
class StudyContext:
    """A loaded study with its space, objectives, backend and bookkeeping."""

    name: str
    storage: Any
    study: optuna.Study
    space: Any
    objectives: ObjectiveSet
    ospace: OptunaSpace
    sampler: str
    workdir: Path


# ------------------------------------------------------------------------------ create / load
def create_study(name: str, blueprint: str | Path, *, model: str | None = None, storage: str | None = None,
                 sampler: str | None = None, seed: int | None = None, resume: bool = False,
                 n_trials: int | None = None) -> StudyContext:
    from bsopt.space.design_space import load_design_space

    bp_path = Path(blueprint).resolve()
    space = load_design_space(bp_path, model).require_valid()
    objectives = ObjectiveSet.from_space(space)
    objectives.check_backend(space.blueprint.backend)
    store = open_storage(storage)
    existing = [s.study_name for s in optuna.study.get_all_study_summaries(store)]
    if name in existing:
        if not resume:
            raise InputError(f"a study named '{name}' already exists", where=storage or default_storage(),
                             hint="use --resume to continue it, `bsopt study optimize`, or another name")
        return load_study(name, storage, model=model)
    try:
        size = space.get_total_combinations()
    except BsoptError:
        size = None
    sampler_name = resolve(sampler or space.search_config.get("strategy", "auto"), size,
                           n_trials or space.search_config.get("max_evaluations"))
    study = optuna.create_study(study_name=name, storage=store, directions=objectives.directions,
                                sampler=make_sampler(sampler_name, seed, len(objectives.metrics)))
    with warnings.catch_warnings():  # experimental in Optuna, and what the dashboard reads
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(objectives.metrics)
    attrs = {
        "bsopt_version": __version__,
        "blueprint_path": str(bp_path),
        "blueprint_text": bp_path.read_text(),
        "model_path": str(Path(space.model_path).resolve()) if space.model_path and not
        str(space.model_path).startswith("zoo:") else space.model_path,
        "model_sha256": space.model_sha256,
        "space_id": space.space_id,
        "space_size": str(size) if size is not None else None,
        "sampler": sampler_name,
        "seed": seed,
        "objectives": objectives.describe(),
        "backend": space.blueprint.backend,
        "created": time.time(),
    }
    for k, v in attrs.items():
        study.set_user_attr(k, v)
    return StudyContext(name, store, study, space, objectives, OptunaSpace(space.parameters), sampler_name,
                        _workdir(name))


def load_study(name: str, storage: str | None = None, *, model: str | None = None) -> StudyContext:
    from bsopt.space.design_space import load_design_space

    store = open_storage(storage)
    names = [s.study_name for s in optuna.study.get_all_study_summaries(store)]
    if name not in names:
        raise InputError(f"no study named '{name}'", where=storage or default_storage(),
                         hint=("studies: " + ", ".join(names)) if names else "create one with bsopt study create")
    attrs = optuna.load_study(study_name=name, storage=store).user_attrs
    bp_path = Path(attrs["blueprint_path"])
    if not bp_path.exists():
        raise InputError(f"the study's blueprint is gone: {bp_path}", where=f"study {name}",
                         hint="restore the file (its text is kept in the study's user attrs: "
                         "bsopt study export shows it)")
    space = load_design_space(bp_path, model or attrs.get("model_path")).require_valid()
    if space.space_id != attrs["space_id"]:
        raise InputError(f"the design space of study '{name}' changed since it was created",
                         where=str(bp_path), hint="the blueprint or the model was edited; create a new study "
                         "(or restore the original files)")
    objectives = ObjectiveSet.from_space(space)
    sampler_name = attrs["sampler"]
    study = optuna.load_study(study_name=name, storage=store,
                              sampler=make_sampler(sampler_name, attrs.get("seed"), len(objectives.metrics)))
    return StudyContext(name, store, study, space, objectives, OptunaSpace(space.parameters), sampler_name,
                        _workdir(name))


def _workdir(name: str) -> Path:
    return Path("studies") / name


# ------------------------------------------------------------------------------ workers
_WORKER_BACKEND = None


def make_backend(name: str, model_path: str, version: str, part: str | None, options: dict | None = None):
    """The build backend a blueprint names (the finn backend arrives with its own issue)."""
    from bsopt.build.estimate_backend import EstimateBackend

    if name == "estimate":
        return EstimateBackend(model_path, version, part)
    if name == "synthetic":
        from bsopt.build.synthetic_backend import SyntheticBackend

        return SyntheticBackend(model_path, version, part, options)
    raise InputError(f"the '{name}' backend is not available yet", where="backend",
                     hint="use backend: estimate (bsopt's FINN cost model) or synthetic")


def _init_worker(name: str, model_path: str, version: str, part: str | None, options: dict | None) -> None:
    global _WORKER_BACKEND
    _WORKER_BACKEND = make_backend(name, model_path, version, part, options)


def _worker_build(cfg_dict: dict) -> dict:
    from bsopt.space.build_config import BuildConfig

    cfg = BuildConfig.from_dict(cfg_dict)
    return _WORKER_BACKEND.build(cfg).to_dict()


# ------------------------------------------------------------------------------ optimize
@dataclass
class RunStats:
    started: float
    trials: int = 0
    builds: int = 0
    cache_hits: int = 0
    feasible: int = 0
    failed: int = 0
    pruned: int = 0
    recovered: int = 0


class Runner:
    """Runs trials of a loaded study: ask → (cache | gate | build) → tell."""

    flush_every = 500
    flush_seconds = 2.0
    #: the in-memory working copy keeps at most this many finished trials (the Pareto front and the
    #: most recent ones): memory stays bounded however long the study runs
    max_history = 4000

    def __init__(self, ctx: StudyContext, *, workers: int = 1, cache_path: str | Path | None = None,
                 progress: bool = True, build_timeout: float | None = None, batch: bool = True):
        self.ctx = ctx
        self.batch = batch
        self._study = ctx.study
        self.workers = max(1, int(workers))
        self.cache = BuildCache(cache_path or Path("studies") / "cache.db")
        self.progress = progress
        self.build_timeout = build_timeout
        space = ctx.space
        self.backend_name = space.blueprint.backend
        from bsopt.build.estimate_backend import EstimateBackend

        target = space.fixed_target()
        self._backend_args = (self.backend_name, space.model_path, target["finn_version"], target["part"],
                              space.blueprint.backend_options)
        self._local = make_backend(*self._backend_args)
        # staged gate: before an expensive backend builds anything, the estimate decides whether the
        # configuration can meet the constraints at all
        self._gate = (EstimateBackend(space.model_path, target["finn_version"], target["part"])
                      if getattr(self._local, "expensive", False) else None)
        self._pool: ProcessPoolExecutor | None = None

    # -- recovery -----------------------------------------------------------------------------
    def recover(self) -> int:
        """Fail RUNNING trials left by a killed run and re-enqueue their parameters."""
        study = self.ctx.study
        stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        for t in stale:
            study.tell(t.number, state=TrialState.FAIL)
            study.set_user_attr(f"recovered_{t.number}", True)
            if t.params:
                attrs = {k: v for k, v in t.user_attrs.items() if k in ("config_index", "seed")}
                study.enqueue_trial(t.params, user_attrs={**attrs, "retry_of": t.number}, skip_if_exists=False)
        return len(stale)

    def _grid_indices(self):
        done = set()
        pending = set()
        for t in self._study.get_trials(deepcopy=False):
            k = t.user_attrs.get("config_index")
            if k is None:
                continue
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (t.state == TrialState.FAIL and
                                                                        t.user_attrs.get("final")):
                done.add(int(k))
            elif t.state == TrialState.WAITING:
                pending.add(int(k))
        total = self.ctx.space.get_total_combinations()
        for k in range(total):
            if k not in done and k not in pending:
                yield k

    # -- one trial ------------------------------------------------------------------------------
    def _tell(self, trial, cfg, result: BuildResult, stats: RunStats) -> None:
        study, obj = self._study, self.ctx.objectives
        trial.set_user_attr("config_id", cfg.config_id)
        trial.set_user_attr("config_index", cfg.index)
        trial.set_user_attr("status", result.status)
        trial.set_user_attr("backend", result.backend or self.backend_name)
        trial.set_user_attr("cache_hit", result.cache_hit)
        trial.set_user_attr("build_seconds", round(result.duration, 6))
        stats.trials += 1
        if result.cache_hit:
            stats.cache_hits += 1
        else:
            stats.builds += 1
        if not result.ok:
            trial.set_user_attr("error", (result.error_message or "")[:2000])
            trial.set_user_attr("final", True)
            stats.failed += 1
            study.tell(trial, state=TrialState.FAIL)
            self._finished(trial)
            return
        for k, v in result.values.items():
            trial.set_user_attr(f"m:{k}", v)
        violations = obj.violations(result.values)
        for k, v in violations.items():
            trial.set_user_attr(f"c:{k}", v)
        ok = all(v <= 0 for v in violations.values())
        trial.set_user_attr("feasible", ok)
        for k, v in violations.items():
            trial.set_constraint(k, v)
        if ok:
            stats.feasible += 1
        try:
            values = obj.values(result.values)
        except KeyError as exc:
            trial.set_user_attr("error", str(exc))
            stats.failed += 1
            study.tell(trial, state=TrialState.FAIL)
            self._finished(trial)
            return
        study.tell(trial, values)
        self._finished(trial)

    def _pruned_by_gate(self, trial, cfg, stats: RunStats) -> bool:
        """Tell the trial PRUNED (with the reason) if its estimate already violates a constraint."""
        est = self._gate.build(cfg)
        if est.ok:
            violated = {k: v for k, v in self.ctx.objectives.violations(est.values).items() if v > 0}
            if not violated:
                return False
            reason = "estimate violates " + ", ".join(violated)
        else:
            reason = f"estimate failed: {est.error_message}"
        trial.set_user_attr("config_id", cfg.config_id)
        trial.set_user_attr("config_index", cfg.index)
        trial.set_user_attr("status", "PRUNED")
        trial.set_user_attr("pruned_reason", reason[:2000])
        for k, v in est.values.items():
            trial.set_user_attr(f"e:{k}", v)
        self._study.tell(trial, state=TrialState.PRUNED)
        self._finished(trial)
        stats.trials += 1
        stats.pruned += 1
        return True

    def _result_for(self, cfg) -> tuple[BuildResult | None, str]:
        key = cache_key(cfg, self.backend_name)
        hit = self.cache.get(key)
        return hit, key

    # -- the loop ----------------------------------------------------------------------------
    def optimize(self, n_trials: int | None = None, timeout: float | None = None) -> RunStats:
        """Run trials until ``n_trials`` more are done, the timeout passes, or a grid is exhausted.

        With one worker and nothing queued in the storage, trials run against an in-memory copy of
        the study and are written to the storage in batches (every ``flush_every`` trials or
        ``flush_seconds``): one write per trial instead of dozens. A kill loses at most the last
        unwritten batch, whose builds are in the cache: rerunning them builds nothing.
        """
        ctx = self.ctx
        stats = RunStats(time.time())
        stats.recovered = self.recover()
        if n_trials is None and timeout is None:
            n_trials = ctx.space.search_config.get("max_evaluations") or 100
        waiting = len(ctx.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        batched = self.batch and self.workers == 1 and waiting == 0
        self._study = self._working_copy() if batched else ctx.study
        self._pending = []
        self._last_flush = time.time()
        grid = ctx.sampler == "grid"
        grid_iter = self._grid_indices() if grid else None
        if not grid and not ctx.study.trials:
            self._enqueue_seeds()
        deadline = time.time() + timeout if timeout else None
        progress = _Progress(ctx, n_trials, enabled=self.progress, study=self._study)
        inflight: dict[Future, tuple[Any, Any, str]] = {}
        try:
            with progress:
                while True:
                    if n_trials is not None and stats.trials + len(inflight) >= n_trials:
                        break
                    if deadline is not None and time.time() >= deadline:
                        break
                    # enqueued trials (recovered ones, seeds) are asked first; the grid adds points after them
                    if grid and waiting > 0:
                        waiting -= 1
                    elif grid:
                        k = next(grid_iter, None)
                        if k is None:
                            break
                        self._study.enqueue_trial(ctx.ospace.to_params(ctx.space.values_at(k)),
                                                  user_attrs={"config_index": k})
                    trial, values = ctx.ospace.ask(self._study)
                    cfg = ctx.space.config_from_values(values)
                    hit, key = self._result_for(cfg)
                    if hit is not None:
                        self._tell(trial, cfg, hit, stats)
                        progress.update(stats)
                        continue
                    if self._gate is not None and self._pruned_by_gate(trial, cfg, stats):
                        progress.update(stats)
                        continue
                    if self.workers == 1:
                        result = self._build_with_retries(cfg)
                        self.cache.put(key, result)
                        self._tell(trial, cfg, result, stats)
                        progress.update(stats)
                        continue
                    pool = self._get_pool()
                    inflight[pool.submit(_worker_build, cfg.to_dict())] = (trial, cfg, key)
                    if len(inflight) >= self.workers:
                        self._drain(inflight, stats, progress, block=True)
                while inflight:
                    self._drain(inflight, stats, progress, block=True)
        finally:
            self._flush(force=True)
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
            self._log_run(stats)
        return stats

    def _log_run(self, stats: RunStats) -> None:
        """One JSON line per run in studies/<name>/runs.jsonl (what ran, how long, what it found)."""
        import dataclasses
        import json

        try:
            self.ctx.workdir.mkdir(parents=True, exist_ok=True)
            with open(self.ctx.workdir / "runs.jsonl", "a") as fh:
                fh.write(json.dumps({**dataclasses.asdict(stats), "ended": time.time(), "workers": self.workers,
                                     "sampler": self.ctx.sampler}) + "\n")
        except OSError:  # a read-only working directory must not fail the study
            pass

    # -- batched persistence ---------------------------------------------------------------------
    def _working_copy(self) -> optuna.Study:
        """An in-memory study holding the stored trials (the sampler's history)."""
        ctx = self.ctx
        mem = optuna.create_study(directions=ctx.objectives.directions,
                                  sampler=make_sampler(ctx.sampler, ctx.study.user_attrs.get("seed"),
                                                       len(ctx.objectives.metrics)))
        done = [t for t in ctx.study.get_trials(deepcopy=False) if t.state.is_finished()]
        if done:
            mem.add_trials(done)
        return mem

    def _finished(self, trial) -> None:
        if self._study is self.ctx.study:
            return
        self._pending.append(self._study._storage.get_trial(trial._trial_id))
        self._flush()

    def _flush(self, force: bool = False) -> None:
        pending = getattr(self, "_pending", None)
        if not pending:
            return
        if force or len(pending) >= self.flush_every or time.time() - self._last_flush >= self.flush_seconds:
            self.ctx.study.add_trials(pending)
            self._pending = []
            self._last_flush = time.time()
            self._trim()

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
                                  sampler=make_sampler(self.ctx.sampler, self.ctx.study.user_attrs.get("seed"),
                                                       len(self.ctx.objectives.metrics)))
        mem.add_trials(kept)
        if parents:
            new_ids = {t_old._trial_id: t_new._trial_id
                       for t_old, t_new in zip(kept, mem.get_trials(deepcopy=False), strict=True)}
            mem._storage.set_study_system_attr(mem._study_id, parents[0], [new_ids[i] for i in parents[1]])
        self._study = mem

    def _drain(self, inflight, stats, progress, block: bool) -> None:
        done, _ = wait(list(inflight), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for fut in done:
            trial, cfg, key = inflight.pop(fut)
            try:
                result = BuildResult.from_dict(fut.result())
            except Exception as exc:  # noqa: BLE001 - a lost worker: retried in-process
                result = self._build_with_retries(cfg, first_error=str(exc))
            self.cache.put(key, result)
            self._tell(trial, cfg, result, stats)
            progress.update(stats)

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, initializer=_init_worker,
                                             initargs=self._backend_args)
        return self._pool

    def _build_with_retries(self, cfg, first_error: str | None = None) -> BuildResult:
        errors = [first_error] if first_error else []
        for _ in range(MAX_RETRIES + 1):
            try:
                result = self._local.build(cfg)
            except Exception as exc:  # noqa: BLE001 - unexpected failure: recoverable, retried
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if errors:
                result.warnings.append("retried after: " + "; ".join(errors))
            return result
        now = time.time()
        return BuildResult(cfg.config_id, BuildStatus.FAILED, now, now, error_message="; ".join(errors),
                           backend=self.backend_name, recoverable=True)

    def _enqueue_seeds(self) -> None:
        from bsopt.study.seeds import folding_seeds

        try:
            seeds = folding_seeds(self.ctx.space)
        except Exception:  # noqa: BLE001 - seeds are a convenience; never block a study on them
            return
        for values in seeds:
            try:
                self._study.enqueue_trial(self.ctx.ospace.to_params(values), user_attrs={"seed": "finn_setfolding"})
            except (KeyError, ValueError):
                continue


class _Progress:
    """A rich progress bar: trials, feasible, hypervolume, rate, ETA (or nothing with --quiet)."""

    def __init__(self, ctx: StudyContext, total: int | None, enabled: bool, study=None):
        self.ctx, self.total, self.enabled = ctx, total, enabled
        self.study = study or ctx.study
        self._progress = None
        self._task = None
        self._last_hv = 0.0
        self._last = 0.0

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=False)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.ctx.name, total=self.total, info="")
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def update(self, stats: RunStats) -> None:
        if self._progress is None:
            return
        now = time.time()
        if now - self._last > 2.0 or (self.total and stats.trials >= self.total):
            trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            self._last_hv = queries.hypervolume(trials, self.ctx.objectives.directions)
            self._last = now
        rate = stats.trials / max(now - stats.started, 1e-9)
        self._progress.update(self._task, completed=stats.trials, info=(
            f"feasible {stats.feasible} · cache {stats.cache_hits} · HV {self._last_hv:.4f} · {rate:.1f} trials/s"))
