"""The real-FINN backend: a BuildConfig built by FINN (and Vivado) as an external command.

bsopt never imports FINN. For each BuildConfig it prepares ``<builds_dir>/<config_id>/`` the way
FINN's ``build_dataflow`` command expects it — ``model.onnx``, ``dataflow_build_config.json``,
``folding_config.json``, ``specialize_layers_config.json`` — runs the configured command in the
user's FINN environment (no shell; output streamed to ``build.log``), reads the reports FINN wrote
(:mod:`bsopt.backends.finn_outputs`), classifies failures from the exit status and the log, and links
the products into an ``artifacts/`` tree: ``reports/``, ``ip_blocks/``, ``synthesis/``,
``bitstream/`` (whatever the output stage produced).

Options (blueprint ``backend: {name: finn, options: {...}}``):

- ``command``: the command as a list (or a string split like a shell would, without running one);
  ``{build_dir}`` is replaced by the build folder. Default
  ``["python", "-m", "finn.builder.build_dataflow", "{build_dir}"]``; with FINN's docker wrapper
  e.g. ``["/opt/finn/run-docker.sh", "build_custom", "{build_dir}"]``.
- ``env``: extra environment variables (``${VAR}`` expands from the driver's environment), e.g.
  ``FINN_ROOT``, ``VIVADO_PATH``, ``FINN_XILINX_PATH``, ``FINN_BUILD_DIR``.
- ``timeout_s``: kill the command after this many seconds (TIMEOUT); the study's ``--build-timeout``
  also applies (it kills the worker and the command with it).
- ``builds_dir``: where build folders go (default ``studies/<study>/builds``).
- ``timing_constraint``: a negative WNS after synthesis fails the build (default false: the WNS and
  fmax are recorded and the build counts).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import shutil
import string
import subprocess
import time
from pathlib import Path
from typing import Any

from bsopt import settings
from bsopt.backends.finn_config import dataflow_build_config
from bsopt.backends.finn_outputs import (
    FINN_BANNER,
    ReportError,
    classify_failure,
    environment_failure,
    read_outputs,
)
from bsopt.backends.result import BuildResult, BuildStatus
from bsopt.errors import InputError

UNEXPANDED = re.compile(r"\$\{(\w+)\}|\$(\w+)")
DEFAULT_COMMAND = ["python", "-m", "finn.builder.build_dataflow", "{build_dir}"]
OPTIONS = {"command": DEFAULT_COMMAND, "env": {}, "timeout_s": None, "builds_dir": None,
           "timing_constraint": False}
LOG_TAIL = 20_000


class FinnBackend:
    name = "finn"
    expensive = True

    def __init__(self, model_path: str, finn_version: str = "latest", part: str | None = None,
                 options: dict[str, Any] | None = None, workdir: str | Path | None = None):
        unknown = set(options or {}) - set(OPTIONS)
        if unknown:
            raise InputError(f"unknown finn backend option(s): {', '.join(sorted(unknown))}",
                             where="backend.options", hint="options: " + ", ".join(OPTIONS))
        self.options = {**OPTIONS, **(options or {})}
        self.model_path = model_path
        self.finn_version = finn_version
        self.part = part
        command = self.options["command"]
        self.command = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
        if not self.command:
            raise InputError("the finn backend's command is empty", where="backend.options.command")
        exe = self.command[0]
        if shutil.which(exe) is None and not Path(exe).is_file():
            raise InputError(f"the FINN command '{exe}' was not found", where="backend.options.command",
                             hint="point it at FINN's environment, e.g. command: [/opt/finn/run-docker.sh, "
                             "build_custom, '{build_dir}'] or the python of FINN's venv (see docs/finn_backend.md)")
        env = self.options["env"] or {}
        if not isinstance(env, dict):
            raise InputError("backend.options.env must be a mapping of variable names to values",
                             where="backend.options.env")
        self.env = {str(k): string.Template(str(v)).safe_substitute(os.environ) for k, v in env.items()}
        unset = {k: v for k, v in self.env.items() if UNEXPANDED.search(v)}
        if unset:
            k, v = next(iter(unset.items()))
            raise InputError(f"backend.options.env.{k}: {v} names an environment variable that is not set",
                             where=f"backend.options.env.{k}",
                             hint=f"set {UNEXPANDED.search(v).group(1) or UNEXPANDED.search(v).group(2)} before "
                             "starting bsopt, or write the value into the blueprint")
        base = self.options["builds_dir"] or (Path(workdir) / "builds" if workdir else settings.studies_root() / "builds")
        self.builds_dir = Path(base).resolve()
        timeout = self.options["timeout_s"]
        self.timeout = float(timeout) if timeout else None

    #: what the FINN command's Python reports about its tools (one JSON line): FINN's and qonnx's
    #: versions and, for a source checkout, its git commit; Vivado's location when set
    #: what the FINN command's Python reports about its tools (one JSON line): per package (finn, qonnx)
    #: where it is, its version, the git commit of a source checkout and when its files last changed;
    #: Vivado's location when set
    _TOOLS_PROBE = r"""
