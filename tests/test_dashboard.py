"""What optuna-dashboard shows of bsopt studies, exercised headless through its WSGI app: trial
attributes (metrics with units, feasibility, violations, reasons), uploaded artifacts, pinned figures."""

from __future__ import annotations

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest
from finn_reference import network_dirs, prepost_model

from bsopt.study.engine import Runner, create_study, load_study

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")
optuna_dashboard = pytest.importorskip("optuna_dashboard")


def get(app, path: str):
    environ = {}
    setup_testing_defaults(environ)
    path, _, query = path.partition("?")
    environ.update({"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": "GET",
                    "wsgi.input": io.BytesIO(b"")})
    status = {}

    def start_response(s, headers, exc_info=None):
        status["code"] = int(s.split()[0])

    body = b"".join(app(environ, start_response))
    assert status["code"] == 200, (path, body[:300])
    return body


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_trials_artifacts_and_figures_in_the_dashboard(tmp_path):
    from optuna.artifacts import FileSystemArtifactStore

    bp = tmp_path / "bp.yaml"
    bp.write_text(f"""
version: "3.0"
name: dash
model: {prepost_model("tfc_w2a2")}
hw_compiler:
  build_steps: [step_streamline, step_minimize_bit_width]
target: {{board: Pynq-Z1, clock_ns: 10.0}}
objectives: [throughput_fps, LUT]
backend: {{name: synthetic, options: {{failure_rate: 0.25}}}}
search:
  strategy: grid
  constraints:
    - {{metric: LUT, operator: '<=', value: 6000}}
folding:
  layers:
    MVAU_hls_0: {{PE: [1, 4, 16], SIMD: [16, 49]}}
    MVAU_hls_1: {{PE: [1, 8], SIMD: [8, 16]}}
""")
    ctx = create_study("dash", bp)
    stats = Runner(ctx, workers=2, progress=False).optimize(n_trials=24)
    assert stats.published.endswith("2 figure(s)"), stats.published
    ctx = load_study("dash")
    art = ctx.study.user_attrs["artifact_dir"]
    app = optuna_dashboard.wsgi(f"sqlite:///{tmp_path}/studies/bsopt.db", artifact_store=FileSystemArtifactStore(art))
    studies = json.loads(get(app, "/api/studies"))["study_summaries"]
    sid = next(s["study_id"] for s in studies if s["study_name"] == "dash")
    detail = json.loads(get(app, f"/api/studies/{sid}"))
    trials = detail["trials"]
    assert len(trials) == 24
    by_state: dict[str, list] = {}
    for t in trials:
        by_state.setdefault(t["state"], []).append({a["key"]: a["value"] for a in t["user_attrs"]})
    assert {"Complete", "Pruned", "Fail"} <= set(by_state)
    for attrs in by_state["Complete"]:
        assert attrs["config_id"].startswith("dse_") and attrs["backend"] == "synthetic"
        assert {"feasible", "c:LUT <= 6000", "cache_hit", "build_seconds", "worker", "e:LUT"} <= set(attrs)
        assert " LUTs" in attrs["summary"] and " 1/s" in attrs["summary"]  # metrics with their units
    assert all("estimate violates LUT <= 6000" in a["pruned_reason"] for a in by_state["Pruned"])
    assert all(a["error"] == "synthetic build failure" and a["status"] == "FAILED" for a in by_state["Fail"])
    # the two pinned figures
    figures = {g["id"]: json.loads(g["graph_object"]) for g in detail["plotly_graph_objects"]}
    assert set(figures) == {"bsopt-pareto", "bsopt-hypervolume"}
    assert "Pareto front" in figures["bsopt-pareto"]["layout"]["title"]["text"]
    hv = figures["bsopt-hypervolume"]["data"][0]["y"]
    assert hv and all(b >= a for a, b in zip(hv, hv[1:], strict=False)) and hv[-1] > 0
    # every configuration built in this run has its summary, configs and reports as artifacts
    built = [t for t in trials if any(a["key"] == "worker" for a in t["user_attrs"])]
    assert built and all(t["artifacts"] for t in built)
    t = built[0]
    names = {a["filename"] for a in t["artifacts"]}
    assert {"build_summary.json", "folding_config.json", "estimate_layer_resources.json"} <= names
    summary_meta = next(a for a in t["artifacts"] if a["filename"] == "build_summary.json")
    summary = json.loads(get(app, f"/artifacts/{sid}/{t['trial_id']}/{summary_meta['artifact_id']}"))
    attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
    assert summary["config_id"] == attrs["config_id"] and summary["metrics"]["LUT"]["unit"] == "LUTs"
    assert summary["estimate"]["LUT"] == float(attrs["e:LUT"])  # the dashboard shows values as text
    # publishing again uploads nothing twice
    from bsopt.study import dashboard

    assert dashboard.publish(ctx)["files"] == 0
