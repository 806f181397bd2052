"""Study outputs: exported build files, plots, and status summaries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from bsopt.backends.finn_config import dataflow_build_config
from bsopt.metrics import METRICS
from bsopt.storage import rdb
from bsopt.study import queries
from bsopt.study.objectives import CODEGEN_CONSTRAINT

#: the user attributes a status or a why-nothing-feasible answer reads (not the ~20 metrics per trial)
OUTCOME_KEYS = ("feasible", "cache_hit", "status", "warnings", "error", "log", "pruned_reason")


def outcome_trials(study) -> list:
    """Every trial with what says how it ended: the attributes :data:`OUTCOME_KEYS`, and its constraint
    violations (``c:``) where they matter — completed trials bsopt did not record as feasible (the
    violated constraints are reported) or that predate that record — so that ``queries.feasible``
    answers as for a full read, reading a few attributes of most trials."""
    trials = rdb.read_trials(study, keys=OUTCOME_KEYS)
    check = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("feasible") is not True]
    rdb.add_attrs(study, check, ("c:",))
    return trials


def status(ctx) -> dict[str, Any]:
    study = ctx.study
    trials = outcome_trials(study)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    feasible = [t for t in trials if queries.feasible(t)]
    box = queries.study_box(study)
    fixed = box is not None
    if box is None:  # provisional: the box of the feasible trials so far
        box = queries.trials_box(feasible, ctx.objectives.directions)
    front = queries.pareto_front(feasible, ctx.objectives.directions, all_feasible=True)
    started = [t.datetime_start.timestamp() for t in trials if t.datetime_start]
    ended = [t.datetime_complete.timestamp() for t in trials if t.datetime_complete]
    span = (max(ended) - min(started)) if started and ended else 0.0
    attrs = study.user_attrs
    size = attrs.get("space_size")
    rate = (len(ended) / span) if span > 0 else None
    budget = ctx.space.search_config.max_evaluations
    done = len(trials)
    codesign = ctx.space.blueprint.quantization is not None
    if codesign:  # the budget counts quantisations trained, each adding its front's designs
        marks = rdb.read_trials(study, keys=("epochs_trained", "training_trial"))
        done = sum(1 for t in marks if "epochs_trained" in t.user_attrs and "training_trial" not in t.user_attrs)
        rate = None if rate is None else rate * done / max(len(ended), 1)
    remaining = max(budget - done, 0) if budget else None
    front_size = (attrs.get("exact_front") or {}).get("front_size")  # recorded by the exact strategy alone
    if front_size is not None and not codesign:  # an exact study ends with its front, whatever the budget
        remaining = max(front_size - done, 0) if budget is None else min(max(front_size - done, 0), remaining)
    return {
        "study": ctx.name,
        "sampler": attrs.get("sampler"),
        "space_size": int(size) if size else None,
        "states": counts,
        "trials": len(trials),
        "trainings": done if codesign else None,
        "feasible": len(feasible),
        "cache_hits": sum(1 for t in trials if t.user_attrs.get("cache_hit")),
        "timeouts": sum(1 for t in trials if t.user_attrs.get("status") == "TIMEOUT"),
        "retried": sum(1 for t in trials if "retried after" in str(t.user_attrs.get("warnings", ""))),
        "pareto_size": len(front),
        "hypervolume": queries.front_hypervolume(front, ctx.objectives.directions, box),
        "hypervolume_box": box,
        "hypervolume_fixed": fixed,
        "trials_per_s": rate,
        "max_evaluations": budget,
        "exact_front_size": front_size,
        "remaining": remaining,
        "eta_seconds": (remaining / rate) if rate and remaining is not None else None,
        "objectives": ctx.objectives.describe(),
        "resources": attrs.get("resources"),
        "outcomes": queries.outcome_summary(trials),
    }


@dataclass
class NothingFeasible:
    message: str
    hint: str


def why_nothing_feasible(ctx, exact_info: dict | None = None) -> NothingFeasible | None:
    """None when the study has a feasible trial; else what happened instead — how many builds failed
    (the most frequent message), how many were infeasible and by which constraints, how many the
    estimate gate pruned and why, or that the exact strategy's front is empty — and what to do."""
    trials = outcome_trials(ctx.study)
    if any(queries.feasible(t) for t in trials):
        return None
    summary = queries.outcome_summary(trials)
    why = []
    if summary["failed"]:
        top = summary["failures"][0]
        why.append(f"{summary['failed']} failed (most often, {top['count']}x: {top['message']})")
    if summary["infeasible"]:
        why.append(f"{summary['infeasible']} infeasible (" + ", ".join(
            f"{name} violated by {n}" for name, n in list(summary["violated"].items())[:4]) + ")")
    if summary["pruned"]:
        reason, n = next(iter(summary["pruned_reasons"].items()))
        why.append(f"{summary['pruned']} pruned by the estimate gate (most often, {n}x: {reason})")
    if not trials:
        why = ["no trial was run"]
        if exact_info is not None and not exact_info.get("front_size"):
            why = ["the exact front is empty: " + ("; ".join(exact_info.get("why_empty") or []) or
                                                   "no configuration of the space meets the constraints and the "
                                                   "device budget")]
    status = f"`bsopt study status {ctx.name}` groups the reasons"
    if summary["failed"] and summary["failed"] >= summary["infeasible"] + summary["pruned"]:
        top = summary["failures"][0]
        hint = (f"{top['hint']}; " if top["hint"] else "") + f"fix what fails the builds ({status})"
    elif summary.get("codegen") and summary["violated"].get(CODEGEN_CONSTRAINT, 0) >= summary["infeasible"]:
        reason = next(iter(summary["codegen"]))
        hint = (f"FINN's code generation rejects these configurations, e.g. {reason}: change the folding section "
                f"so FINN can build it (`bsopt blueprint validate` checks it; {status})")
    elif trials or why[0].startswith("the exact front"):
        hint = f"relax the constraints or the resource limits, or choose a larger part ({status})"
    else:
        hint = "run trials: --n-trials N"
    return NothingFeasible(f"no feasible configuration in study '{ctx.name}' ({len(trials)} trial(s)): "
                           + "; ".join(why), hint)


