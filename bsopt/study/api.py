"""bsopt's public study API (``bsopt.create_study``, ``bsopt.load_study``, :class:`Study`), a thin
façade over the engine, the runner, the result queries and the report writers — in the style of
``optuna.create_study``. The command line is argument parsing and printing over the same calls::

    import bsopt

    study = bsopt.create_study("tfc-demo", "search_spaces/tfc_folding.yaml", seed=0)
    study.optimize(n_trials=50)
    for row in study.pareto(sort="-throughput_fps"):
        print(row["config_id"], row["throughput_fps"], row["LUT"])
    study.export("out/", trials="best")        # FINN build folders
    study.plot("pareto.html")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bsopt.errors import BsoptError, InputError
from bsopt.storage.urls import shown_url

READ_ONLY_HINT = ("queries (status, pareto, best, export) work; to run trials make the file and its folder "
                  "writable (SQLite writes -wal/-shm files beside it), or copy the folder somewhere writable and "
                  "use --workdir/--storage there")


class StudyFailed(BsoptError):
    """A run stopped because its builds kept failing (the same error, again and again)."""


@dataclass(frozen=True)
class RunOptions:
    """How a run executes; checked before anything is created or run."""

    workers: int | None = None
    executor: str = "local"
    ray_address: str | None = None
    build_timeout: float | None = None
    min_free_disk_gb: float = 1.0
    finn_budget: int | None = None
    pareto_candidates: bool = False
    max_failures: int | None = None
    progress: bool = True

    def check(self, n_trials: int | None = None, timeout: float | None = None) -> None:
        from bsopt.study.runner import EXECUTORS

        if n_trials is not None and n_trials < 1:
            raise InputError(f"the number of trials must be at least 1, got {n_trials}", where="n_trials / --n-trials")
        if timeout is not None and timeout <= 0:
            raise InputError(f"the timeout must be a positive number of seconds, got {timeout}",
                             where="timeout / --timeout")
        if self.workers is not None and self.workers < 1:
            raise InputError(f"workers must be at least 1, got {self.workers}", where="workers / --workers")
        if self.executor not in EXECUTORS:
            raise InputError(f"unknown executor '{self.executor}'", where="executor / --executor",
                             hint="executors: " + ", ".join(EXECUTORS))
        if self.finn_budget is not None and self.finn_budget < 1:
            raise InputError(f"the FINN build budget must be at least 1, got {self.finn_budget}",
                             where="finn_budget / --finn-budget")
        if self.build_timeout is not None and self.build_timeout <= 0:
            raise InputError(f"the build timeout must be a positive number of seconds, got {self.build_timeout}",
                             where="build_timeout / --build-timeout")
        if self.max_failures is not None and self.max_failures < 0:
            raise InputError(f"max_failures must be 0 (never stop) or more, got {self.max_failures}",
                             where="max_failures / --max-failures")
        if self.executor == "ray" and self.ray_address and self.ray_address != "auto":
            from bsopt.execute.ray_executor import check_reachable

            check_reachable(self.ray_address)  # in seconds (Ray retries an unreachable head for minutes)

    @classmethod
    def of(cls, options: dict[str, Any]) -> RunOptions:
        """RunOptions from keyword arguments; an unknown name is an InputError naming the known ones."""
        known = list(cls.__dataclass_fields__)
        unknown = [k for k in options if k not in known]
        if unknown:
            from bsopt.blueprint.diagnostics import suggest

            raise InputError(f"unknown run option '{unknown[0]}'", where="optimize()",
                             hint=suggest(unknown[0], known) or "options: " + ", ".join(known))
        return cls(**options)


class Study:
    """A bsopt study: a design space explored in an Optuna study (``.optuna``), with runs, queries
    and exports. Made by :func:`create_study` or :func:`load_study`."""

    def __init__(self, ctx):
        self._ctx = ctx
        self.last_run = None  # RunStats of the latest optimize() in this process
        self.exact_front: dict[str, Any] | None = None  # the exact strategy's summary after a run
        self.warm_starts: list = []  # what create_study(warm_start_from=...) took from earlier studies

    # -- what it is ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._ctx.name

    @property
    def strategy(self) -> str:
        return self._ctx.strategy.name

    @property
    def codesign(self) -> bool:
        """A co-design study: its trials are quantisations (trained) times their exact hardware fronts."""
        return self._ctx.space.blueprint.quantization is not None

    @property
    def objectives(self) -> list[tuple[str, str]]:
        """(metric, direction) per objective."""
        o = self._ctx.objectives
        return list(zip(o.metrics, o.directions, strict=True))

    @property
    def space(self):
        """The :class:`~bsopt.space.design_space.DesignSpace`."""
        return self._ctx.space

    @property
    def optuna(self):
        """The underlying ``optuna.Study``."""
        return self._ctx.study

    @property
    def workdir(self) -> Path:
        return self._ctx.workdir

    @property
    def n_trials(self) -> int:
        """Trials in the study (counted in the database, not loaded)."""
        from bsopt.storage.rdb import n_trials

        return n_trials(self._ctx.study)

    def metric_names(self, objectives: list[str] | None = None) -> list[str]:
        """The metric names of ``objectives`` as :meth:`pareto` reads them (default: the study's)."""
        from bsopt.study.results import resolve_objectives

        o = self._ctx.objectives
        return resolve_objectives(objectives, list(o.metrics), list(o.directions))[0]

    def __repr__(self) -> str:
        return f"Study({self.name!r}, strategy={self.strategy!r})"

    # -- running --------------------------------------------------------------------------------
    def optimize(self, n_trials: int | None = None, timeout: float | None = None, **options: Any):
        """Run trials (default: the blueprint's ``max_evaluations``; the exact strategy: its whole
        front). ``options`` are :class:`RunOptions` fields. Returns the run's statistics; raises
        :class:`StudyFailed` when builds failed in a row with none succeeding (``max_failures``)."""
        from bsopt.study.queries import error_headline
        from bsopt.study.runner import Runner

        opts = RunOptions.of(options)
        opts.check(n_trials, timeout)
        from bsopt.storage.urls import read_only

        locked = read_only(self._ctx.study._storage)
        if locked is not None:
            raise InputError(f"cannot run trials: {locked} is read-only here", where=f"study {self.name}",
                             hint=READ_ONLY_HINT)
        if self.codesign:
            from bsopt.study.codesign import CodesignRunner

            runner = CodesignRunner(self._ctx, workers=opts.workers, executor=opts.executor,
                                    ray_address=opts.ray_address, build_timeout=opts.build_timeout,
                                    progress=opts.progress, max_failures=opts.max_failures)
        else:
            runner = Runner(self._ctx, workers=opts.workers, progress=opts.progress, executor=opts.executor,
                            ray_address=opts.ray_address, build_timeout=opts.build_timeout,
                            min_free_disk_gb=opts.min_free_disk_gb, build_budget=opts.finn_budget,
                            pareto_gate=opts.pareto_candidates, max_failures=opts.max_failures)
        stats = runner.optimize(n_trials=n_trials, timeout=timeout)
        self.last_run, self.exact_front = stats, getattr(runner, "exact_info", None)
        if stats.systematic:
            head, hint = error_headline(stats.systematic)
            raise StudyFailed(
                f"stopped: {stats.failure_streak} builds failed in a row and none succeeded (the limit is "
                f"{runner.max_failures}; builds already running finish); the error: {head}",
                where=f"study {self.name}",
                hint=(f"{hint}; " if hint else "") + f"fix the cause, then continue with `bsopt study optimize "
                f"{self.name}` (`bsopt study status {self.name}` lists the failures; --max-failures 0 never stops)")
        return stats

    def why_nothing_feasible(self):
        """None when a feasible configuration exists; else what happened instead and what to do
        (:class:`~bsopt.study.report.NothingFeasible`)."""
        from bsopt.study.report import why_nothing_feasible

        return why_nothing_feasible(self._ctx, self.exact_front)

    # -- results ----------------------------------------------------------------------------------
    def pareto(self, *, objectives: list[str] | None = None, where: str | None = None, sort: str | None = None,
               as_frame: bool = False):
        """The feasible Pareto set as records (or a DataFrame): see :func:`bsopt.study.results.pareto`.
        Sorted by ``sort`` (a metric, ``-`` prefix: descending), default best first in the first objective."""
        from bsopt.study import results

        if sort is None:
            metrics, directions = results.resolve_objectives(objectives, list(self._ctx.objectives.metrics),
                                                             list(self._ctx.objectives.directions))
            sort = ("-" if directions[0] == "maximize" else "") + metrics[0]
        return results.pareto(self._ctx, objectives=objectives, where=where, sort=sort, as_frame=as_frame)

    def best(self, metric: str | None = None, *, where: str | None = None) -> dict[str, Any] | None:
        """The best feasible configuration for ``metric``, or the knee of the front."""
        from bsopt.study import results

        return results.best(self._ctx, metric, where=where)

    def status(self) -> dict[str, Any]:
        """Counts per state, feasible, cache hits, Pareto size, hypervolume, failure reasons, resources."""
        from bsopt.study.report import status

        return status(self._ctx)

    def export(self, out: str | Path, trials: str | int | list[int] = "pareto") -> list[Path]:
        """Write FINN build folders (model, dataflow_build_config.json, folding config, bsopt's estimate
        reports) for ``"pareto"``, ``"best"`` (the knee), a trial number or a list of them."""
        from bsopt.storage import rdb
        from bsopt.study import queries
        from bsopt.study.report import export_trials

        all_trials = rdb.read_trials(self._ctx.study)
        directions = self._ctx.objectives.directions
        if isinstance(trials, str) and trials not in ("pareto", "best"):
            raise InputError(f"unknown trial selection {trials!r}", where="export(trials=...)",
                             hint="'pareto', 'best' (the knee of the front), a trial number or a list of them")
        if trials == "pareto":
            chosen = queries.pareto_front(all_trials, directions)
        elif trials == "best":
            knee = queries.knee(queries.pareto_front(all_trials, directions), directions)
            chosen = [knee] if knee else []
        else:
            wanted = [trials] if isinstance(trials, int) else list(trials)
            by_number = {t.number: t for t in all_trials}
            missing = [n for n in wanted if n not in by_number]
            if missing:
                raise InputError(f"study '{self.name}' has no trial {missing[0]}",
                                 hint=f"trials 0..{len(all_trials) - 1}")
            chosen = [by_number[n] for n in wanted]
        if not chosen:
            why = self.why_nothing_feasible()
            raise InputError("nothing to export: " + (why.message if why else "no feasible trial"),
                             hint=why.hint if why else "run more trials")
        return export_trials(self._ctx, chosen, out)

    def plot(self, out: str | Path | None = None) -> Path:
        """A plotly page with the Pareto front and the hypervolume history (default
        ``<study folder>/pareto.html``)."""
        from bsopt.study.report import plot

        return plot(self._ctx, out or self.workdir / "pareto.html")


def create_study(name: str, blueprint: str | Path, *, model: str | None = None, storage: str | None = None,
                 sampler: str | None = None, seed: int | None = None, resume: bool = False,
                 n_trials: int | None = None, warm_start_from: list[str] | str | None = None,
                 warm_start_storage: str | None = None) -> Study:
    """A new study of a blueprint's design space (``resume``: or the existing one of that name, if it
    was created from the same space). ``sampler`` overrides the blueprint's ``search.strategy``;
    ``n_trials`` is the budget ``auto`` chooses for. ``warm_start_from``: earlier studies whose results
    start this one; if they cannot, nothing is created."""
    import optuna

    from bsopt.storage import open_storage, studies, study_names
    from bsopt.storage.urls import read_only
    from bsopt.study.engine import check_study_name
    from bsopt.study.engine import create_study as _create
    from bsopt.study.warmstart import source_names, warm_start

    check_study_name(name)  # before anything is read or written
    store = open_storage(storage)
    locked = read_only(store)
    if locked is not None and not resume:
        raise InputError(f"cannot create study '{name}': {locked} is read-only here", where=shown_url(storage),
                         hint=READ_ONLY_HINT)
    sources = source_names(warm_start_from) if isinstance(warm_start_from, str | None) else list(warm_start_from)
    existed = name in {s.study_name for s in studies(store)}
    if sources:  # check the sources before creating anything
        available = set(study_names(warm_start_storage or storage))
        missing = [s for s in sources if s not in available]
        if missing:
            raise InputError(f"no study named {', '.join(repr(m) for m in missing)} to warm-start from",
                             where=shown_url(warm_start_storage or storage),
                             hint="studies: " + (", ".join(sorted(available)) or "none"))
    ctx = _create(name, blueprint, model=model, storage=storage, sampler=sampler, seed=seed, resume=resume,
                  n_trials=n_trials)
    study = Study(ctx)
    if sources and not existed and study.codesign:
        optuna.delete_study(study_name=name, storage=open_storage(storage))  # nothing half-made stays
        raise InputError("co-design studies do not warm-start from other studies", where="--warm-start-from",
                         hint="trainings are cached: a new study of the same blueprint reuses every quantisation "
                         "trained before (`bsopt study create NEW --blueprint ...`)")
    if sources and not existed:
        try:
            study.warm_starts = warm_start(ctx, sources, warm_start_storage)
        except InputError:
            optuna.delete_study(study_name=name, storage=open_storage(storage))  # nothing half-made stays
            raise
    return study


def list_studies(storage: str | None = None) -> list[dict[str, Any]]:
    """One summary per study in a storage: name, trials, sampler, objective metrics, created."""
    from datetime import datetime

    from bsopt.storage import open_storage, rdb, studies

    store = open_storage(storage)
    out = []
    for s in studies(store):
        created = s.user_attrs.get("created")
        out.append({"name": s.study_name, "trials": rdb.count_trials(store, s._study_id),
                    "sampler": str(s.user_attrs.get("sampler", "")),
                    "objectives": [o["metric"] for o in s.user_attrs.get("objectives", {}).get("objectives", [])],
                    "created": datetime.fromtimestamp(created) if created else None})
    return out


def delete_study(name: str, storage: str | None = None, *, keep_files: bool = False) -> Path | None:
    """Delete a study: its trials and (unless ``keep_files``) its folder — logs, plots, FINN build
    folders. The shared build cache is kept. Returns the folder removed, if any."""
    import shutil

    import optuna

    from bsopt.storage import open_storage, studies, study_names

    if name not in study_names(storage):
        names = study_names(storage)
        raise InputError(f"no study named '{name}'", where=shown_url(storage),
                         hint=("studies: " + ", ".join(names)) if names else None)
    store = open_storage(storage)
    attrs = next((s.user_attrs for s in studies(store) if s.study_name == name), {})
    optuna.delete_study(study_name=name, storage=store)
    folder = Path(attrs["workdir"]) if attrs.get("workdir") else None
    # only the folder bsopt made for this study (named after it), never anything else
    if keep_files or folder is None or folder.name != name or not folder.is_dir():
        return None
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def load_study(name: str, storage: str | None = None, *, model: str | None = None) -> Study:
    """An existing study, with its blueprint's space (which must not have changed)."""
    from bsopt.study.engine import load_study as _load

    return Study(_load(name, storage, model=model))
