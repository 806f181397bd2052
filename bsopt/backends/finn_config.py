"""FINN's DataflowBuildConfig for a BuildConfig: what the finn backend and ``bsopt study export`` write."""

from __future__ import annotations

from typing import Any

from bsopt.blueprint.registry import finn_step_name

#: FINN's DataflowOutputType (dev, 2026-04): member name -> the value its JSON config carries
OUTPUT_TYPES = {
    "STITCHED_IP": "stitched_ip", "ESTIMATE_REPORTS": "estimate_reports", "OOC_SYNTH": "out_of_context_synth",
    "RTLSIM_PERFORMANCE": "rtlsim_performance", "BITFILE": "bitfile", "PYNQ_DRIVER": "pynq_driver",
    "CPP_DRIVER": "cpp_driver", "DEPLOYMENT_PACKAGE": "deployment_package",
}
_EST, _IP, _SIM, _OOC = "estimate_reports", "stitched_ip", "rtlsim_performance", "out_of_context_synth"

#: bsopt's output stage -> FINN's generate_outputs (enum values, as FINN's from_json expects them)
OUTPUT_PRODUCTS = {
    "estimates": [_EST],
    "dataflow_graph": [_EST],
    "rtl": [_EST, _IP, _SIM, _OOC],
    "stitched_ip": [_EST, _IP],
    "bitfile": [_EST, _IP, _SIM, _OOC, "bitfile", "pynq_driver", "deployment_package"],
}

#: output stages whose metrics are FINN's estimate reports: the build stops after them
ESTIMATE_STAGES = ("estimates", "dataflow_graph")
ESTIMATE_STEP = "step_generate_estimate_reports"
#: FINN's estimate_only_dataflow_steps (build_dataflow_config.py)
ESTIMATE_ONLY_STEPS = (
    "step_qonnx_to_finn", "step_tidy_up", "step_streamline", "step_convert_to_hw", "step_create_dataflow_partition",
    "step_specialize_layers", "step_target_fps_parallelization", "step_apply_folding_config",
    "step_minimize_bit_width", ESTIMATE_STEP,
)

#: FINN's str-Enum fields of DataflowBuildConfig: member name -> value (a JSON config must carry values)
ENUM_FIELDS: dict[str, dict[str, str]] = {
    "generate_outputs": OUTPUT_TYPES,
    "shell_flow_type": {"VIVADO_ZYNQ": "vivado_zynq", "VITIS_ALVEO": "vitis_alveo"},
    "auto_fifo_strategy": {"CHARACTERIZE": "characterize", "LARGEFIFO_RTLSIM": "largefifo_rtlsim"},
    "large_fifo_mem_style": {"AUTO": "auto", "BRAM": "block", "LUTRAM": "distributed", "URAM": "ultra"},
    "vitis_opt_strategy": {"DEFAULT": "default", "POWER": "power", "PERFORMANCE": "performance",
                           "PERFORMANCE_BEST": "performance_best", "SIZE": "size", "BUILD_SPEED": "quick"},
    "verify_steps": {"QONNX_TO_FINN_PYTHON": "finn_onnx_python", "TIDY_UP_PYTHON": "initial_python",
                     "STREAMLINED_PYTHON": "streamlined_python", "FOLDED_HLS_CPPSIM": "folded_hls_cppsim",
                     "NODE_BY_NODE_RTLSIM": "node_by_node_rtlsim", "STITCHED_IP_RTLSIM": "stitched_ip_rtlsim"},
}

def enum_value(field: str, value: Any) -> Any:
    """A FINN enum field's value as FINN's JSON wants it: member names (``ESTIMATE_REPORTS``) become
    values (``estimate_reports``); values and unknown strings pass unchanged (FINN judges those)."""
    members = ENUM_FIELDS.get(field)
    if members is None or value is None:
        return value
    if isinstance(value, list | tuple):
        return [enum_value(field, v) for v in value]
    if isinstance(value, str):
        key = value.split(".")[-1].upper()  # also "DataflowOutputType.ESTIMATE_REPORTS"
        return members.get(key, value)
    return value


#: FINN's DataflowBuildConfig fields (dev, 2026-04): blueprint config_flags with these names are passed on
FINN_FIELDS = frozenset((
    "output_dir", "synth_clk_period_ns", "generate_outputs", "specialize_layers_config_file",
    "folding_config_file", "target_fps", "folding_two_pass_relaxation", "verify_steps", "verify_input_npy",
    "verify_expected_output_npy", "verify_save_full_context", "verify_save_rtlsim_waveforms", "verification_atol",
    "stitched_ip_gen_dcp", "signature", "mvau_wwidth_max", "standalone_thresholds", "minimize_bit_width",
    "infer_shuffle_skip_first", "board", "shell_flow_type", "fpga_part", "auto_fifo_depths", "split_large_fifos",
    "auto_fifo_strategy", "large_fifo_mem_style", "fifosim_input_throttle", "fifosim_n_inferences",
    "fifosim_save_waveform", "hls_clk_period_ns", "default_swg_exception", "vitis_platform",
    "vitis_floorplan_file", "vitis_opt_strategy", "save_intermediate_models", "enable_hw_debug",
    "enable_build_pdb_debug", "verbose", "steps", "start_step", "stop_step", "max_multithreshold_bit_width",
    "rtlsim_batch_size", "rtlsim_use_vivado_comps", "mlo", "loop_body_hierarchy", "loop_body_range",
    "cpp_driver_version",
))


def dataflow_build_config(cfg) -> dict[str, Any]:
    """FINN's DataflowBuildConfig for a BuildConfig (the finn backend writes the same file)."""
    target = cfg.target
    out = {
        "output_dir": "output",
        "synth_clk_period_ns": target.get("clock_ns") or 10.0,
        "fpga_part": target.get("part"),
        "generate_outputs": list(OUTPUT_PRODUCTS.get(cfg.global_config.get("output_stage", "estimates"),
                                                     [_EST])),
        "enable_build_pdb_debug": False,
        "verbose": False,
    }
    if target.get("board"):
        out["board"] = target["board"]
    if cfg.folding_config is not None:
        out["folding_config_file"] = "folding_config.json"
    if cfg.specialize_config is not None:
        out["specialize_layers_config_file"] = "specialize_layers_config.json"
    g = cfg.global_config
    stage = g.get("output_stage", "estimates")
    if cfg.build_steps:
        out["steps"] = [finn_step_name(s) or s for s in cfg.build_steps]
    elif stage in ESTIMATE_STAGES:  # FINN's default steps go on to HLS/Vivado: stop at the estimates
        out["steps"] = list(ESTIMATE_ONLY_STEPS)
    for key in ("start_step", "stop_step"):
        if g.get(key):
            out[key] = finn_step_name(g[key]) or g[key]
    steps = out.get("steps") or []
    if stage in ESTIMATE_STAGES and "stop_step" not in out and ESTIMATE_STEP in steps[:-1]:
        # a flow written for synthesis, run for its estimates only: the later steps need Vitis/Vivado
        out["stop_step"] = ESTIMATE_STEP
    if "save_artifacts" in g:
        out["save_intermediate_models"] = bool(g["save_artifacts"])
    # Brainsmith's config_flags: those FINN knows go to FINN; finn_config is FINN's own and wins
    out.update({k: v for k, v in (cfg.config_flags or {}).items() if k in FINN_FIELDS})
    out.update(cfg.finn_config)
    for key in ENUM_FIELDS:
        if key in out:
            out[key] = enum_value(key, out[key])
    out["enable_build_pdb_debug"] = False  # a batch build must never stop in the debugger
    return out
