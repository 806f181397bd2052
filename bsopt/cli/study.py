"""``bsopt study …``: create and run studies, and query their results."""

from __future__ import annotations

import csv
import io
import json
import sys
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bsopt.errors import BsoptError, InputError

study_app = typer.Typer(help="Design-space exploration studies (Optuna) and their results.", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 160)

STORAGE = typer.Option(None, "--storage", help="Optuna storage URL (default sqlite:///studies/bsopt.db) or a "
                       "journal file path.")
WORKERS = typer.Option(None, "--workers", "-j", help="Builds at once (default: the blueprint's "
                       "search.parallel_builds, else the CPU count for expensive backends and 1 for estimates).")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar.")
EXECUTOR = typer.Option("local", "--executor", help="Where builds run: local (worker processes) or ray (Ray "
                        "actors).")
RAY_ADDRESS = typer.Option(None, "--ray-address", help="Join this Ray cluster (auto or HOST:PORT); default: "
                           "start a local Ray instance.")
BUILD_TIMEOUT = typer.Option(None, "--build-timeout", help="Kill a build after this many seconds (TIMEOUT); "
                             "default: the blueprint's global.timeout_minutes, else none.")
FINN_BUDGET = typer.Option(None, "--finn-budget", help="Build at most this many configurations with the "
                           "expensive backend (finn) in this run; the estimate gate decides which.")
PARETO_ONLY = typer.Option(False, "--pareto-candidates", help="Build with the expensive backend only "
                           "configurations whose estimate no earlier build's estimate dominates.")
MAX_FAILURES = typer.Option(None, "--max-failures", help="Stop after this many builds failed in a row with "
                            "none succeeding, and exit non-zero (default: the blueprint's "
                            "search.max_consecutive_failures, else 5; 0: never stop).")
MIN_FREE_DISK = typer.Option(1.0, "--min-free-disk", help="Stop launching builds when free disk in studies/ "
                             "falls below this many GB.")


def _quiet_optuna() -> None:
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


def _check_run_options(*, n_trials=None, timeout=None, workers=None, executor="local", build_timeout=None,
                       finn_budget=None, max_failures=None) -> None:
    """Bad run options are errors before anything is created or run."""
    from bsopt.study.runner import EXECUTORS

    if n_trials is not None and n_trials < 1:
        raise InputError(f"--n-trials must be at least 1, got {n_trials}", where="--n-trials")
    if timeout is not None and timeout <= 0:
        raise InputError(f"--timeout must be positive, got {timeout}", where="--timeout")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}", where="--workers")
    if executor not in EXECUTORS:
        raise InputError(f"unknown executor '{executor}'", where="--executor", hint="executors: " + ", ".join(EXECUTORS))
    if finn_budget is not None and finn_budget < 1:
        raise InputError(f"--finn-budget must be at least 1, got {finn_budget}", where="--finn-budget")
    if build_timeout is not None and build_timeout <= 0:
        raise InputError(f"--build-timeout must be positive, got {build_timeout}", where="--build-timeout")
    if max_failures is not None and max_failures < 0:
        raise InputError(f"--max-failures must be 0 (never stop) or more, got {max_failures}", where="--max-failures")


