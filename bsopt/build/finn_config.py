"""FINN's DataflowBuildConfig for a BuildConfig: what the finn backend and ``bsopt study export`` write."""

from __future__ import annotations

from typing import Any

OUTPUT_PRODUCTS = {
    "estimates": ["ESTIMATE_REPORTS"],
    "dataflow_graph": ["ESTIMATE_REPORTS"],
    "rtl": ["ESTIMATE_REPORTS", "STITCHED_IP", "RTLSIM_PERFORMANCE", "OOC_SYNTH"],
    "stitched_ip": ["ESTIMATE_REPORTS", "STITCHED_IP"],
    "bitfile": ["ESTIMATE_REPORTS", "STITCHED_IP", "RTLSIM_PERFORMANCE", "OOC_SYNTH", "BITFILE", "PYNQ_DRIVER",
                "DEPLOYMENT_PACKAGE"],
}


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
        "generate_outputs": OUTPUT_PRODUCTS.get(cfg.global_config.get("output_stage", "estimates"),
                                                ["ESTIMATE_REPORTS"]),
        "enable_build_pdb_debug": False,
        "verbose": False,
    }
    if target.get("board"):
        out["board"] = target["board"]
    if cfg.folding_config is not None:
        out["folding_config_file"] = "folding_config.json"
    if cfg.specialize_config is not None:
        out["specialize_layers_config_file"] = "specialize_layers_config.json"
    if cfg.build_steps:
        out["steps"] = list(cfg.build_steps)
    g = cfg.global_config
    for key in ("start_step", "stop_step"):
        if g.get(key):
            out[key] = g[key]
    if "save_artifacts" in g:
        out["save_intermediate_models"] = bool(g["save_artifacts"])
    # Brainsmith's config_flags: those FINN knows go to FINN; finn_config is FINN's own and wins
    out.update({k: v for k, v in (cfg.config_flags or {}).items() if k in FINN_FIELDS})
    out.update(cfg.finn_config)
    out["enable_build_pdb_debug"] = False  # a batch build must never stop in the debugger
    return out
