"""Reading what a FINN build produced: reports → metrics, logs → failure classification.

FINN writes into ``<output_dir>/report/``: ``estimate_network_performance.json`` and
``estimate_layer_resources.json`` (ESTIMATE_REPORTS), ``rtlsim_performance.json``
(RTLSIM_PERFORMANCE), ``ooc_synth_and_timing.json`` (OOC_SYNTH: Vivado out-of-context synthesis,
resources, WNS, fmax), ``post_synth_resources.json`` (BITFILE: post-synthesis utilisation with the
shell, ``(top)``); ``time_per_step.json`` beside them. Measured numbers take precedence over
estimates: throughput from rtlsim's stable throughput, resources from post-synthesis, else OOC
synthesis, else the estimate.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bsopt.backends.result import BuildMetrics
from bsopt.estimate.network import device_fit

RESOURCE_KEYS = ("LUT", "FF", "BRAM_18K", "URAM", "DSP")


class ReportError(Exception):
    """A report FINN should have written is missing or unreadable."""


def read_json(path: Path, *, required: bool) -> dict[str, Any] | None:
    if not path.exists():
        if required:
            raise ReportError(f"FINN finished without writing {path.parent.name}/{path.name} (partial build?)")
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"corrupt JSON in {path.parent.name}/{path.name}: {exc}") from None
    if not isinstance(data, dict):
        raise ReportError(f"unexpected content in {path.parent.name}/{path.name}: expected a JSON object")
    return data


def _num(d: dict, *keys: str) -> float | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def _bram18(d: dict) -> float | None:
    """18 Kbit block RAMs from a synthesis report (RAMB36 count as two)."""
    b18, b36 = _num(d, "BRAM_18K"), _num(d, "BRAM_36K")
    if b18 is None and b36 is None:
        b = _num(d, "BRAM")
        return None if b is None else 2.0 * b  # Vivado's "BRAM" tiles are 36 Kbit
    return (b18 or 0.0) + 2.0 * (b36 or 0.0)


def synth_resources(d: dict) -> dict[str, float]:
    out = {k: _num(d, k) for k in ("LUT", "FF", "URAM", "DSP")}
    out["BRAM_18K"] = _bram18(d)
    return {k: v for k, v in out.items() if v is not None}


_POWER = re.compile(r"Total On-Chip Power \(W\)\s*\|\s*([0-9.]+)")


def read_power(report_dir: Path) -> float | None:
    """Total on-chip power from a Vivado ``report_power`` text report (or a JSON with ``total_power``)."""
    for path in sorted(report_dir.glob("*power*")):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if path.suffix == ".json":
            try:
                v = json.loads(text).get("total_power")
                if isinstance(v, (int, float)):
                    return float(v)
            except (json.JSONDecodeError, AttributeError):
                continue
        m = _POWER.search(text)
        if m:
            return float(m.group(1))
    return None


@dataclass
class FinnOutputs:
    values: dict[str, float]
    metrics: BuildMetrics
    raw: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    wns: float | None = None


def read_outputs(output_dir: Path, *, clock_ns: float, part: str | None, requested: list[str],
                 resource_limits: dict | None = None) -> FinnOutputs:
    """Metrics from a FINN output folder; raises :class:`ReportError` for missing/corrupt essentials."""
    report = output_dir / "report"
    warnings: list[str] = []
    raw: dict[str, Any] = {"output_dir": str(output_dir)}
    perf = read_json(report / "estimate_network_performance.json", required=True)
    res = read_json(report / "estimate_layer_resources.json", required=True)
    total = res.get("total")
    if not isinstance(total, dict):
        raise ReportError("estimate_layer_resources.json has no 'total' entry")
    raw["estimate"] = {**perf, "total": total}
    for key in ("max_cycles", "critical_path_cycles", "estimated_throughput_fps", "estimated_latency_ns"):
        if _num(perf, key) is None:
            raise ReportError(f"estimate_network_performance.json lacks {key}")
    values: dict[str, float] = {
        "throughput_fps": float(perf["estimated_throughput_fps"]),
        "latency_ns": float(perf["estimated_latency_ns"]),
        "max_cycles": float(perf["max_cycles"]),
        "critical_path_cycles": float(perf["critical_path_cycles"]),
    }
    for k in ("LUT", "BRAM_18K", "URAM", "DSP"):
        values[k] = float(total.get(k, 0.0))
    sources = {"throughput_fps": "estimate", "resources": "estimate"}

    rtlsim = read_json(report / "rtlsim_performance.json", required=False)
    if rtlsim is not None:
        raw["rtlsim"] = rtlsim
        fps = _num(rtlsim, "stable_throughput[images/s]", "throughput[images/s]")
        if fps is not None:
            values["throughput_fps"] = fps
            sources["throughput_fps"] = "rtlsim"
        lat = _num(rtlsim, "latency_cycles")
        if lat is not None:
            values["latency_ns"] = lat * clock_ns
    elif "rtlsim_performance" in requested:
        warnings.append("rtlsim_performance.json missing: throughput from the estimate")

    ooc = read_json(report / "ooc_synth_and_timing.json", required=False)
    wns = None
    if ooc is not None:
        raw["ooc_synth"] = ooc
        values.update(synth_resources(ooc))
        sources["resources"] = "ooc_synth"
        wns = _num(ooc, "WNS")
        fmax = _num(ooc, "fmax_mhz")
        if fmax:
            values["fmax_mhz"] = fmax
    elif "out_of_context_synth" in requested:
        warnings.append("ooc_synth_and_timing.json missing: resources from the estimate")

    post = read_json(report / "post_synth_resources.json", required=False)
    if post is not None:
        raw["post_synth"] = post
        top = post.get("(top)")
        if isinstance(top, dict):
            values.update(synth_resources(top))
            sources["resources"] = "post_synth"
    elif "bitfile" in requested:
        warnings.append("post_synth_resources.json missing: resources from synthesis or the estimate")

    power = read_power(report)
    if power is not None:
        values["power_w"] = power
    steps = read_json(output_dir / "time_per_step.json", required=False)
    if steps is not None:
        raw["time_per_step"] = steps
    raw["sources"] = sources
    if part:
        fit = device_fit({k: values[k] for k in RESOURCE_KEYS if k in values}, part, resource_limits)
        for k, v in fit.utilisation.items():
            values[f"{k}_util"] = v
        if fit.utilisation:
            values["max_util"] = max(fit.utilisation.values())
        raw["fits"], raw["exceeded"] = fit.fits, list(fit.exceeded)
    metrics = BuildMetrics(
        throughput=values["throughput_fps"], latency=values["latency_ns"],
        clock_frequency=values.get("fmax_mhz") or 1e3 / clock_ns,
        lut_utilization=values.get("LUT_util"), dsp_utilization=values.get("DSP_util"),
        bram_utilization=values.get("BRAM_18K_util"), uram_utilization=values.get("URAM_util"),
        total_power=values.get("power_w"), raw_metrics=raw)
    return FinnOutputs(values, metrics, raw, warnings, wns)


# ------------------------------------------------------------------------------ failures
#: (pattern, recoverable, what it means) — checked in order against the build log
FAILURE_PATTERNS: list[tuple[re.Pattern, bool, str]] = [
    (re.compile(r"(?i)(unable to checkout|license (checkout|error|not available|expired)|flexnet|"
                r"no valid license|failed to get a license)"), True, "tool license unavailable"),
    (re.compile(r"(?i)(out of memory|MemoryError|std::bad_alloc|cannot allocate memory|oom-kill)"), True,
     "out of memory"),
    (re.compile(r"(?i)(segmentation fault|core dumped|abnormal program termination|fatal signal|"
                r"vivado.*(crashed|terminated unexpectedly))"), True, "tool crash"),
    (re.compile(r"(?i)(too many open files|resource temporarily unavailable|no space left on device)"), True,
     "system resources exhausted"),
    (re.compile(r"ERROR: \[(Synth|Place|Route|DRC|Opt|Timing|Vivado|IP_Flow|HLS|XSIM|BD|Common)[^\]]*\].*"), False,
     "Vivado/HLS error"),
]


#: what FINN's build_dataflow prints first (the command ran FINN)
FINN_BANNER = "Building dataflow accelerator from"

#: a FINN run that failed because of its environment, not of the configuration (never cached)
ENVIRONMENT_PATTERNS = re.compile(
    r"No module named '?(finn|qonnx|brevitas|torch)|Error while finding module specification|not found in PATH|"
    r"KeyError: '(FINN_ROOT|FINN_BUILD_DIR|FINN_XILINX_PATH|VIVADO_PATH|HLS_PATH|XILINX_VIVADO|PLATFORM_REPO_PATHS)'|"
    r"command not found|No such file or directory: '[^']*(vivado|vitis|vitis_hls|xsim|xelab)'")


def environment_failure(log: str) -> bool:
    """A failure of the tools (FINN or Vivado missing or not on PATH), not of the configuration."""
    return bool(ENVIRONMENT_PATTERNS.search(log))


#: FINN exceptions whose cause is known: (pattern in the exception line, what to do)
KNOWN_EXCEPTIONS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"Could not find upstream bipolar"),
     "FINN's step_qonnx_to_finn left this model unconverted: it starts only on Quant, Trunc or BinaryQuant "
     "nodes, and every quantiser here is a BipolarQuant (1-bit weights and activations); use activations of "
     "2 bits or more, or a FINN whose qonnx_to_finn step also counts BipolarQuant"),
    (re.compile(r"KeyError: '(FINN_BUILD_DIR|FINN_ROOT)'"),
     "FINN needs FINN_ROOT and FINN_BUILD_DIR in its environment: set them in backend.options.env, or run "
     "FINN through its docker wrapper or the bin/python of setup_finn.sh (docs/finn_backend.md)"),
    (re.compile(r"KeyError: 'step_"),
     "FINN's build_dataflow has no step of that name: use FINN's own step names in the blueprint"),
    (re.compile(r"is not a valid (DataflowOutputType|ShellFlowType|AutoFIFOSizingMethod|LargeFIFOMemStyle|"
                r"VitisOptStrategyCfg|VerificationStepType)"),
     "FINN's JSON build config takes enum values (e.g. estimate_reports, vivado_zynq), not member names"),
    (re.compile(r"No module named '?(finn|qonnx)"),
     "the command's Python does not have FINN: point backend.options.command at FINN's environment "
     "(its venv python or docker wrapper; docs/finn_backend.md)"),
]


def classify_failure(log: str, returncode: int | None) -> tuple[str, bool]:
    """(message, recoverable) for a failed FINN build from its exit status and log."""
    for pattern, recoverable, what in FAILURE_PATTERNS:
        m = pattern.search(log)
        if m:
            return f"{what}: {m.group(0).strip()[:300]}", recoverable
    if returncode is not None and returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"FINN was killed by {name}" + (" (out of memory?)" if name == "SIGKILL" else ""), True
    if returncode in (137, 139):
        return f"FINN exited with status {returncode} (killed: out of memory or crash)", True
    exc = _last_exception(log)
    tail = [line for line in log.strip().splitlines() if line.strip()][-1:] or ["(empty log)"]
    message = f"FINN exception: {exc}" if exc else f"FINN build failed (exit status {returncode}): {tail[0][:300]}"
    for pattern, hint in KNOWN_EXCEPTIONS:
        if pattern.search(exc or log[-5000:]):
            return f"{message}\n  hint: {hint}", False
    return message, False


def _last_exception(log: str) -> str | None:
    """The ``Type: message`` line that ends the last Python traceback in a log."""
    idx = log.rfind("Traceback (most recent call last)")
    if idx < 0:
        return None
    for line in log[idx:].splitlines()[1:]:
        if line and not line.startswith((" ", "\t")) and ":" in line:
            return line.strip()[:500]
    return None
