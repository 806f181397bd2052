"""What optuna-dashboard shows of a bsopt study: trial artifacts and pinned figures.

After each run the runner publishes, for the feasible Pareto set (and for every configuration an
expensive backend built): a build summary (metrics with units, constraints, status, where and how
long it was built), the FINN folding and specialize configs, and the estimate/FINN report files —
uploaded as trial artifacts into a file-system artifact store (default ``studies/artifacts``; its
path is recorded on the study as ``artifact_dir``). Each study also gets two plotly figures pinned
to it: the Pareto front and the hypervolume history (the dashboard has no hypervolume chart).
``bsopt dashboard`` serves the storage with that artifact store.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from bsopt import settings
from bsopt.metrics import METRICS
from bsopt.storage import rdb
from bsopt.study import queries

#: figures and artifacts are published for studies up to this many trials at the end of a run
PUBLISH_MAX_TRIALS = 20_000


def artifact_dir(ctx) -> Path:
    stored = ctx.study.user_attrs.get("artifact_dir")
    return Path(stored) if stored else settings.artifact_root().resolve()


def artifact_store(path: str | Path):
    from optuna.artifacts import FileSystemArtifactStore

    Path(path).mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def metric_summary(metrics: dict[str, float]) -> str:
    """``throughput_fps 55,804 1/s · LUT 2,012 LUTs · …`` (what the dashboard shows per trial)."""
    parts = []
    for k, v in metrics.items():
        unit = METRICS[k].unit if k in METRICS else ""
        if isinstance(v, float) and not v.is_integer():
            text = f"{v:,.4g}" if abs(v) < 100 else f"{v:,.0f}"
        else:
            text = f"{v:,.0f}" if isinstance(v, (int, float)) else str(v)
        parts.append(f"{k} {text}{(' ' + unit) if unit and unit != 'fraction' else ''}")
    return " · ".join(parts)


def build_summary(ctx, t: FrozenTrial) -> dict[str, Any]:
    metrics = queries.metrics_of(t)
    return {
        "study": ctx.name, "trial": t.number, "state": t.state.name, "config_id": t.user_attrs.get("config_id"),
        "status": t.user_attrs.get("status"), "feasible": queries.feasible(t),
        "objectives": dict(zip(ctx.objectives.metrics, t.values, strict=True)) if t.values else None,
        "metrics": {k: {"value": v, "unit": METRICS[k].unit if k in METRICS else ""} for k, v in metrics.items()},
        "estimate": {k[2:]: v for k, v in t.user_attrs.items() if k.startswith("e:")} or None,
        "constraints": {k[2:]: v for k, v in t.user_attrs.items() if k.startswith("c:")},
        "backend": t.user_attrs.get("backend"), "worker": t.user_attrs.get("worker"),
        "cache_hit": t.user_attrs.get("cache_hit"), "build_seconds": t.user_attrs.get("build_seconds"),
        "reason": t.user_attrs.get("pruned_reason") or t.user_attrs.get("error"),
        "params": dict(t.params),
    }


def _has_artifacts(storage, trial_id: int) -> bool:
    attrs = storage.get_trial_system_attrs(trial_id)
    return any(k.startswith("artifacts:") for k in attrs)


def upload_trial(ctx, t: FrozenTrial, store, *, report_dir: str | Path | None = None, estimator=None,
                 spaces=None) -> int:
    """Upload a finished trial's summary, configs and reports; returns the number of files.
    ``spaces``: a :class:`~bsopt.study.trial_space.TrialSpaces` shared by the trials of one upload."""
    from bsopt.study.trial_space import TrialSpaces

    storage = ctx.study._storage
    if _has_artifacts(storage, t._trial_id):
        return 0
    cfg, _, estimator = (spaces or TrialSpaces(ctx, estimator)).config(t)
    with tempfile.TemporaryDirectory(prefix="bsopt-artifacts-") as tmp:
        d = Path(tmp)
        files = [d / "build_summary.json"]
        files[0].write_text(json.dumps(build_summary(ctx, t), indent=1, default=str))
        if cfg.folding_config is not None:
            files.append(d / "folding_config.json")
            files[-1].write_text(json.dumps(cfg.folding_config, indent=2))
        if cfg.specialize_config is not None:
            files.append(d / "specialize_layers_config.json")
            files[-1].write_text(json.dumps(cfg.specialize_config, indent=2))
        reports = Path(report_dir) if report_dir else None
        if reports is None and t.state == TrialState.COMPLETE:
            try:
                estimator.estimate(cfg).write_reports(d / "report")
                reports = d / "report"
            except Exception:  # noqa: BLE001 - the summary and configs still go up
                reports = None
        if reports is not None and reports.is_dir():
            files += sorted(p for p in reports.iterdir() if p.is_file() and p.suffix in (".json", ".rpt", ".txt")
                            and p.stat().st_size < 5_000_000)
        for f in files:
            attach(ctx, t, f, store)
    return len(files)


def attach(ctx, t: FrozenTrial, path: Path, store) -> str:
    """Upload one file as an artifact of trial ``t`` — also when ``t`` is finished, which Optuna's
    ``upload_artifact`` refuses. Where the storage allows no such write (journal, in-memory), the
    file becomes a study artifact named ``trial<N>-<file>``."""
    import mimetypes
    import uuid

    try:
        from optuna.artifacts._upload import ARTIFACTS_ATTR_PREFIX
    except ImportError:  # pragma: no cover - other Optuna versions
        ARTIFACTS_ATTR_PREFIX = "artifacts:"

    artifact_id = str(uuid.uuid4())
    mimetype = "application/json" if path.suffix == ".json" else (mimetypes.guess_type(path.name)[0] or "text/plain")
    meta = {"artifact_id": artifact_id, "filename": path.name, "mimetype": mimetype, "encoding": None}
    with open(path, "rb") as fh:
        store.write(artifact_id, fh)
    key = ARTIFACTS_ATTR_PREFIX + artifact_id
    storage = ctx.study._storage
    if not t.state.is_finished():
        storage.set_trial_system_attr(t._trial_id, key, json.dumps(meta))
    elif not rdb.set_finished_trial_system_attr(ctx.study, t._trial_id, key, json.dumps(meta)):
        meta["filename"] = f"trial{t.number}-{path.name}"
        storage.set_study_system_attr(ctx.study._study_id, key, json.dumps(meta))
    return artifact_id


def pin_figures(ctx, trials: list[FrozenTrial] | None = None) -> list[str]:
    """Pin the Pareto and hypervolume-history figures to the study (replacing earlier versions)."""
    try:
        from optuna_dashboard import save_plotly_graph_object
    except ImportError:
        return []
    from bsopt.study.report import hypervolume_figure, pareto_figure

    return [save_plotly_graph_object(ctx.study, pareto_figure(ctx, trials), graph_object_id="bsopt-pareto"),
            save_plotly_graph_object(ctx.study, hypervolume_figure(ctx, trials),
                                     graph_object_id="bsopt-hypervolume")]


def publish(ctx, *, extra: dict[int, str | None] | None = None, directory: str | Path | None = None,
            limit: int = 200, estimator=None) -> dict[str, int]:
    """Upload artifacts for the feasible front and for ``extra`` trials (trial id → the folder of the
    reports their build wrote, or None) and pin the figures."""
    path = Path(directory).resolve() if directory else artifact_dir(ctx)
    if ctx.study.user_attrs.get("artifact_dir") != str(path):
        ctx.study.set_user_attr("artifact_dir", str(path))
    store = artifact_store(path)
    trials = rdb.read_trials(ctx.study)
    by_id = {t._trial_id: t for t in trials}
    chosen: dict[int, str | None] = {t._trial_id: None for t in
                                     queries.pareto_front(trials, ctx.objectives.directions)[:limit]}
    for tid, reports in (extra or {}).items():
        if tid in by_id and by_id[tid].state.is_finished():
            chosen[tid] = reports
    from bsopt.study.trial_space import TrialSpaces

    spaces = TrialSpaces(ctx, estimator)  # one lowering per model for all the trials' reports
    uploaded = sum(upload_trial(ctx, rdb.full_trial(ctx.study, by_id[tid]), store, report_dir=reports,
                                spaces=spaces)
                   for tid, reports in chosen.items())
    figures = pin_figures(ctx, trials)
    return {"trials": len(chosen), "files": uploaded, "figures": len(figures)}


def _check_port(host: str, port: int) -> None:
    """An InputError for a port that is out of range or that another program listens on."""
    import socket

    from bsopt.errors import InputError

    if not 0 < port < 65536:
        raise InputError(f"port {port} is out of range", where="--port", hint="a port from 1 to 65535, e.g. 8080")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InputError(f"cannot listen on host '{host}': {exc.strerror or exc}", where="--host",
                         hint="an address of this machine, e.g. 127.0.0.1") from exc
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(addr)
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", where="--port",
                             hint="another program (an earlier dashboard?) uses it: choose another port with "
                             "--port, or stop that program" if exc.errno in (98, 48) else
                             "choose another port (ports below 1024 need administrator rights) or host") from exc


def serve(storage_url: str | None, *, host: str = "127.0.0.1", port: int = 8080,
          artifact_path: str | Path | None = None, ready=None) -> None:
    """Run optuna-dashboard on the storage with bsopt's artifact store (blocks). ``ready()`` is called
    once the port is known to be free, before serving."""
    from bsopt.errors import MissingDependencyError
    from bsopt.storage import open_storage, studies

    try:
        from optuna_dashboard import run_server
    except ImportError as exc:
        raise MissingDependencyError("bsopt dashboard needs optuna-dashboard",
                                     hint='pip install "bsopt[dashboard]"') from exc
    _check_port(host, port)  # before printing anything about listening
    storage = open_storage(storage_url)
    if artifact_path is None:
        dirs = {s.user_attrs.get("artifact_dir") for s in studies(storage)} - {None}
        artifact_path = sorted(dirs)[0] if dirs else settings.artifact_root()
    if ready is not None:
        ready()
    run_server(storage, host=host, port=port, artifact_store=artifact_store(artifact_path))
