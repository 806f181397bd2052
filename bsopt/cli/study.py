"""``bsopt study …``: create and run studies, and query their results."""

from __future__ import annotations

import csv
import io
import json
import sys
import warnings
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from bsopt.cli.common import Console
from bsopt.errors import BsoptError, InputError

study_app = typer.Typer(help="Design-space exploration studies (Optuna) and their results.", no_args_is_help=True)
console = Console(width=None if sys.stdout.isatty() else 160)

STORAGE = typer.Option(None, "--storage", help="Optuna storage URL (default: bsopt.db in the study root, sqlite:///studies/bsopt.db) or a "
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
MIN_FREE_DISK = typer.Option(1.0, "--min-free-disk", help="Stop launching builds when free disk in the study folder "
                             "falls below this many GB.")


def _quiet_optuna() -> None:
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


def _run(study, n_trials, timeout, *, quiet, storage=None, **options):
    try:
        stats = study.optimize(n_trials=n_trials, timeout=timeout, progress=not quiet, **options)
    except KeyboardInterrupt:  # the runner stored every finished trial on its way out
        from bsopt.storage.urls import shown_url

        where = f" --storage {shown_url(storage)}" if storage else ""
        Console(stderr=True).print(f"interrupted: {study.n_trials} trial(s) of study {escape(study.name)} are stored; "
                                   f"resume with: bsopt study optimize {escape(study.name)}{escape(where)}",
                                   highlight=False, soft_wrap=True)
        raise
    _print_run(study, stats)
    if stats.feasible == 0:
        why = study.why_nothing_feasible()
        if why:
            raise BsoptError(why.message, where=f"study {study.name}", hint=why.hint)
    # reads two of each trial's ~30 attributes, and all of them for the front only: bounded for any study
    _print_front(study, study.pareto(), study.metric_names(), f"feasible Pareto set of {study.name}", limit=20)


def _print_run(study, stats) -> None:
    if hasattr(stats, "trainings"):  # a co-design run
        console.print(f"{stats.trainings} quantisation(s): {stats.builds} trained ({stats.trained_epochs} epochs, "
                      f"{stats.training_seconds:.0f} s), {stats.cache_hits} from cache, {stats.pruned} stopped early "
                      f"by the pruner ({stats.epochs_saved} epochs saved), {stats.failed} failed"
                      + (f" ({stats.unbuildable} not trained: FINN cannot build them)" if stats.unbuildable else "")
                      + (f", {stats.duplicates} proposed again" if stats.duplicates else "")
                      + (f", {stats.recovered} interrupted trial(s) recovered" if stats.recovered else "")
                      + f"; {stats.designs} designs from their exact hardware fronts, {stats.feasible} feasible")
        if stats.stopped:
            console.print(f"[yellow]stopped early:[/] {escape(stats.stopped)}")
        return
    console.print(f"{stats.trials} trial(s): {stats.builds} built, {stats.cache_hits} from cache, "
                  f"{stats.feasible} feasible, {stats.failed} failed"
                  + (f", {stats.timeouts} timed out" if stats.timeouts else "")
                  + (f", {stats.retries} retried" if stats.retries else "")
                  + (f", {stats.shared_hits} answered by other drivers' builds" if stats.shared_hits else "")
                  + (f", {stats.pruned} pruned by the estimate gate" if stats.pruned else "")
                  + (f", {stats.recovered} interrupted trial(s) recovered" if stats.recovered else ""))
    if stats.stopped:
        console.print(f"[yellow]stopped early:[/] {escape(stats.stopped)}")
    info = study.exact_front
    if info:
        console.print(f"exact front: {info['front_size']} point(s) of a space of {info['space_size']} configurations, "
                      f"computed in {info['seconds']:.2f} s from {info['node_estimates']} per-layer estimates; "
                      f"{info['selected']} selected for evaluation")


def _large(study) -> int:
    """The study's trial count when the plot (a page with every trial's point) should not be written
    after a run (it stays available on demand: bsopt study plot)."""
    from bsopt.study.dashboard import PUBLISH_MAX_TRIALS

    n = study.n_trials
    return n if n > PUBLISH_MAX_TRIALS else 0


@study_app.command("create")
def create(
    name: str = typer.Argument(..., help="Study name."),
    blueprint: Path = typer.Option(..., "--blueprint", "-b", help="Blueprint YAML."),
    model: str = typer.Option(None, "--model", "-m", help="Model (.onnx, or a zoo reference such as 'zoo:bert?w=4&a=4&layers=2'); overrides the blueprint's model."),
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
                                  "(default: pareto.html in the study's folder, studies/NAME/)."),
):
    """Create a study from a blueprint and, with --n-trials/--timeout, run it."""
    from bsopt.study.api import RunOptions, create_study

    _quiet_optuna()
    options = dict(workers=workers, executor=executor, ray_address=ray_address, build_timeout=build_timeout,
                   min_free_disk_gb=min_free_disk, finn_budget=finn_budget, pareto_candidates=pareto_candidates,
                   max_failures=max_failures)
    RunOptions.of(options).check(n_trials, timeout)  # before anything is created
    study = create_study(name, blueprint, model=model, storage=storage, sampler=sampler, seed=seed, resume=resume,
                         n_trials=n_trials, warm_start_from=warm_start_from, warm_start_storage=warm_start_storage)
    for report in study.warm_starts:
        console.print(escape(report.describe()))
    console.print(f"study [bold]{escape(name)}[/]: {study.strategy} sampler, objectives "
                  + ", ".join(f"{d} {m}" for m, d in study.objectives))
    if n_trials is not None or timeout is not None or (study.codesign and not (resume and study.n_trials)):
        existed = resume and study.n_trials > 0  # (a new co-design study runs its blueprint's budget)
        try:
            _run(study, n_trials, timeout, quiet=quiet, storage=storage, **options)
        except InputError:
            if not existed and study.n_trials == 0:  # a mistake found at the start: nothing half-made stays,
                from bsopt.study.api import delete_study  # and the corrected command is not "already exists"

                delete_study(name, storage)
            raise
        if _large(study) and plot_out is None:
            console.print(f"plot skipped for {_large(study)} trials: bsopt study plot {name}")
            return
        out = study.plot(plot_out)
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
    from bsopt.study.api import RunOptions, load_study

    _quiet_optuna()
    options = dict(workers=workers, executor=executor, ray_address=ray_address, build_timeout=build_timeout,
                   min_free_disk_gb=min_free_disk, finn_budget=finn_budget, pareto_candidates=pareto_candidates,
                   max_failures=max_failures)
    RunOptions.of(options).check(n_trials, timeout)
    _run(load_study(name, storage), n_trials, timeout, quiet=quiet, storage=storage, **options)


