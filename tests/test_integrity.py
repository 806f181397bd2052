"""Data integrity of file storages: one lock per real file whatever the URL's spelling, and trial
numbers that concurrent batch writers cannot both take."""

from __future__ import annotations

import json
import socket
import threading
import time

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

import bsopt
from bsopt.storage import open_storage, rdb
from bsopt.study.drivers import lock_path


def test_lock_path_is_one_per_real_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "studies" / "bsopt.db"
    db.parent.mkdir()
    db.write_bytes(b"")
    (tmp_path / "link.db").symlink_to(db)
    (tmp_path / "hard.db").hardlink_to(db)
    spellings = ["sqlite:///studies/bsopt.db", f"sqlite:///{db}", "sqlite:///studies/bsopt.db?timeout=60",
                 "sqlite:///./studies/../studies/bsopt.db", "sqlite:///link.db"]
    assert len({lock_path(u, "s") for u in spellings}) == 1
    assert lock_path("sqlite:///studies/bsopt.db", "s") != lock_path("sqlite:///studies/bsopt.db", "t")
    assert lock_path("sqlite:///hard.db", "s").name == lock_path(f"sqlite:///{db}", "s").name  # same inode
    assert lock_path("memory", "s") is None and lock_path("postgresql://u@h/db", "s") is None


def _finished(i: int):
    return optuna.trial.create_trial(values=[float(i)], params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
                                     user_attrs={"writer": i})