def _run(ctx, n_trials, timeout, *, quiet, workers=None, executor="local", ray_address=None, build_timeout=None,
         min_free_disk=1.0, finn_budget=None, pareto_candidates=False, max_failures=None):
    from bsopt.study.engine import Runner

    _check_run_options(n_trials=n_trials, timeout=timeout, workers=workers, executor=executor,
                       build_timeout=build_timeout, finn_budget=finn_budget, max_failures=max_failures)
    runner = Runner(ctx, workers=workers, progress=not quiet, executor=executor, ray_address=ray_address,
                    build_timeout=build_timeout, min_free_disk_gb=min_free_disk, build_budget=finn_budget,
                    pareto_gate=pareto_candidates, max_failures=max_failures)
    stats = runner.optimize(n_trials=n_trials, timeout=timeout)
    console.print(f"{stats.trials} trial(s): {stats.builds} built, {stats.cache_hits} from cache, "
                  f"{stats.feasible} feasible, {stats.failed} failed"
                  + (f", {stats.timeouts} timed out" if stats.timeouts else "")
                  + (f", {stats.retries} retried" if stats.retries else "")
                  + (f", {stats.shared_hits} answered by other drivers' builds" if stats.shared_hits else "")
                  + (f", {stats.pruned} pruned by the estimate gate" if stats.pruned else "")
                  + (f", {stats.recovered} interrupted trial(s) recovered" if stats.recovered else ""))
    if stats.stopped and not stats.systematic:
        console.print(f"[yellow]stopped early:[/] {escape(stats.stopped)}")
    info = getattr(runner, "exact_info", None)
    if info:
        console.print(f"exact front: {info['front_size']} point(s) of a space of {info['space_size']} configurations, "
                      f"computed in {info['seconds']:.2f} s from {info['node_estimates']} per-layer estimates; "
                      f"{info['selected']} selected for evaluation")
    if stats.systematic:
        from bsopt.study.queries import error_headline

        head, hint = error_headline(stats.systematic)
        raise BsoptError(f"stopped: {stats.failure_streak} builds failed in a row and none succeeded (the limit is "
                         f"{runner.max_failures}; builds already running finish); the error: {head}",
                         where=f"study {ctx.name}",
                         hint=(f"{hint}; " if hint else "") + f"fix the cause, then continue with `bsopt study "
                         f"optimize {ctx.name}` (`bsopt study status {ctx.name}` lists the failures; "
                         "--max-failures 0 never stops)")
    if stats.feasible == 0:
        from bsopt.study.report import why_nothing_feasible

        why = why_nothing_feasible(ctx, info)
        if why:
            raise BsoptError(why.message, where=f"study {ctx.name}", hint=why.hint)
    if _large(ctx):
        console.print(f"{_large(ctx)} trials in the study: the Pareto set is one query away (it reads every "
                      f"trial): bsopt study pareto {ctx.name}")
    else:
        _print_pareto(ctx, limit=20)


def _large(ctx) -> int:
    """The study's trial count when summaries that read every trial should not run after a study
    (the run itself stays bounded in memory; these are on demand)."""
    from bsopt.study.dashboard import PUBLISH_MAX_TRIALS

    n = ctx.study._storage.get_n_trials(ctx.study._study_id)
    return n if n > PUBLISH_MAX_TRIALS else 0