@study_app.command("list")
def list_(storage: str = STORAGE, as_json: bool = typer.Option(False, "--json", help="One JSON object per study, "
                                                                 "in a list.")):
    """List the studies in a storage."""
    from bsopt.study.api import list_studies

    studies = list_studies(storage)
    if as_json:
        print(json.dumps([{**s, "created": s["created"].isoformat() if s["created"] else None} for s in studies],
                         indent=1))
        return
    table = Table(title="studies")
    for col in ("name", "trials", "sampler", "objectives", "created"):
        table.add_column(col)
    for s in studies:
        table.add_row(s["name"], str(s["trials"]), s["sampler"], ", ".join(s["objectives"]),
                      s["created"].strftime("%Y-%m-%d %H:%M") if s["created"] else "")
    console.print(table)


@study_app.command("status")
def status(name: str = typer.Argument(...), storage: str = STORAGE,
           as_json: bool = typer.Option(False, "--json")):
    """Counts per state, feasible, cache hits, hypervolume, rate."""
    from bsopt.study.api import load_study

    st = load_study(name, storage).status()
    if as_json:
        print(json.dumps(st, indent=1))
        return
    states = ", ".join(f"{k} {v}" for k, v in sorted(st["states"].items()))
    unit = "quantisations" if st.get("trainings") is not None else "trials"
    rate = f"{st['trials_per_s']:.2f} {unit}/s over the study's runs" if st["trials_per_s"] else "n/a"
    if st.get("exact_front_size") is not None and st["remaining"] == 0:
        rate += f"; its exact front ({st['exact_front_size']} points) is fully evaluated"
    elif st.get("exact_front_size") is not None and st["eta_seconds"] is not None:
        rate += f"; {st['remaining']} {unit} to the end of the exact front, ETA {st['eta_seconds']:.0f} s"
    elif st["eta_seconds"] is not None:
        rate += (f"; {st['remaining']} {unit} to the blueprint's max_evaluations, ETA {st['eta_seconds']:.0f} s")
    console.print(f"[bold]{escape(name)}[/] ({st['sampler']}, space {st['space_size'] or 'continuous'}): "
                  f"{st['trials']} trials ({states}); feasible {st['feasible']}; cache hits {st['cache_hits']}; "
                  f"Pareto set {st['pareto_size']}; hypervolume {st['hypervolume']:.4f}"
                  + ("" if st["hypervolume_fixed"] else " (provisional)") + f"; {rate}"
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
    for reason, n in out.get("codegen", {}).items():
        console.print(f"  FINN's code generation rejects {n}x: {escape(reason)}")
    by = "" if st.get("trainings") is not None else " by the estimate gate"
    for reason, n in out["pruned_reasons"].items():
        console.print(f"pruned {n}x{by}: {escape(reason)}")
    if st["hypervolume_box"]:
        box = st["hypervolume_box"]
        from bsopt.study.queries import HV_MEANING

        bounds = ", ".join(f"{o['metric']} {_bound(lo, o['direction'])}..{_bound(hi, o['direction'])}" for o, lo, hi
                           in zip(st["objectives"]["objectives"], box["ideal"], box["nadir"], strict=True))
        console.print(f"hypervolume: {HV_MEANING}" + ("" if st["hypervolume_fixed"] else
                      " — provisional: the box of the trials so far") + f"; box {bounds}")
    r = st.get("resources")
    if r:
        console.print(f"resources (last run): driver RSS {r['driver_rss_mb']:.0f} MB (peak {r['peak_driver_rss_mb']:.0f}), "
                      f"workers RSS {r['workers_rss_mb']:.0f} MB (peak {r['peak_workers_rss_mb']:.0f}), study folder "
                      f"{r['artifacts_mb']:.1f} MB, free disk {r['free_disk_gb']:.1f} GB")


def _bound(v: float, direction: str) -> str:
    """A box bound in the metric's own sign (the box is stored in minimisation form)."""
    return f"{(-v if direction == 'maximize' else v) + 0.0:.4g}"  # + 0.0: no "-0"


def _print_front(study, rows, metrics, title, limit: int | None = None):
    table = Table(title=f"{title}: {len(rows)} configuration(s)")
    quantized = any("quantization" in r for r in rows)  # a co-design study: each design's bit widths
    for col in ("trial", "config_id", *(["quantization"] if quantized else []), *metrics):
        table.add_column(col, justify="left" if col in ("config_id", "quantization") else "right")
    for r in rows[:limit] if limit else rows:
        table.add_row(str(r["trial"]), str(r["config_id"]), *([str(r.get("quantization", ""))] if quantized else []),
                      *[_fmt(r.get(m)) for m in metrics])
    console.print(table)
    if limit and len(rows) > limit:
        console.print(f"… {len(rows) - limit} more: bsopt study pareto {study.name}")


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, str | bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, float) and not v.is_integer():
        if abs(v) < 10:  # fractions (accuracy, utilisation): their digits matter
            return f"{v:.4f}"
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
    from bsopt.study.api import load_study

    if as_json and as_csv:
        raise InputError("--json and --csv are two output formats: give one", where="bsopt study pareto")
    study = load_study(name, storage)
    rows = study.pareto(objectives=objectives, where=where, sort=sort)  # "LUT,-BRAM_18K": the API splits it
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
        names = study.metric_names(objectives)
        _print_front(study, rows, names, f"feasible Pareto set of {study.name}"
                     + (f" over {', '.join(names)}" if objectives and objectives.strip(", ") else ""))


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
    where: str = typer.Option(None, "--where", help='Only trials satisfying this, e.g. "LUT < 20000".'),
    as_json: bool = typer.Option(False, "--json", help="The configuration's record as JSON."),
):
    """The best feasible configuration for one metric, or the knee point of the front."""
    from bsopt.study.api import load_study

    if direction not in (None, "minimize", "maximize"):
        raise InputError(f"--direction must be minimize or maximize, got '{direction}'", where="--direction")
    study = load_study(name, storage)
    row = study.best(None if metric is None else {"minimize": "-", "maximize": "+", None: ""}[direction] + metric,
                     where=where)
    if row is None:
        why = None if where else study.why_nothing_feasible()
        raise InputError(why.message if why else f"study '{name}' has no feasible trial"
                         + (f" with {metric}" if metric else "") + (f" where {where}" if where else ""),
                         hint=why.hint if why else "run more trials, relax the constraints or the --where filter")
    if as_json:
        print(json.dumps(row, indent=1, default=str))
        return
    how = f"best {metric}" if metric else "knee point of the Pareto front"
    console.print(f"{how}: trial {row['trial']} ({row['config_id']})")
    for k, v in sorted(row.items()):
        if k not in ("trial", "config_id", "state", "feasible"):
            console.print(f"  {k}: {_fmt(v)}")
    console.print(f"export it with: bsopt study export {name} --trial {row['trial']} --out DIR")


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
    from bsopt.study.api import load_study

    if sum([trial is not None, best_, pareto_]) != 1:
        raise InputError("choose one of --trial N, --best, --pareto", where="bsopt study export")
    study = load_study(name, storage)
    dirs = study.export(out, trials=trial if trial is not None else "best" if best_ else "pareto")
    console.print(f"exported {len(dirs)} configuration(s) to [bold]{escape(str(out))}[/]")