import importlib.util, json, os, pathlib, sys
if importlib.util.find_spec('finn.builder.build_dataflow') is None:
    sys.exit(1)
out = {}
for name, module in (('finn', 'finn.builder.build_dataflow'), ('qonnx', 'qonnx.core.modelwrapper')):
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        continue
    origin = pathlib.Path(spec.origin).resolve()
    info = {'path': str(origin), 'mtime': origin.stat().st_mtime}
    try:
        from importlib.metadata import version
        info['version'] = version(name)
    except Exception:
        pass
    for parent in origin.parents:
        head = parent / '.git' / 'HEAD'
        if head.is_file():
            ref = head.read_text().strip()
            if ref.startswith('ref: '):
                f = parent / '.git' / ref[5:]
                ref = f.read_text().strip() if f.is_file() else ref
            info['commit'] = ref
            break
    out[name] = info
out['vivado'] = os.environ.get('XILINX_VIVADO') or os.environ.get('VIVADO_PATH')
print(json.dumps(out))
"""

    def check_environment(self) -> None:
        """Before any build: when the command is ``PYTHON -m finn.builder.build_dataflow``, that Python
        must find FINN (the default ``python`` is often bsopt's own, which has no FINN). Its tools'
        versions are noted for the build cache (:meth:`cache_identity`)."""
        if self.command[1:3] != ["-m", "finn.builder.build_dataflow"]:
            return  # a docker wrapper or a script of the user's: only a build can tell
        try:
            proc = subprocess.run([self.command[0], "-c", self._TOOLS_PROBE], env={**os.environ, **self.env},
                                  capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
            found = proc.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            found = False
        if not found:
            raise InputError(f"the FINN command's Python ({self.command[0]}) cannot import finn.builder.build_dataflow",
                             where="backend.options.command",
                             hint="point the command at FINN's environment: its venv python (e.g. the bin/python "
                             "that ../shared/finn_src/setup_finn.sh makes), or FINN's docker wrapper "
                             "[/path/to/finn/run-docker.sh, build_custom, '{build_dir}'] (docs/finn_backend.md)")
        try:
            self._tools = json.loads(proc.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            self._tools = None

    def cache_identity(self) -> dict[str, Any]:
        """What decides a build's result besides the configuration: the FINN that runs it (the command,
        its environment and, where the command is FINN's Python, where FINN and qonnx are, their
        versions or source commits and when their files changed, Vivado's location) and whether negative
        slack fails a build."""
        return {"command": self.command, "env": self.env, "timing_constraint": bool(self.options["timing_constraint"]),
                "tools": getattr(self, "_tools", None)}

    # -- preparing the build folder ---------------------------------------------------------------
    def prepare(self, cfg) -> tuple[Path, dict[str, Any]]:
        """The build folder for ``cfg`` with FINN's inputs written into it."""
        build_dir = self.builds_dir / cfg.config_id
        if build_dir.exists():  # an earlier attempt: start clean
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
        src = Path(cfg.model_path or self.model_path)
        if src.suffix == ".gz":
            with gzip.open(src, "rb") as fin, open(build_dir / "model.onnx", "wb") as fout:
                shutil.copyfileobj(fin, fout)
        else:
            shutil.copyfile(src, build_dir / "model.onnx")
        dcfg = dataflow_build_config(cfg)
        if not dcfg.get("fpga_part") and self.part:
            dcfg["fpga_part"] = self.part
        if cfg.folding_config is not None:
            (build_dir / "folding_config.json").write_text(json.dumps(cfg.folding_config, indent=2))
        if cfg.specialize_config is not None:
            (build_dir / "specialize_layers_config.json").write_text(json.dumps(cfg.specialize_config, indent=2))
        (build_dir / "dataflow_build_config.json").write_text(json.dumps(dcfg, indent=2))
        (build_dir / "build_config.json").write_text(cfg.to_json(indent=2))
        return build_dir, dcfg

    # -- running it --------------------------------------------------------------------------------
    def build(self, cfg) -> BuildResult:
        start = time.time()
        build_dir, dcfg = self.prepare(cfg)
        log_path = build_dir / "build.log"
        cmd = [c.replace("{build_dir}", str(build_dir)) for c in self.command]
        env = {**os.environ, **self.env}
        returncode: int | None = None
        timed_out = False
        with open(log_path, "wb") as log:
            log.write(f"$ {shlex.join(cmd)}\n".encode())
            log.flush()
            # FINN stays in this process's group: when a worker's build outlives --build-timeout, the
            # executor kills the worker's whole process group, FINN and Vivado included
            proc = subprocess.Popen(cmd, cwd=build_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
            try:
                returncode = proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
            except BaseException:  # interrupted: never leave a FINN run behind
                _kill_group(proc)
                raise
        text = _tail(log_path)

        def result(status: str, *, error: str | None = None, recoverable: bool = False, values=None,
                   metrics=None, warnings=None) -> BuildResult:
            return BuildResult(cfg.config_id, status, start, time.time(), metrics=metrics, values=values or {},
                               artifacts=self._artifacts(build_dir, dcfg), error_message=error,
                               warnings=warnings or [], logs=text if status != BuildStatus.SUCCESS else "",
                               backend=self.name, recoverable=recoverable)

        if timed_out:
            return result(BuildStatus.TIMEOUT, error=f"FINN build timed out after {self.timeout:g} s (killed)")
        # FINN's build_dataflow prints "Build failed" and still exits 0 when a step raises
        failed = returncode != 0 or ("Build failed" in text and "Completed successfully" not in text)
        if failed:
            message, recoverable = classify_failure(text, returncode)
            res = result(BuildStatus.FAILED, error=message, recoverable=recoverable)
            res.cacheable = not environment_failure(text)
            return res
        if FINN_BANNER not in text:  # it exited 0, but it was not FINN's build_dataflow that ran
            res = result(BuildStatus.FAILED, error=f"the command exited 0 without running FINN's build_dataflow "
                         f"(no '{FINN_BANNER}' in its output): {shlex.join(cmd)}\n  hint: point "
                         "backend.options.command at FINN (its venv python with -m finn.builder.build_dataflow, "
                         "or its docker wrapper; docs/finn_backend.md)")
            res.cacheable = False
            return res
        clock = float(dcfg.get("synth_clk_period_ns") or 10.0)
        part = dcfg.get("fpga_part") or self.part
        try:
            out = read_outputs(build_dir / dcfg.get("output_dir", "output"), clock_ns=clock, part=part,
                               requested=list(dcfg.get("generate_outputs", [])),
                               resource_limits=(cfg.target or {}).get("resource_limits"))
        except ReportError as exc:
            return result(BuildStatus.FAILED, error=str(exc))
        unused = unused_configurations(build_dir / dcfg.get("output_dir", "output") / "build_dataflow.log")
        if unused:
            out.warnings.append("FINN applied no folding to " + ", ".join(unused) + " (no node of that name in "
                                "FINN's graph): its reports may not be of this configuration")
        if self.options["timing_constraint"] and out.wns is not None and out.wns < 0:
            return result(BuildStatus.FAILED, error=f"timing not met: WNS {out.wns:g} ns at {clock:g} ns",
                          values=out.values, metrics=out.metrics)
        if out.wns is not None and out.wns < 0:
            out.warnings.append(f"timing not met: WNS {out.wns:g} ns (fmax {out.values.get('fmax_mhz', 0):.1f} MHz)")
        return result(BuildStatus.SUCCESS, values=out.values, metrics=out.metrics, warnings=out.warnings)

    # -- artifacts ---------------------------------------------------------------------------------
    def _artifacts(self, build_dir: Path, dcfg: dict[str, Any]) -> dict[str, str]:
        """Link FINN's products into ``artifacts/{reports,ip_blocks,synthesis,bitstream}``."""
        out = build_dir / dcfg.get("output_dir", "output")
        tree = build_dir / "artifacts"
        groups: dict[str, list[Path]] = {"reports": [], "ip_blocks": [], "synthesis": [], "bitstream": []}
        report = out / "report"
        if report.is_dir():
            groups["reports"] += [p for p in sorted(report.iterdir()) if p.is_file() and p.suffix != ".xml"]
            groups["synthesis"] += sorted(report.glob("*.xml"))  # post-synthesis utilisation reports
        for name in ("time_per_step.json", "build_dataflow.log", "final_hw_config.json", "auto_folding_config.json"):
            if (out / name).exists():
                groups["reports"].append(out / name)
        groups["reports"].append(build_dir / "build.log")
        ip = out / "stitched_ip"
        if ip.is_dir():
            groups["ip_blocks"].append(ip)
            groups["synthesis"] += sorted(p for p in ip.rglob("*wrapper*.v") if p.is_file())[:4]
        ooc = self._ooc_folder(report)
        if ooc is not None:
            groups["synthesis"].append(ooc)
        bit = out / "bitfile"
        if bit.is_dir():
            groups["bitstream"] += sorted(p for p in bit.iterdir() if p.is_file())
        for extra in ("driver", "deploy"):
            if (out / extra).is_dir():
                groups["bitstream"].append(out / extra)
        artifacts = {"build_dir": str(build_dir)}
        for group, paths in groups.items():
            paths = [p for p in paths if p.exists()]
            if not paths:
                continue
            folder = tree / group
            folder.mkdir(parents=True, exist_ok=True)
            for p in paths:
                link = folder / p.name
                if not link.exists() and not link.is_symlink():
                    os.symlink(os.path.relpath(p, folder), link)
            artifacts[group] = str(folder)
        if not dcfg.get("save_intermediate_models", True):
            shutil.rmtree(out / "intermediate_models", ignore_errors=True)
        return artifacts

    @staticmethod
    def _ooc_folder(report: Path) -> Path | None:
        try:
            ooc = json.loads((report / "ooc_synth_and_timing.json").read_text())
            folder = Path(ooc.get("vivado_proj_folder", ""))
            return folder if folder.is_dir() else None
        except (OSError, ValueError, AttributeError):
            return None


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the command and everything it started (FINN's docker, Vivado, …)."""
    try:
        import psutil

        victims = psutil.Process(proc.pid).children(recursive=True)
    except Exception:  # noqa: BLE001 - psutil missing or the process already gone
        victims = []
    for p in victims:
        try:
            p.kill()
        except Exception:  # noqa: BLE001
            pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    proc.wait()


def unused_configurations(log_path: Path) -> list[str]:
    """Folding-config entries FINN's ApplyConfig found no node for (it warns, and ignores them), from
    ``build_dataflow.log`` where FINN sends a step's output when not verbose."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return []
    names: list[str] = []
    for line in text.splitlines():
        _, sep, rest = line.partition("Unused HW configurations: ")
        if sep:
            names += [n.strip() for n in rest.split(",") if n.strip() and n.strip() not in names]
    return names


def _tail(path: Path) -> str:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if size > LOG_TAIL:
            fh.seek(size - LOG_TAIL)
        return fh.read().decode(errors="replace")