@study_app.command("create")
def create(
    name: str = typer.Argument(..., help="Study name."),
    blueprint: Path = typer.Option(..., "--blueprint", "-b", help="Blueprint YAML."),
    model: str = typer.Option(None, "--model", "-m", help="Model (overrides the blueprint's model)."),
    storage: str = STORAGE,
    sampler: str = typer.Option(None, "--sampler", help="auto | exact | surrogate | tpe | nsga2 | nsga3 | gp | "
                                "random | grid | exhaustive (default: the blueprint's search.strategy, else auto)."),
    n_trials: int = typer.Option(None, "--n-trials", "-n", help="Run this many trials now."),
    timeout: float = typer.Option(None, "--timeout", help="Run for at most this many seconds now."),
    seed: int = typer.Option(None, "--seed", help="Sampler seed (reproducible studies)."),
    workers: int = WORKERS,
    executor: str = EXECUTOR,
    ray_address: str = RAY_ADDRESS,
    build_timeout: float = BUILD_TIMEOUT,
    min_free_disk: float = MIN_FREE_DISK,
    finn_budget: int = FINN_BUDGET,
    pareto_candidates: bool = PARETO_ONLY,
    max_failures: int = MAX_FAILURES,
    resume: bool = typer.Option(False, "--resume", help="Continue the study if it exists."),
    warm_start_from: str = typer.Option(None, "--warm-start-from", help="Start from earlier studies' results "
                                        "(comma-separated names): same space → their trials are added; compatible "
                                        "space → their best configurations are enqueued."),
    warm_start_storage: str = typer.Option(None, "--warm-start-storage", help="Storage of those studies "
                                           "(default: --storage)."),
    quiet: bool = QUIET,
    plot_out: Path = typer.Option(None, "--plot", help="Where to write the Pareto plot after running "
                                  "(default studies/NAME/pareto.html)."),
):
    """Create a study from a blueprint and, with --n-trials/--timeout, run it."""
    from bsopt.study.engine import create_study, study_names
    from bsopt.study.warmstart import source_names, warm_start

    _quiet_optuna()
    _check_run_options(n_trials=n_trials, timeout=timeout, workers=workers, executor=executor,
                       build_timeout=build_timeout, finn_budget=finn_budget, max_failures=max_failures)
    sources = source_names(warm_start_from)
    existed = name in study_names(storage)
    if sources:  # check the sources before creating anything
        available = set(study_names(warm_start_storage or storage))
        missing = [s for s in sources if s not in available]
        if missing:
            raise InputError(f"no study named {', '.join(repr(m) for m in missing)} to warm-start from",
                             where=warm_start_storage or storage or "studies/bsopt.db",
                             hint="studies: " + (", ".join(sorted(available)) or "none"))
    ctx = create_study(name, blueprint, model=model, storage=storage, sampler=sampler, seed=seed, resume=resume,
                       n_trials=n_trials)
    if sources and not existed:
        try:
            for report in warm_start(ctx, sources, warm_start_storage):
                console.print(escape(report.describe()))
        except InputError:
            import optuna

            from bsopt.study.engine import open_storage

            optuna.delete_study(study_name=name, storage=open_storage(storage))  # nothing half-made stays
            raise
    console.print(f"study [bold]{escape(name)}[/]: {ctx.sampler} sampler, objectives "
                  + ", ".join(f"{d} {m}" for m, d in zip(ctx.objectives.metrics, ctx.objectives.directions,
                                                          strict=True)))
    if n_trials is not None or timeout is not None:
        _run(ctx, n_trials, timeout, quiet=quiet, workers=workers, executor=executor, ray_address=ray_address,
             build_timeout=build_timeout, min_free_disk=min_free_disk, finn_budget=finn_budget,
             pareto_candidates=pareto_candidates, max_failures=max_failures)
        from bsopt.study.report import plot

        if _large(ctx) and plot_out is None:
            console.print(f"plot skipped for {_large(ctx)} trials: bsopt study plot {ctx.name}")
            return
        out = plot(ctx, plot_out or ctx.workdir / "pareto.html")
        console.print(f"Pareto plot written to [bold]{escape(str(out))}[/] (open it in a browser)")


@study_app.command("optimize")
def optimize(
    name: str = typer.Argument(...),
    storage: str = STORAGE,
    n_trials: int = typer.Option(None, "--n-trials", "-n", help="Run this many more trials (default: the "
                                 "blueprint's max_evaluations, else 100; exact: the whole front)."),
    timeout: float = typer.Option(None, "--timeout", help="Run for at most this many seconds."),
    workers: int = WORKERS,
    executor: str = EXECUTOR,
    ray_address: str = RAY_ADDRESS,
    build_timeout: float = BUILD_TIMEOUT,
    min_free_disk: float = MIN_FREE_DISK,
    finn_budget: int = FINN_BUDGET,
    pareto_candidates: bool = PARETO_ONLY,
    max_failures: int = MAX_FAILURES,
    quiet: bool = QUIET,
):
    """Run more trials of an existing study (also resumes an interrupted one; several drivers may share
    a study on a PostgreSQL storage)."""
    from bsopt.study.engine import load_study

    _quiet_optuna()
    _run(load_study(name, storage), n_trials, timeout, quiet=quiet, workers=workers, executor=executor,
         ray_address=ray_address, build_timeout=build_timeout, min_free_disk=min_free_disk, finn_budget=finn_budget,
         pareto_candidates=pareto_candidates, max_failures=max_failures)