def test_concurrent_batch_writers_never_share_a_trial_number(tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    optuna.create_study(study_name="s", storage=open_storage(url))
    errors = []

    def writer(spelling: str, k: int) -> None:
        try:
            study = optuna.load_study(study_name="s", storage=open_storage(spelling))
            for b in range(15):
                rdb.add_trials(study, [_finished(k * 1000 + b * 10 + j) for j in range(10)])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(u, k)) for k, u in
               enumerate([url, url + "?timeout=60", f"sqlite:///{tmp_path}/./b.db"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    trials = optuna.load_study(study_name="s", storage=open_storage(url)).get_trials()
    numbers = [t.number for t in trials]
    assert len(trials) == 3 * 15 * 10 and sorted(numbers) == list(range(len(trials)))
    assert all(t.state == TrialState.COMPLETE for t in trials)


def test_study_names_are_a_safe_set_and_nothing_is_written_for_others(tmp_path, monkeypatch, capsys):
    import pytest

    import bsopt
    from bsopt.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BSOPT_WORKDIR", raising=False)
    bp = tmp_path / "bp.yaml"
    bp.write_text("version: '3.0'\nname: n\nmodel: zoo:tfc?w=2&a=2\nhw_compiler: {build_steps: [step_streamline, step_minimize_bit_width]}\n")
    for bad in ("../../x", "/abs/x", "", ".", "..", "a\nb", "a b", "x" * 101, "-x"):
        with pytest.raises(bsopt.InputError, match="invalid study name"):
            bsopt.create_study(bad, bp)
        assert main(["study", "create", bad, "--blueprint", str(bp), "--n-trials", "1", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "invalid study name" in err or (bad.startswith("-") and "No such option" in err)
    assert not (tmp_path / "studies").exists() and not (tmp_path.parent / "x").exists()


def test_storage_urls_never_show_passwords_and_use_the_installed_driver(tmp_path):
    import importlib.util

    import pytest

    from bsopt.errors import InputError
    from bsopt.storage.urls import _with_installed_driver, shown_url

    url = "postgresql://bob:s3cr3t@127.0.0.1:1/db"  # nothing listens on port 1: refused at once
    assert shown_url(url) == "postgresql://bob:***@127.0.0.1:1/db"
    driver = _with_installed_driver(url).split("://")[0].split("+")[1]
    assert importlib.util.find_spec(driver) is not None  # the form docs/study.md gives works as written
    with pytest.raises(InputError) as exc:
        open_storage(url)
    text = str(exc.value)
    assert "s3cr3t" not in text and "bob:***@" in text and "Failed to import" not in text


def test_a_sqlite_url_with_a_missing_folder_outside_the_working_directory_creates_nothing(tmp_path, monkeypatch):
    import pytest

    from bsopt.errors import InputError

    far = tmp_path / "a" / "b"
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    with pytest.raises(InputError, match="does not exist"):
        open_storage(f"sqlite:///{far}/x.db")
    assert not (tmp_path / "a").exists()
    open_storage("sqlite:///new/sub/x.db")  # below the directory bsopt runs in: created
    assert (tmp_path / "work" / "new" / "sub" / "x.db").is_file()


def test_ordinary_output_and_option_mistakes_are_one_clear_message(tmp_path, monkeypatch, capsys):
    from finn_reference import prepost_model

    from bsopt.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BSOPT_WORKDIR", raising=False)
    model = str(prepost_model("tfc_w2a2"))
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    cases = [
        (["fold", "-m", model, "--target-fps", "1000", "--out", "adir"], "is a folder"),
        (["fold", "-m", model, "--target-fps", "1000", "--part", "foo", "--out", "f.json"], "not an AMD/Xilinx part"),
        (["model", "inspect", model, "--part", "foo"], "not an AMD/Xilinx part"),
    ]
    bp = tmp_path / "bp.yaml"
    bp.write_text(f"version: '3.0'\nname: n\nmodel: {model}\nhw_compiler: {{build_steps: [step_streamline, step_minimize_bit_width]}}\n"
                  "search: {strategy: random}\n")
    assert main(["study", "create", "s", "--blueprint", str(bp), "--n-trials", "3", "--quiet"]) == 0
    cases += [(["study", "export", "s", "--out", "afile", "--best"], "is a file, not a folder"),
              (["study", "plot", "s", "--out", "adir"], "is a folder"),
              (["study", "pareto", "s", "--json", "--csv"], "give one"),
              (["dashboard", "--port", "99999"], "port 99999 is out of range"),
              (["study", "create", "r", "--blueprint", str(bp), "-n", "2", "--executor", "ray",
                "--ray-address", "127.0.0.1:1"], "nothing answers there"),
              (["study", "create", "r", "--blueprint", str(bp), "-n", "2", "--executor", "ray",
                "--ray-address", "head-node"], "is not a Ray address")]
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    cases.append((["dashboard", "--port", str(busy.getsockname()[1])], "Address already in use"))
    for argv, message in cases:
        capsys.readouterr()
        started = time.time()
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert message in err and "internal error" not in err, (argv, err)
        assert "optuna-dashboard on" not in out and time.time() - started < 30, argv
    busy.close()
    assert not (tmp_path / "f.json").exists()
    assert [s["name"] for s in bsopt.list_studies()] == ["s"]  # no empty study left by a refused run


def test_a_corrupt_build_cache_is_set_aside_and_the_study_runs(tmp_path, monkeypatch, capsys):
    from finn_reference import prepost_model

    from bsopt.cli import main
    from bsopt.study.cache import BuildCache

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BSOPT_WORKDIR", raising=False)
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "cache.db").write_bytes(b"this is not a database" * 100)
    bp = tmp_path / "bp.yaml"
    bp.write_text(f"version: '3.0'\nname: n\nmodel: {prepost_model('tfc_w2a2')}\n"
                  "hw_compiler: {build_steps: [step_streamline, step_minimize_bit_width]}\nsearch: {strategy: random}\n")
    assert main(["study", "create", "s", "--blueprint", str(bp), "--n-trials", "3", "--quiet"]) == 0
    assert list((tmp_path / "studies").glob("cache.db.broken-*"))  # kept for a post-mortem, not deleted
    cache = BuildCache(tmp_path / "studies" / "cache.db")
    assert cache.rebuilt is None and len(cache) == 1  # the new cache holds the build (a one-configuration space)


def test_ctrl_c_says_how_to_resume_and_loses_nothing(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from finn_reference import prepost_model

    bp = tmp_path / "bp.yaml"
    bp.write_text(f"version: '3.0'\nname: n\nmodel: {prepost_model('tfc_w2a2')}\n"
                  "hw_compiler: {build_steps: [step_streamline, step_minimize_bit_width]}\nsearch: {strategy: random}\n"
                  "folding: {kinds: {MVAU: {PE: all, SIMD: all}}}\n")
    env = {k: v for k, v in os.environ.items() if k != "BSOPT_WORKDIR"}
    proc = subprocess.Popen([sys.executable, "-m", "bsopt.cli", "study", "create", "c", "--blueprint", str(bp),
                             "-n", "1000000", "--quiet"], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = tmp_path / "studies" / "bsopt.db"
    deadline = time.time() + 120
    while time.time() < deadline:  # until trials are being stored
        time.sleep(0.5)
        if db.exists() and optuna.study.get_all_study_names(open_storage(f"sqlite:///{db}")) and \
                rdb.n_trials(optuna.load_study(study_name="c", storage=open_storage(f"sqlite:///{db}"))) > 0:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    stored = rdb.n_trials(optuna.load_study(study_name="c", storage=open_storage(f"sqlite:///{db}")))
    assert f"interrupted: {stored} trial(s) of study c are stored; resume with: bsopt study optimize c" in err
    assert "internal error" not in err


def test_list_and_best_answer_in_json_and_best_takes_where(tmp_path, monkeypatch, capsys):
    import json

    from finn_reference import prepost_model

    from bsopt.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BSOPT_WORKDIR", raising=False)
    bp = tmp_path / "bp.yaml"
    bp.write_text(f"version: '3.0'\nname: n\nmodel: {prepost_model('tfc_w2a2')}\n"
                  "hw_compiler: {build_steps: [step_streamline, step_minimize_bit_width]}\nsearch: {strategy: random}\n"
                  "folding: {kinds: {MVAU: {PE: all, SIMD: all}}}\n")
    assert main(["study", "create", "j", "--blueprint", str(bp), "-n", "40", "--seed", "1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["study", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["name"] == "j" and listed["trials"] == 40 and listed["sampler"] == "random"
    assert main(["study", "best", "j", "--metric", "LUT", "--json"]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best == bsopt.load_study("j").best("LUT")
    limit = sorted(r["throughput_fps"] for r in bsopt.load_study("j").pareto())[-1]
    assert main(["study", "best", "j", "--metric", "LUT", "--where", f"throughput_fps >= {limit}", "--json"]) == 0
    fast = json.loads(capsys.readouterr().out)
    assert fast["throughput_fps"] >= limit and fast["LUT"] >= best["LUT"]


def _cli(args, cwd, **kw):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "BSOPT_WORKDIR"}
    return subprocess.run([sys.executable, "-m", "bsopt.cli", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=300, **kw)


def _small_study(tmp_path, n: int = 5):
    from finn_reference import prepost_model

    bp = tmp_path / "bp.yaml"
    bp.write_text(f"version: '3.0'\nname: n\nmodel: {prepost_model('tfc_w2a2')}\n"
                  "hw_compiler: {build_steps: [step_streamline, step_minimize_bit_width]}\nsearch: {strategy: random}\n"
                  "folding: {kinds: {MVAU: {PE: all, SIMD: all}}}\n")
    p = _cli(["study", "create", "a", "--blueprint", str(bp), "-n", str(n), "--quiet"], tmp_path)
    assert p.returncode == 0, p.stderr
    return bp


def test_a_damaged_study_storage_is_one_clear_message(tmp_path):
    bp = _small_study(tmp_path)
    db = tmp_path / "studies" / "bsopt.db"
    db.write_bytes(b"not a database at all" * 200)
    for args in (["study", "list"], ["study", "status", "a"], ["study", "create", "b", "--blueprint", str(bp)]):
        p = _cli(args, tmp_path)
        assert p.returncode == 2 and "is not an SQLite database" in p.stderr and "internal error" not in p.stderr, \
            (args, p.stderr)
    assert db.read_bytes().startswith(b"not a database")  # left as it was, for the user to recover


def test_a_read_only_study_root_answers_queries_and_refuses_runs_clearly(tmp_path):
    import os
    import shutil
    import stat

    _small_study(tmp_path)
    root = tmp_path / "studies"
    for f in root.glob("bsopt.db-*"):
        f.unlink()
    prefix = []
    if os.geteuid() == 0:  # root writes anywhere: drop the capabilities that let it
        if not shutil.which("capsh"):
            pytest.skip("running as root without capsh: cannot make a folder read-only to bsopt")
        prefix = ["capsh", "--drop=cap_dac_override,cap_dac_read_search,cap_fowner", "--"]
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        def run(*args):
            import subprocess
            import sys

            cmd = [sys.executable, "-m", "bsopt.cli", *args]
            if prefix:
                import shlex
                cmd = [*prefix, "-c", shlex.join(cmd)]
            env = {k: v for k, v in os.environ.items() if k != "BSOPT_WORKDIR"}
            return subprocess.run(cmd, cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300)

        listed = run("study", "list")
        assert listed.returncode == 0 and "│ a " in listed.stdout, listed.stderr
        status = run("study", "status", "a")
        assert status.returncode == 0 and "5 trials" in status.stdout, status.stderr
        for args in (("study", "optimize", "a", "-n", "2"), ("study", "create", "b", "--blueprint", "bp.yaml")):
            p = run(*args)
            assert p.returncode == 2 and "is read-only here" in p.stderr and "internal error" not in p.stderr, p.stderr
    finally:
        for path in [root, *root.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_a_full_disk_during_a_run_is_diagnosed_and_keeps_what_was_stored(tmp_path):
    import os
    import resource
    import signal

    _small_study(tmp_path)
    db = tmp_path / "studies" / "bsopt.db"
    limit = sum(f.stat().st_size for f in db.parent.glob("bsopt.db*")) + 300_000

    def small_disk():  # files may not grow past `limit`: the write fails as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    p = _cli(["study", "optimize", "a", "-n", "100000", "--quiet"], tmp_path, preexec_fn=small_disk)
    assert p.returncode == 2 and "cannot write" in p.stderr and "full disk" in p.stderr, p.stderr
    assert "internal error" not in p.stderr
    after = _cli(["study", "status", "a", "--json"], tmp_path)
    assert after.returncode == 0 and json.loads(after.stdout)["trials"] >= 5  # nothing stored before is lost
    assert os.path.getsize(db) <= limit


def _open_fresh(path):
    from bsopt.storage.urls import open_storage

    try:
        storage = open_storage(f"sqlite:///{path}")
        return len(optuna.study.get_all_study_names(storage))
    except Exception as error:  # reported to the parent
        return f"{type(error).__name__}: {error}"


def test_processes_opening_a_new_database_at_once_all_open_it(tmp_path):
    # Optuna's first open creates tables and stamps the schema version; processes doing it at the same
    # moment (a study starting while `study status` polls it, several workers) used to fail with
    # "table ... already exists" or a duplicate alembic version about one time in three.
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(4) as pool:
        for i in range(6):
            outcomes = pool.map(_open_fresh, [tmp_path / f"fresh{i}.db"] * 4)
            assert outcomes == [0, 0, 0, 0], outcomes
