"""Scaling out: builds on a real Ray cluster (joined by address, token authentication on) and several
drivers sharing one study on a real PostgreSQL server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from finn_reference import network_dirs, synthetic_blueprint
from optuna.trial import TrialState
from servers import Postgres, RayCluster, postgres_bin

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")

SPACE = """  layers:
    MVAU_hls_0: {PE: [1, 2, 4, 8, 16], SIMD: [16, 49]}
    MVAU_hls_1: {PE: [1, 8], SIMD: [8, 16]}
"""  # 40 configurations


def blueprint(tmp_path: Path, options: str, strategy: str = "grid") -> Path:
    return synthetic_blueprint(tmp_path, options, SPACE, strategy=strategy)


def bsopt(args: list[str], cwd: Path, env: dict | None = None, **kw):
    return subprocess.Popen([sys.executable, "-m", "bsopt.cli", *args], cwd=cwd, env=env or dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_builds_run_on_a_joined_ray_cluster(tmp_path):
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.skip("ray is not installed (pip install 'bsopt[ray]')")
    cluster = RayCluster(num_cpus=2)
    try:
        node = cluster.node_id()
        bp = blueprint(tmp_path, f"duration_s: 0.05, crash_rate: 0.2, scratch_dir: {tmp_path / 'scratch'}, "
                       "hang_rate: 0.1")
        # without the cluster's token the driver cannot join
        env_no_token = {k: v for k, v in cluster.env.items() if k != "RAY_AUTH_TOKEN"}
        env_no_token["RAY_AUTH_TOKEN_PATH"] = str(tmp_path / "no-such-token")
        # with it, builds run on two Ray actors; crashed actors are replaced, hung builds killed
        proc = bsopt(["study", "create", "r", "--blueprint", str(bp), "--n-trials", "40", "--executor", "ray",
                      "--ray-address", cluster.address, "--workers", "2", "--build-timeout", "3", "--quiet"],
                     tmp_path, cluster.env)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        storage = f"sqlite:///{tmp_path / 'studies' / 'bsopt.db'}"
        trials = optuna.load_study(study_name="r", storage=storage).get_trials()
        assert len(trials) == 40 and not [t for t in trials if t.state == TrialState.RUNNING]
        built = [t for t in trials if "worker" in t.user_attrs]
        assert built and all(t.user_attrs["worker"].startswith(f"ray:{node[:12]}:") for t in built)
        pids = {t.user_attrs["worker"].rsplit(":", 1)[1] for t in built}
        assert len(pids) >= 3  # two actors, plus the fresh ones that replaced crashed or killed actors
        assert any("Ray build worker lost" in t.user_attrs.get("warnings", "") for t in trials)
        timeouts = [t for t in trials if t.user_attrs.get("status") == "TIMEOUT"]
        assert timeouts and all("Ray actor killed" in t.user_attrs["error"] for t in timeouts)
        run = json.loads((tmp_path / "studies" / "r" / "runs.jsonl").read_text().splitlines()[-1])
        assert run["executor"] == "ray" and run["trials"] == 40
        proc = bsopt(["study", "optimize", "r", "--n-trials", "1", "--executor", "ray", "--ray-address",
                      cluster.address, "--quiet"], tmp_path, env_no_token)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 2 and "cannot join the Ray cluster" in err and "RAY_AUTH_TOKEN" in err
    finally:
        cluster.stop()


@pytest.fixture
def postgres():
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs it: apt-get install postgresql)")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("psycopg2 is not installed (the dev extra has psycopg2-binary)")
    server = Postgres()
    yield server
    server.stop()


def test_two_drivers_share_a_study_on_postgresql(tmp_path, postgres):
    bp = blueprint(tmp_path, "duration_s: 0.1", strategy="random")
    create = bsopt(["study", "create", "shared", "--blueprint", str(bp), "--storage", postgres.url, "--seed", "1"],
                   tmp_path)
    assert create.wait(120) == 0, create.stderr.read()
    # two drivers in different folders (each with its own build cache, as on two machines)
    homes = [tmp_path / "a", tmp_path / "b"]
    procs = []
    for home in homes:
        home.mkdir()
        procs.append(bsopt(["study", "optimize", "shared", "--storage", postgres.url, "--n-trials", "30",
                            "--workers", "2", "--quiet"], home))
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    trials = optuna.load_study(study_name="shared", storage=postgres.url).get_trials()
    assert len(trials) == 60 and all(t.state.is_finished() for t in trials)  # no update lost
    assert {t.user_attrs["driver"].split(":")[1] for t in trials if "driver" in t.user_attrs} == {
        str(p.pid) for p in procs}
    built = Counter(t.user_attrs["config_id"] for t in trials if "worker" in t.user_attrs)
    assert built and max(built.values()) == 1  # no configuration built twice, by either driver
    # random sampling of 40 configurations 60 times repeats many: repeats are answered by the other
    # driver's build (or its own cache), never rebuilt
    copies = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert copies
    by_number = {t.number: t for t in trials}
    for t in copies:
        owner = by_number[t.user_attrs["duplicate_of"]]
        assert owner.user_attrs["config_id"] == t.user_attrs["config_id"] and owner.values == t.values


def test_a_dead_drivers_trials_are_taken_over(tmp_path, postgres):
    bp = blueprint(tmp_path, "hang_rate: 1.0, hang_s: 600", strategy="random")
    assert bsopt(["study", "create", "takeover", "--blueprint", str(bp), "--storage", postgres.url],
                 tmp_path).wait(120) == 0
    env = {**os.environ, "BSOPT_DRIVER_STALE_S": "3"}
    first = bsopt(["study", "optimize", "takeover", "--storage", postgres.url, "--n-trials", "2", "--workers", "2",
                   "--quiet"], tmp_path, env)
    end = time.time() + 60
    while time.time() < end:
        running = optuna.load_study(study_name="takeover", storage=postgres.url).get_trials(
            states=(TrialState.RUNNING,))
        if len(running) == 2 and all("driver" in t.user_attrs for t in running):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the first driver never started its builds")
    first.kill()
    first.wait()
    time.sleep(3.5)  # its heartbeat goes stale
    # enough trials for the re-enqueued ones (behind the SetFolding seeds the first driver enqueued)
    second = bsopt(["study", "optimize", "takeover", "--storage", postgres.url, "--n-trials", "10",
                    "--build-timeout", "0.5", "--workers", "2", "--max-failures", "0", "--quiet"], tmp_path, env)
    out, err = second.communicate(timeout=300)
    # every build hangs: the run ends without a feasible trial, which is an error (exit status 1)
    assert second.returncode == 1 and "no feasible configuration" in err and "timed out" in err, err[-3000:]
    trials = optuna.load_study(study_name="takeover", storage=postgres.url).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert "2 interrupted trial(s) recovered" in out
    retried = [t for t in trials if "retry_of" in t.user_attrs]
    assert len(retried) == 2 and all(t.user_attrs["status"] == "TIMEOUT" for t in retried)