@study_app.command("list")
def list_(storage: str = STORAGE):
    """List the studies in a storage."""
    import optuna

    from bsopt.study.engine import open_storage

    summaries = optuna.study.get_all_study_summaries(open_storage(storage))
    table = Table(title="studies")
    for col in ("name", "trials", "sampler", "objectives", "created"):
        table.add_column(col)
    for s in summaries:
        objs = s.user_attrs.get("objectives", {}).get("objectives", [])
        table.add_row(s.study_name, str(s.n_trials), str(s.user_attrs.get("sampler", "")),
                      ", ".join(o["metric"] for o in objs),
                      s.datetime_start.strftime("%Y-%m-%d %H:%M") if s.datetime_start else "")
    console.print(table)


@study_app.command("status")
def status(name: str = typer.Argument(...), storage: str = STORAGE,
           as_json: bool = typer.Option(False, "--json")):
    """Counts per state, feasible, cache hits, hypervolume, rate."""
    from bsopt.study.engine import load_study
    from bsopt.study.report import status as study_status

    st = study_status(load_study(name, storage))
    if as_json:
        print(json.dumps(st, indent=1))
        return
    states = ", ".join(f"{k} {v}" for k, v in sorted(st["states"].items()))
    rate = f"{st['trials_per_s']:.2f} trials/s" if st["trials_per_s"] else "n/a"
    if st["eta_seconds"] is not None:
        rate += (f"; {st['max_evaluations'] - min(st['trials'], st['max_evaluations'])} trials to the blueprint's "
                 f"max_evaluations, ETA {st['eta_seconds']:.0f} s")
    console.print(f"[bold]{escape(name)}[/] ({st['sampler']}, space {st['space_size'] or 'continuous'}): "
                  f"{st['trials']} trials ({states}); feasible {st['feasible']}; cache hits {st['cache_hits']}; "
                  f"Pareto set {st['pareto_size']}; hypervolume {st['hypervolume']:.4f}; {rate}"
                  + (f"; {st['timeouts']} timed out" if st["timeouts"] else "")
                  + (f"; {st['retried']} retried" if st["retried"] else ""))
    out = st["outcomes"]
    for g in out["failures"]:
        console.print(f"[red]failed {g['count']}x[/] ({g['status'] or 'FAILED'}, e.g. trial {g['trial']}): "
                      f"{escape(g['message'])}" + (f"\n  hint: {escape(g['hint'])}" if g["hint"] else "")
                      + (f"\n  log: {escape(g['log'])}" if g["log"] else ""))
    if out["failure_kinds"] > len(out["failures"]):
        console.print(f"… {out['failure_kinds'] - len(out['failures'])} other failure message(s)")
    if out["infeasible"]:
        console.print(f"infeasible {out['infeasible']}: " + ", ".join(
            f"{escape(name)} violated by {n}" for name, n in out["violated"].items()))
    for reason, n in out["pruned_reasons"].items():
        console.print(f"pruned {n}x by the estimate gate: {escape(reason)}")
    r = st.get("resources")
    if r:
        console.print(f"resources (last run): driver RSS {r['driver_rss_mb']:.0f} MB (peak {r['peak_driver_rss_mb']:.0f}), "
                      f"workers RSS {r['workers_rss_mb']:.0f} MB (peak {r['peak_workers_rss_mb']:.0f}), study folder "
                      f"{r['artifacts_mb']:.1f} MB, free disk {r['free_disk_gb']:.1f} GB")


def _sorted_front(ctx, sort: str | None):
    from bsopt.study import queries

    trials = ctx.study.get_trials(deepcopy=False)
    front = queries.pareto_front(trials, ctx.objectives.directions)
    key = sort or ctx.objectives.metrics[0]
    reverse = key.startswith("-")
    key = key.lstrip("-")
    front.sort(key=lambda t: queries.metrics_of(t).get(key, float("inf")), reverse=reverse)
    return front


