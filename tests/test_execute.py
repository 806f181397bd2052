"""The execution layer: killable local workers (crashes, hangs, failures, timeouts, retries), the
driver lock of file storages, resource monitoring, and orphan-free driver kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
import pytest
from finn_reference import SMALL_FOLDING, network_dirs, prepost_model, synthetic_blueprint
from optuna.trial import TrialState

from bsopt.backends.synthetic import SyntheticBackend
from bsopt.cli import main
from bsopt.execute.base import BackendSpec, Task
from bsopt.execute.local import LocalExecutor
from bsopt.study.cache import cache_key
from bsopt.study.engine import Runner, create_study, load_study

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")

SMALL = SMALL_FOLDING  # 24 configurations


def blueprint(tmp_path: Path, options: str, strategy: str = "grid", name: str = "bp.yaml") -> Path:
    return synthetic_blueprint(tmp_path, options, SMALL, strategy=strategy, name=name)


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _synthetic(ctx, **options) -> SyntheticBackend:
    t = ctx.space.fixed_target()
    return SyntheticBackend(ctx.space.model_path, t["finn_version"], t["part"], options)


def test_pool_survives_crashes_hangs_and_failures(tmp_path):
    scratch = tmp_path / "scratch"
    opts = dict(duration_s=0.01, crash_rate=0.3, hang_rate=0.2, failure_rate=0.2, scratch_dir=str(scratch))
    bp = blueprint(tmp_path, ", ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {v}" for k, v in opts.items()))
    ctx = create_study("chaos", bp)
    runner = Runner(ctx, workers=2, build_timeout=1.5, progress=False)
    stats = runner.optimize(n_trials=100)
    trials = ctx.study.get_trials()
    assert len(trials) == 24 and stats.trials == 24
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # which configurations misbehave is a property of their content: check each against the backend's draw
    backend = _synthetic(ctx, **opts)
    expected = {"hang": 0, "crash": 0}
    for t in trials:
        if t.state == TrialState.PRUNED:
            continue
        cfg = ctx.space.config(t.user_attrs["config_index"])
        crashed = backend._draw(cfg, "crash") < 0.3
        hung = backend._draw(cfg, "hang") < 0.2
        failed = backend._draw(cfg, "fail") < 0.2
        warnings = t.user_attrs.get("warnings", "")
        if crashed:  # the first attempt killed its worker; the retry ran on a fresh one
            expected["crash"] += 1
            assert "retried after" in warnings and "died: exited with status 70" in warnings
        else:
            assert "retried" not in warnings
        if hung:
            expected["hang"] += 1
            assert t.state == TrialState.FAIL and t.user_attrs["status"] == "TIMEOUT"
            assert "timed out after 1.5 s" in t.user_attrs["error"]
        elif failed:
            assert t.state == TrialState.FAIL and t.user_attrs["error"] == "synthetic build failure"
        else:
            assert t.state == TrialState.COMPLETE and t.user_attrs["worker"].startswith("local:")
    assert expected["hang"] > 0 and expected["crash"] > 0  # the draw exercises both at these rates
    assert stats.timeouts == expected["hang"] and stats.retries == expected["crash"]
    workers = {t.user_attrs["worker"] for t in trials if "worker" in t.user_attrs}
    assert len(workers) >= 3 and all(w.split(":")[2] != str(os.getpid()) for w in workers)
    # timeouts are not facts about a configuration: they are not cached, a longer timeout builds them again
    for t in trials:
        if t.user_attrs.get("status") == "TIMEOUT":
            cfg = ctx.space.config(t.user_attrs["config_index"])
            assert runner.cache.get(cache_key(cfg, "synthetic")) is None


def test_a_configuration_that_always_crashes_fails_after_the_retries(tmp_path):
    bp = blueprint(tmp_path, "crash_rate: 1.0, crash_once: false, crash_mode: segv")
    ctx = create_study("segv", bp)
    runner = Runner(ctx, workers=2, progress=False)
    stats = runner.optimize(n_trials=3)
    trials = ctx.study.get_trials()
    assert stats.trials == 3 and stats.retries == 3 * 2 and stats.failed == 3
    for t in trials:
        assert t.state == TrialState.FAIL and "killed by SIGSEGV" in t.user_attrs["error"]
        # a lost worker is not a fact about the configuration: nothing is cached
        cfg = ctx.space.config(t.user_attrs["config_index"])
        assert runner.cache.get(cache_key(cfg, "synthetic")) is None


def test_timeout_kills_the_worker_process(tmp_path):
    model = prepost_model("tfc_w2a2")
    from bsopt.space.design_space import load_design_space

    space = load_design_space(blueprint(tmp_path, "hang_rate: 1.0"))
    t = space.fixed_target()
    spec = BackendSpec("synthetic", str(model), t["finn_version"], t["part"], {"hang_rate": 1.0})
    with LocalExecutor(spec, 1, timeout=1.0) as ex:
        ex.submit(Task(space.config(0)))
        pid = ex.worker_pids()[0]
        start = time.time()
        (task, result), = ex.poll()
        assert result.status == "TIMEOUT" and not result.recoverable
        assert 1.0 <= time.time() - start < 10
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert ex.inflight == 0 and ex.worker_pids() == []


def _wait_for(cond, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_driver_leaves_no_orphans_and_resumes(tmp_path):
    bp = blueprint(tmp_path, "hang_rate: 1.0, hang_s: 600")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bsopt.cli", "study", "create", "k", "--blueprint", str(bp),
                             "--n-trials", "4", "--workers", "2", "--quiet"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    driver = psutil.Process(proc.pid)
    workers = _wait_for(lambda: [c for c in driver.children(recursive=True) if "bsopt.execute.local" in
                                 " ".join(c.cmdline())] if len(driver.children()) >= 2 else None, 60, "workers")
    storage = f"sqlite:///{tmp_path / 'studies' / 'bsopt.db'}"
    _wait_for(lambda: len(optuna.load_study(study_name="k", storage=storage).get_trials(
        states=(TrialState.RUNNING,))) == 2, 30, "two running trials")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(workers, timeout=10)  # their watchdogs kill them (and their builds)
    assert not alive
    # resume: the two interrupted trials are failed and their parameters built again (now with a timeout)
    # (every build hangs: the run ends with no feasible trial, which is an error: exit status 1)
    assert main(["study", "optimize", "k", "--n-trials", "2", "--workers", "2", "--build-timeout", "0.5",
                 "--quiet"]) == 1
    trials = optuna.load_study(study_name="k", storage=storage).get_trials()
    retried = [t for t in trials if "retry_of" in t.user_attrs]
    assert len(retried) == 2 and all(t.user_attrs["status"] == "TIMEOUT" for t in retried)
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_second_driver_on_sqlite_gets_a_clear_message(tmp_path, capsys):
    bp = blueprint(tmp_path, "duration_s: 0.5")
    assert main(["study", "create", "one", "--blueprint", str(bp), "--quiet"]) == 0
    proc = subprocess.Popen([sys.executable, "-m", "bsopt.cli", "study", "optimize", "one", "--n-trials", "20",
                             "--workers", "1", "--quiet"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        from bsopt.study.drivers import lock_path

        lock = lock_path(f"sqlite:///{tmp_path / 'studies' / 'bsopt.db'}", "one")
        _wait_for(lambda: lock.exists() and lock.read_text().startswith("pid"), 60, "the first driver's lock")
        (tmp_path / "link.db").symlink_to(tmp_path / "studies" / "bsopt.db")
        # the same file under every spelling: default, query parameters, ./.., a symbolic link
        for storage in ([], ["--storage", "sqlite:///studies/bsopt.db?timeout=60"],
                        ["--storage", "sqlite:///./studies/../studies/bsopt.db"], ["--storage", "sqlite:///link.db"]):
            capsys.readouterr()
            assert main(["study", "optimize", "one", "--n-trials", "2", "--quiet", *storage]) == 2, storage
            err = capsys.readouterr().err
            assert "being optimized by another driver" in err and f"pid {proc.pid}" in err and "postgresql" in err
    finally:
        proc.kill()
        proc.wait()
    # the lock dies with its holder
    assert main(["study", "optimize", "one", "--n-trials", "1", "--quiet"]) == 0


def test_resources_are_recorded_and_low_disk_stops_launching(tmp_path, capsys):
    bp = blueprint(tmp_path, "duration_s: 0.01")
    ctx = create_study("res", bp)
    stats = Runner(ctx, workers=2, progress=False, min_free_disk_gb=1e9).optimize(n_trials=5)
    assert stats.trials == 0 and "below 1e+09 GB" in stats.stopped
    stats = Runner(load_study("res"), workers=2, progress=False).optimize(n_trials=5)
    assert stats.trials == 5 and not stats.stopped
    r = load_study("res").study.user_attrs["resources"]
    assert r["driver_rss_mb"] > 20 and r["peak_workers_rss_mb"] > 20 and r["free_disk_gb"] > 0
    assert main(["study", "status", "res"]) == 0
    assert "driver RSS" in capsys.readouterr().out


def test_backend_exceptions_are_retried_then_failed_with_their_traceback_logged(tmp_path):
    ctx = create_study("exc", blueprint(tmp_path, "exception_rate: 1.0"))
    stats = Runner(ctx, workers=1, progress=False).optimize(n_trials=2)
    assert stats.trials == 2 and stats.failed == 2 and stats.retries == 4
    for t in ctx.study.get_trials():
        assert t.state == TrialState.FAIL and t.user_attrs["error"] == "RuntimeError: synthetic backend exception"
        log = Path(t.user_attrs["log"])
        assert log.parent == tmp_path / "studies" / "exc" / "logs" and log.name == t.user_attrs["config_id"] + ".log"
        assert "Traceback" in log.read_text() and "synthetic backend exception" in log.read_text()


def test_cache_results_false_builds_every_time(tmp_path):
    bp = blueprint(tmp_path, "duration_s: 0.0")
    bp.write_text(bp.read_text() + "global: {cache_results: false}\n")
    first = Runner(create_study("nc1", bp), workers=1, progress=False).optimize(n_trials=4)
    second = Runner(create_study("nc2", bp), workers=1, progress=False).optimize(n_trials=4)
    assert first.builds == second.builds == 4 and second.cache_hits == 0