@study_app.command("plot")
def plot(name: str = typer.Argument(...),
         out: Path = typer.Option(None, "--out", "-o", help="The HTML file (default: pareto.html in the "
                                  "study's folder)."),
         storage: str = STORAGE):
    """Write a plotly page with the Pareto front and the hypervolume history."""
    from bsopt.study.api import load_study

    console.print(f"wrote [bold]{escape(str(load_study(name, storage).plot(out)))}[/]")


@study_app.command("delete")
def delete(name: str = typer.Argument(...), storage: str = STORAGE,
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
           keep_files: bool = typer.Option(False, "--keep-files", help="Keep the study's folder (logs, plots, "
                                           "FINN build folders).")):
    """Delete a study: its trials and its folder (the shared build cache is kept)."""
    from bsopt.study.api import delete_study, list_studies

    if name not in {s["name"] for s in list_studies(storage)}:
        raise InputError(f"no study named '{name}'")
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"study '{name}' not deleted: there is no terminal to confirm it on",
                             hint=f"add --yes to delete without asking: bsopt study delete {name} --yes")
        what = "all its trials" + ("" if keep_files else " and its folder")
        if not typer.confirm(f"delete study '{name}' and {what}?"):
            console.print(f"study {escape(name)} kept")
            raise typer.Exit(1)
    folder = delete_study(name, storage, keep_files=keep_files)
    console.print(f"deleted {escape(name)}" + (f" and its folder {escape(str(folder))}" if folder else ""))