def _print_pareto(ctx, limit: int | None = None, front=None):
    from bsopt.study.report import trial_row

    front = _sorted_front(ctx, None) if front is None else front
    metrics = ctx.objectives.metrics
    table = Table(title=f"feasible Pareto set of {ctx.name}: {len(front)} configuration(s)")
    for col in ("trial", "config_id", *metrics):
        table.add_column(col, justify="right" if col != "config_id" else "left")
    for t in front[:limit] if limit else front:
        row = trial_row(t, metrics)
        table.add_row(str(row["trial"]), str(row["config_id"]), *[_fmt(row[m]) for m in metrics])
    console.print(table)
    if limit and len(front) > limit:
        console.print(f"… {len(front) - limit} more: bsopt study pareto {ctx.name}")


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.2f}" if abs(v) < 1e6 else f"{v:,.0f}"
    return f"{v:,.0f}"


@study_app.command("pareto")
def pareto(
    name: str = typer.Argument(...),
    storage: str = STORAGE,
    where: str = typer.Option(None, "--where", help='Filter, e.g. "LUT < 20000 and throughput_fps > 1e5".'),
    sort: str = typer.Option(None, "--sort", help="Metric to sort by (prefix - for descending)."),
    objectives: str = typer.Option(None, "--objectives", help="Pareto set over these metrics instead of the "
                                   "study's objectives, e.g. throughput_fps,DSP (prefix +/- to force max/min)."),
    as_json: bool = typer.Option(False, "--json"),
    as_csv: bool = typer.Option(False, "--csv"),
):
    """The feasible non-dominated configurations."""
    from bsopt.study import results
    from bsopt.study.engine import load_study

    ctx = load_study(name, storage)
    objs = [o for o in objectives.split(",") if o.strip()] if objectives else None
    rows = results.pareto(ctx, objectives=objs, where=where,
                          sort=sort or ("-" if ctx.objectives.directions[0] == "maximize" else "")
                          + ctx.objectives.metrics[0])
    if as_json:
        print(json.dumps(rows, indent=1))
    elif as_csv:
        buf = io.StringIO()
        fields = ["trial", "config_id", *sorted({k for r in rows for k in r} - {"trial", "config_id", "feasible",
                                                                                "state"})]
        w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        print(buf.getvalue(), end="")
    else:
        metrics = results._resolve(objs, ctx.objectives.metrics, ctx.objectives.directions)[0]
        table = Table(title=f"feasible Pareto set of {ctx.name}" + (f" over {', '.join(metrics)}" if objs else "")
                      + f": {len(rows)} configuration(s)")
        for col in ("trial", "config_id", *metrics):
            table.add_column(col, justify="right" if col != "config_id" else "left")
        for r in rows:
            table.add_row(str(r["trial"]), str(r["config_id"]), *[_fmt(r.get(m)) for m in metrics])
        console.print(table)


@study_app.command("compare")
def compare(
    a: str = typer.Argument(..., help="A study."),
    b: str = typer.Argument(..., help="Another study with the same objectives."),
    storage: str = STORAGE,
    storage_b: str = typer.Option(None, "--storage-b", help="Storage of the second study (default: --storage)."),
    as_json: bool = typer.Option(False, "--json"),
):
    """Compare two studies' fronts: hypervolume (normalised together) and coverage."""
    from bsopt.study import results

    c = results.compare(a, b, storage=storage, storage_b=storage_b)
    if as_json:
        print(json.dumps(c, indent=1))
        return
    table = Table(title=f"{a} vs {b}: " + ", ".join(c["objectives"]))
    for col in ("study", "trials", "front", "hypervolume", "covers the other's front"):
        table.add_column(col, justify="left" if col == "study" else "right")
    for x, y in ((a, b), (b, a)):
        cov = c["coverage"][f"C({x},{y})"]
        table.add_row(x, str(c["trials"][x]), str(c["front_size"][x]), f"{c['hypervolume'][x]:.4f}",
                      "n/a" if cov is None else f"{100 * cov:.1f} %")
    console.print(table)