def _copy_model(src, dst: Path) -> None:
    import gzip
    import shutil

    if not src or str(src).startswith("zoo:") or not Path(src).exists():
        return
    if str(src).endswith(".gz"):
        with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    else:
        shutil.copyfile(src, dst)


def trial_row(t: FrozenTrial, metrics: list[str]) -> dict[str, Any]:
    m = queries.metrics_of(t)
    return {"trial": t.number, "config_id": t.user_attrs.get("config_id"), **{k: m.get(k) for k in metrics},
            "feasible": queries.feasible(t)}


def export_trials(ctx, trials: list[FrozenTrial], out: str | Path) -> list[Path]:
    """Per trial: BuildConfig JSON, FINN folding/specialize configs and dataflow_build_config.json,
    metrics, and FINN's estimate reports."""
    from bsopt.paths import output_dir
    from bsopt.study.trial_space import TrialSpaces

    out = output_dir(out, "the export folder")
    written = []
    spaces = TrialSpaces(ctx)
    for t in trials:
        t = rdb.full_trial(ctx.study, t)  # with its parameters
        cfg, space, backend = spaces.config(t)  # a co-design trial: its trained model's space
        d = out / cfg.config_id
        d.mkdir(parents=True, exist_ok=True)
        (d / "build_config.json").write_text(cfg.to_json(indent=2))
        if cfg.folding_config is not None:
            (d / "folding_config.json").write_text(json.dumps(cfg.folding_config, indent=2))
        if cfg.specialize_config is not None:
            (d / "specialize_layers_config.json").write_text(json.dumps(cfg.specialize_config, indent=2))
        (d / "dataflow_build_config.json").write_text(json.dumps(dataflow_build_config(cfg), indent=2))
        _copy_model(cfg.model_path or space.model_path, d / "model.onnx")  # ready for build_dataflow
        record = {"trial": t.number, "state": t.state.name, "feasible": queries.feasible(t), "values": t.values,
                  "metrics": queries.metrics_of(t), "constraints": t.constraints}
        if "quantization" in t.user_attrs:  # a co-design design: how its model was quantised and trained
            training = ctx.space.blueprint.training
            record["quantization"] = {k: t.user_attrs.get(k) for k in ("quantization", "weight_bits", "act_bits",
                                                                      "accuracy_curve", "epochs_trained")}
            record["quantization"].update(epochs=training.epochs, seed=training.seed,
                                          data=training.trainer or training.data)
        (d / "metrics.json").write_text(json.dumps(record, indent=2, default=str))
        try:
            backend.estimate(cfg).write_reports(d / "report")
        except Exception as exc:  # noqa: BLE001 - export what we can
            (d / "report_error.txt").write_text(str(exc))
        written.append(d)
    return written


