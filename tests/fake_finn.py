"""A stand-in for ``python -m finn.builder.build_dataflow BUILD_DIR`` in tests (FINN cannot be installed).

It checks its inputs the way FINN's ``build_dataflow_directory`` does, then replays a recorded FINN
run: the report folder of ``$FAKE_FINN_REFERENCE`` (one of ../shared/finn_reference/networks/*) is
written into ``<output_dir>/report`` with FINN's other outputs, and — for output stages beyond the
estimates — products shaped like FINN's (stitched IP, rtlsim performance, OOC synthesis, bitfile).
``$FAKE_FINN_MODE`` selects a failure instead: fail (a FINN step raises: traceback, "Build failed",
exit status 0 as FINN's CLI does), vivado (a synthesis error, exit 1), license (no license, exit 1),
oom (the process is SIGKILLed), hang, missing (no estimate report), corrupt (broken JSON), partial
(synthesis and rtlsim reports missing).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

# FINN dev 73ba5ed, read independently of bsopt's own tables (src/finn/builder/build_dataflow_config.py and
# build_dataflow_steps.py): DataflowBuildConfig's required fields, the values its str-Enum fields accept in
# JSON (dataclasses_json builds the Enum from the value: a member *name* is a ValueError), and the step
# names build_dataflow looks up (any other string step is a KeyError).
REQUIRED = ("output_dir", "synth_clk_period_ns", "generate_outputs")
ENUMS = {
    "generate_outputs": ("DataflowOutputType", {"stitched_ip", "estimate_reports", "out_of_context_synth",
                                                "rtlsim_performance", "bitfile", "pynq_driver", "cpp_driver",
                                                "deployment_package"}),
    "shell_flow_type": ("ShellFlowType", {"vivado_zynq", "vitis_alveo"}),
    "auto_fifo_strategy": ("AutoFIFOSizingMethod", {"characterize", "largefifo_rtlsim"}),
    "large_fifo_mem_style": ("LargeFIFOMemStyle", {"auto", "block", "distributed", "ultra"}),
    "vitis_opt_strategy": ("VitisOptStrategyCfg", {"default", "power", "performance", "performance_best", "size",
                                                   "quick"}),
    "verify_steps": ("VerificationStepType", {"finn_onnx_python", "initial_python", "streamlined_python",
                                              "folded_hls_cppsim", "node_by_node_rtlsim", "stitched_ip_rtlsim"}),
}
STEPS = {
    "step_qonnx_to_finn", "step_tidy_up", "step_streamline", "step_convert_to_hw", "step_specialize_layers",
    "step_create_dataflow_partition", "step_target_fps_parallelization", "step_apply_folding_config",
    "step_minimize_bit_width", "step_transpose_decomposition", "step_generate_estimate_reports", "step_hw_codegen",
    "step_hw_ipgen", "step_set_fifo_depths", "step_create_stitched_ip", "step_measure_rtlsim_performance",
    "step_make_driver", "step_out_of_context_synthesis", "step_synthesize_bitfile", "step_deployment_package",
    "step_loop_rolling",
}
DEFAULT_STEPS = ["step_qonnx_to_finn", "step_tidy_up", "step_streamline", "step_convert_to_hw",
                 "step_create_dataflow_partition", "step_specialize_layers", "step_target_fps_parallelization",
                 "step_apply_folding_config", "step_minimize_bit_width", "step_generate_estimate_reports"]


def read_build_config(text: str) -> dict:
    """DataflowBuildConfig.from_json as FINN does it: unknown keys ignored, a missing required field a
    KeyError, an enum member name instead of its value a ValueError."""
    cfg = json.loads(text)
    for key in REQUIRED:
        if key not in cfg:
            raise KeyError(key)
    for key, (enum, values) in ENUMS.items():
        value = cfg.get(key)
        for v in (value if isinstance(value, list) else [value] if value is not None else []):
            if v not in values:
                raise ValueError(f"{v!r} is not a valid {enum}")
    return cfg


def apply_config(path: Path, nodes: dict[str, dict]) -> list[str]:
    """FINN's ApplyConfig on the replayed network's nodes: a ``Defaults`` entry is [value, [op types]]
    pairs (asserted), attributes of unknown nodes are not applied and FINN warns about them."""
    config = json.loads(path.read_text())
    for value in config.get("Defaults", {}).values():
        assert len(value) % 2 == 0
    warnings = []
    unused = [name for name in config if name != "Defaults" and name not in nodes]
    if unused:
        warnings.append("UserWarning: \nUnused HW configurations: " + ", ".join(unused))
    return warnings


def generic_names(nodes: dict[str, dict]) -> dict[str, dict]:
    """The names FINN's GiveUniqueNodeNames gives the HW nodes before specialisation (MVAU_0, …): the
    specialize-layers config is applied to those."""
    counts: dict[str, int] = {}
    out = {}
    for node in nodes.values():
        kind = node["op_type"].removesuffix("_hls").removesuffix("_rtl")
        out[f"{kind}_{counts.get(kind, 0)}"] = node
        counts[kind] = counts.get(kind, 0) + 1
    return out


def main(build_dir: str) -> int:
    build = Path(build_dir).resolve()
    assert (build / "model.onnx").is_file(), "ONNX not found: " + str(build / "model.onnx")
    assert (build / "dataflow_build_config.json").is_file(), "Build config not found"
    cfg = read_build_config((build / "dataflow_build_config.json").read_text())
    for key in ("folding_config_file", "specialize_layers_config_file"):
        if cfg.get(key):
            assert (build / cfg[key]).is_file(), f"{key} not found: {cfg[key]}"
    steps = cfg.get("steps") or DEFAULT_STEPS
    for step in steps:
        if step not in STEPS:
            raise KeyError(step)  # build_dataflow's step lookup, before any step runs
    mode = os.environ.get("FAKE_FINN_MODE", "ok")
    ref = Path(os.environ["FAKE_FINN_REFERENCE"])
    out = build / cfg.get("output_dir", "output")
    out.mkdir(parents=True, exist_ok=True)
    if cfg.get("enable_build_pdb_debug", True) is not False:  # FINN's default: pdb waits for a terminal
        print("a batch build must set enable_build_pdb_debug to false (pdb would wait for input)")
        return 1
    nodes = {}
    if (ref / "final_node_attrs.json").exists():
        nodes = {n["name"]: n for n in json.loads((ref / "final_node_attrs.json").read_text())}
    print(f"Building dataflow accelerator from {build / 'model.onnx'}")
    print(f"Final outputs will be generated in {out}")
    with open(out / "build_dataflow.log", "a") as log:  # a step's own output goes here, not to stdout
        for i, step in enumerate(steps, 1):
            print(f"Running step: {step} [{i}/{len(steps)}]", flush=True)
            print(f"[0] Running step: {step} [{i}/{len(steps)}]", file=log)
            if step == "step_specialize_layers" and cfg.get("specialize_layers_config_file"):
                for w in apply_config(build / cfg["specialize_layers_config_file"], generic_names(nodes)):
                    print(f"[0] {w}", file=log)
            if step == "step_apply_folding_config" and cfg.get("folding_config_file"):
                for w in apply_config(build / cfg["folding_config_file"], nodes):
                    print(f"[0] {w}", file=log)
    if mode == "fail":
        print("Traceback (most recent call last):\n  File \"build_dataflow.py\", line 170, in build_dataflow_cfg\n"
              "    model = transform_step(model, cfg)\nAssertionError: Thresholding_hls_0: PE does not divide "
              "NumChannels", file=sys.stderr)
        print("enable_build_pdb_debug not set in build config, exiting...\nBuild failed")
        return 0
    if mode == "vivado":
        print("ERROR: [Synth 8-439] module 'MVAU_hls_0_Matrix_Vector_Activate_Stream_Batch' not found")
        return 1
    if mode == "license":
        print("ERROR: [Common 17-345] A valid license was not found for feature 'Synthesis' and/or device "
              "'xc7z020'. Unable to checkout a license.")
        return 1
    if mode == "oom":
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "hang":  # like Vivado under FINN: a child process that would run on
        import subprocess

        child = subprocess.Popen(["sleep", "3600"])
        (build / "child.pid").write_text(str(child.pid))
        time.sleep(3600)
    report = out / "report"
    report.mkdir(exist_ok=True)
    for f in (ref / "report").glob("*.json"):
        shutil.copyfile(f, report / f.name)
    for name in ("time_per_step.json", "final_hw_config.json", "auto_folding_config.json"):
        if (ref / name).exists():
            shutil.copyfile(ref / name, out / name)
    if mode == "missing":
        (report / "estimate_network_performance.json").unlink()
    if mode == "corrupt":
        (report / "estimate_layer_resources.json").write_text('{"total": {"LUT": 20')
    perf = json.loads((ref / "report" / "estimate_network_performance.json").read_text())
    total = json.loads((ref / "report" / "estimate_layer_resources.json").read_text())["total"]
    clk = float(cfg["synth_clk_period_ns"])
    outputs = cfg["generate_outputs"]
    if "stitched_ip" in outputs:
        ip = out / "stitched_ip"
        (ip / "ip" / "hdl").mkdir(parents=True, exist_ok=True)
        (ip / "finn_design_wrapper.v").write_text("module finn_design_wrapper(); endmodule\n")
        (ip / "ip" / "hdl" / "finn_design.v").write_text("module finn_design(); endmodule\n")
    if "rtlsim_performance" in outputs and mode != "partial":
        batch = int(cfg.get("rtlsim_batch_size", 1))
        latency = int(perf["critical_path_cycles"]) + 17  # pipeline fill the estimate does not count
        cycles = latency + (batch - 1) * int(perf["max_cycles"])
        runtime = cycles * clk * 1e-9
        rtlsim = {"N": batch, "latency_cycles": latency, "cycles": cycles, "runtime[ms]": runtime * 1e3,
                  "throughput[images/s]": batch / runtime, "fclk[mhz]": 1e3 / clk,
                  "stable_throughput[images/s]": batch / runtime if batch == 1 else
                  batch / ((cycles - latency) * clk * 1e-9)}
        (report / "rtlsim_performance.json").write_text(json.dumps(rtlsim, indent=2))
    wns = float(os.environ.get("FAKE_FINN_WNS", "0.5"))
    if "out_of_context_synth" in outputs and mode != "partial":
        proj = out / "stitched_ip" / "results_finn_design_wrapper"
        proj.mkdir(parents=True, exist_ok=True)
        (proj / "res.txt").write_text("LUT=1\n")
        fmax = 1e3 / (clk - wns)
        ooc = {"vivado_proj_folder": str(proj), "LUT": float(int(total["LUT"] * 0.75)),
               "FF": float(int(total["LUT"] * 1.1)), "DSP": float(total["DSP"]), "BRAM": 3.0, "BRAM_18K": 5.0,
               "BRAM_36K": 3.0, "URAM": float(total["URAM"]), "Carry": 10.0, "WNS": wns,
               "Delay": clk - wns, "fmax_mhz": fmax, "estimated_throughput_fps": fmax * 1e6 / perf["max_cycles"]}
        (report / "ooc_synth_and_timing.json").write_text(json.dumps(ooc, indent=2))
    if "bitfile" in outputs:
        bit = out / "bitfile"
        bit.mkdir(exist_ok=True)
        (bit / "finn-accel.bit").write_bytes(b"\x00\x09\x0f\xf0bitstream")
        (bit / "finn-accel.hwh").write_text("<hwh/>")
        top = {"LUT": int(total["LUT"]) + 4000, "FF": int(total["LUT"]) + 6000, "BRAM_36K": 4, "BRAM_18K": 7,
               "URAM": 0, "DSP": int(total["DSP"])}
        (report / "post_synth_resources.json").write_text(json.dumps({"(top)": top, "MVAU_hls_0": {"LUT": 10}}))
        (report / "post_synth_resources.xml").write_text("<table/>")
        for d in ("driver", "deploy"):
            (out / d).mkdir(exist_ok=True)
            (out / d / "README").write_text(d)
    if os.environ.get("FAKE_FINN_POWER"):
        (report / "power.rpt").write_text(
            "+--------------------------+--------------+\n"
            f"| Total On-Chip Power (W)  | {os.environ['FAKE_FINN_POWER']} |\n"
            "| Dynamic (W)              | 0.200        |\n")
    print("Completed successfully")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