@study_app.command("best")
def best(
    name: str = typer.Argument(...),
    storage: str = STORAGE,
    metric: str = typer.Option(None, "--metric", help="Best feasible value of this metric (default: the knee "
                               "point of the Pareto front)."),
    direction: str = typer.Option(None, "--direction", help="minimize | maximize (default: the metric's)."),
):
    """The best feasible configuration for one metric, or the knee point of the front."""
    from bsopt.metrics import METRICS
    from bsopt.study import queries
    from bsopt.study.engine import load_study

    ctx = load_study(name, storage)
    trials = ctx.study.get_trials(deepcopy=False)
    if metric:
        if metric not in METRICS:
            raise InputError(f"unknown metric '{metric}'", where="--metric", hint=", ".join(METRICS))
        t = queries.best(trials, metric, direction or METRICS[metric].direction)
        how = f"best {metric}"
    else:
        t = queries.knee(queries.pareto_front(trials, ctx.objectives.directions), ctx.objectives.directions)
        how = "knee point of the Pareto front"
    if t is None:
        from bsopt.study.report import why_nothing_feasible

        why = why_nothing_feasible(ctx)
        raise InputError(why.message if why else f"study '{name}' has no feasible trial with {metric}",
                         hint=why.hint if why else "run more trials or relax constraints")
    console.print(f"{how}: trial {t.number} ({t.user_attrs.get('config_id')})")
    for k, v in sorted(queries.metrics_of(t).items()):
        console.print(f"  {k}: {_fmt(v)}")
    console.print(f"export it with: bsopt study export {name} --trial {t.number} --out DIR")


@study_app.command("export")
def export(
    name: str = typer.Argument(...),
    out: Path = typer.Option(..., "--out", "-o"),
    storage: str = STORAGE,
    trial: int = typer.Option(None, "--trial"),
    best_: bool = typer.Option(False, "--best", help="The knee point of the Pareto front."),
    pareto_: bool = typer.Option(False, "--pareto", help="Every configuration of the feasible Pareto set."),
):
    """Write BuildConfig, FINN folding and build configs, metrics and estimate reports."""
    from bsopt.study import queries
    from bsopt.study.engine import load_study
    from bsopt.study.report import export_trials

    ctx = load_study(name, storage)
    if sum([trial is not None, best_, pareto_]) != 1:
        raise InputError("choose one of --trial N, --best, --pareto", where="bsopt study export")
    trials = ctx.study.get_trials(deepcopy=False)
    if trial is not None:
        chosen = [t for t in trials if t.number == trial]
        if not chosen:
            raise InputError(f"study '{name}' has no trial {trial}", hint=f"trials 0..{len(trials) - 1}")
    elif best_:
        knee = queries.knee(queries.pareto_front(trials, ctx.objectives.directions), ctx.objectives.directions)
        chosen = [knee] if knee else []
    else:
        chosen = queries.pareto_front(trials, ctx.objectives.directions)
    if not chosen:
        from bsopt.study.report import why_nothing_feasible

        why = why_nothing_feasible(ctx)
        raise InputError("nothing to export: " + (why.message if why else "no feasible trial"),
                         hint=why.hint if why else "run more trials")
    dirs = export_trials(ctx, chosen, out)
    console.print(f"exported {len(dirs)} configuration(s) to [bold]{escape(str(out))}[/]")


@study_app.command("plot")
def plot(name: str = typer.Argument(...), out: Path = typer.Option(Path("pareto.html"), "--out", "-o"),
         storage: str = STORAGE):
    """Write a plotly page with the Pareto front and the hypervolume history."""
    from bsopt.study.engine import load_study
    from bsopt.study.report import plot as make_plot

    console.print(f"wrote [bold]{escape(str(make_plot(load_study(name, storage), out)))}[/]")


@study_app.command("delete")
def delete(name: str = typer.Argument(...), storage: str = STORAGE,
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")):
    """Delete a study (its trials; the shared build cache is kept)."""
    import optuna

    from bsopt.study.engine import open_storage, study_names

    if name not in study_names(storage):
        raise InputError(f"no study named '{name}'")
    if not yes and not typer.confirm(f"delete study '{name}' and all its trials?"):
        raise typer.Exit(1)
    optuna.delete_study(study_name=name, storage=open_storage(storage))
    console.print(f"deleted {escape(name)}")