def plot(ctx, out: str | Path) -> Path:
    """A plotly HTML page: the Pareto front (2-D or 3-D, feasible vs not) beside the hypervolume history
    (the two figures the dashboard shows, on one page)."""
    from plotly.subplots import make_subplots

    from bsopt.paths import output_file

    out = output_file(out, "the plot file", ".html")
    metrics = ctx.objectives.metrics
    trials = rdb.read_trials(ctx.study)
    front, history = pareto_figure(ctx, trials), hypervolume_figure(ctx, trials)
    three = len(metrics) >= 3
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38],
                        specs=[[{"type": "scene" if three else "xy"}, {"type": "xy"}]],
                        subplot_titles=("objectives", "hypervolume of the feasible front"))
    for trace in front.data:
        fig.add_trace(trace, row=1, col=1)
    for trace in history.data:
        fig.add_trace(trace, row=1, col=2)
    if three:
        fig.update_scenes(**{k: front.layout.scene[k] for k in ("xaxis", "yaxis", "zaxis")})
    else:
        fig.update_xaxes(title_text=front.layout.xaxis.title.text, row=1, col=1)
        fig.update_yaxes(title_text=front.layout.yaxis.title.text, row=1, col=1)
    fig.update_xaxes(title_text="trials", row=1, col=2)
    completed = sum(1 for t in trials if t.state == TrialState.COMPLETE)
    fig.update_layout(title=f"bsopt study {ctx.name} — {completed} completed trials", height=600)
    fig.write_html(str(out), include_plotlyjs=True)  # self-contained: FPGA build servers are often offline
    return out


def pareto_figure(ctx, trials=None):
    """The objectives of the completed trials: infeasible, feasible, and the feasible Pareto front."""
    import plotly.graph_objects as go

    metrics = ctx.objectives.metrics
    trials = [t for t in (trials if trials is not None else rdb.read_trials(ctx.study))
              if t.state == TrialState.COMPLETE]
    front = {t.number for t in queries.pareto_front(trials, ctx.objectives.directions)}
    groups = {"infeasible": [t for t in trials if not queries.feasible(t)],
              "feasible": [t for t in trials if queries.feasible(t) and t.number not in front],
              "Pareto front": [t for t in trials if t.number in front]}
    colors = {"infeasible": "lightgray", "feasible": "steelblue", "Pareto front": "crimson"}
    fig = go.Figure()
    for label, ts in groups.items():
        text = [f"trial {t.number}<br>{t.user_attrs.get('config_id')}" for t in ts]
        marker = {"color": colors[label], "size": 4 if label != "Pareto front" else 7}
        if len(metrics) >= 3:
            fig.add_trace(go.Scatter3d(x=[t.values[0] for t in ts], y=[t.values[1] for t in ts],
                                       z=[t.values[2] for t in ts], mode="markers", name=label, marker=marker,
                                       text=text))
        else:
            fig.add_trace(go.Scatter(x=[t.values[0] for t in ts], y=[t.values[1] if len(metrics) > 1 else 0
                                                                       for t in ts],
                                     mode="markers", name=label, marker=marker, text=text))
    units = [f"{m} [{METRICS[m].unit}]" if m in METRICS and METRICS[m].unit else m for m in metrics]
    if len(metrics) >= 3:
        fig.update_scenes(xaxis_title=units[0], yaxis_title=units[1], zaxis_title=units[2])
    else:
        fig.update_layout(xaxis_title=units[0], yaxis_title=units[1] if len(units) > 1 else "")
    fig.update_layout(title=f"{ctx.name}: Pareto front ({len(front)} of {len(trials)} completed trials)")
    return fig


def hypervolume_figure(ctx, trials=None):
    """The hypervolume of the feasible front after n trials (see :func:`hypervolume_history`)."""
    import plotly.graph_objects as go

    history = hypervolume_history(ctx, trials=trials)
    fig = go.Figure(go.Scatter(x=[h[0] for h in history], y=[h[1] for h in history], mode="lines+markers",
                               name="hypervolume"))
    fig.update_layout(title=f"{ctx.name}: hypervolume of the feasible front", xaxis_title="trials",
                      yaxis_title="hypervolume (share of the study's reference box)")
    return fig


def hypervolume_history(ctx, points: int = 50, trials=None) -> list[tuple[int, float]]:
    """Hypervolume of the feasible front after n trials: the share of the study's reference box it
    dominates (:data:`queries.HV_MEANING`; before the box is fixed, the box of all feasible trials), so
    that the curve never decreases. The front is kept incrementally while walking the trials."""
    trials = rdb.read_trials(ctx.study, keys=("c:",)) if trials is None else trials
    trials = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.number)
    dirs = ctx.objectives.directions
    feas = [t for t in trials if queries.feasible(t)]
    if not feas:
        return []
    box = queries.study_box(ctx.study) or queries.trials_box(feas, dirs)
    steps = sorted({max(1, int(len(trials) * i / points)) for i in range(1, points + 1)})
    archive = queries.FrontArchive(dirs)
    out, i = [], 0
    for n in steps:
        for t in trials[i:n]:
            if queries.feasible(t):
                archive.add(t.values)
        i = n
        out.append((n, archive.hypervolume(box)))
    return out
