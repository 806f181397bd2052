"""MVAU/VVAU cost models: defaults, rejections and code-generation checks beyond the golden data."""

from __future__ import annotations

import pytest

import bsopt.estimate.nodes  # noqa: F401  (registers the models)
from bsopt.estimate import REGISTRY, EstimateError, estimate_node

ZYNQ, ZU, VERSAL, V80 = "xc7z020clg400-1", "xczu7ev-ffvc1156-2-e", "xcve2802-vsvh1760-2MP-e-S", "xcv80-lsva4737-2MHP-e-S"

MVAU = {"MW": 576, "MH": 64, "PE": 8, "SIMD": 32, "inputDataType": "UINT4", "weightDataType": "INT4",
        "outputDataType": "UINT4"}
VVAU = {"Channels": 64, "PE": 4, "SIMD": 3, "Kernel": [3, 3], "Dim": [8, 8], "inputDataType": "INT4",
        "weightDataType": "INT4", "outputDataType": "INT16", "noActivation": 1, "resType": "dsp"}


def _issues(op_type, attrs, part, version="latest"):
    model = REGISTRY[op_type]
    a = {**model.defaults(version), **attrs}
    model.check(a, part, version)
    return model.codegen_issues(a, part, version)


def test_mvau_hls_restype_default_depends_on_version():
    assert REGISTRY["MVAU_hls"].defaults("latest")["resType"] == "lut"
    assert REGISTRY["MVAU_hls"].defaults("0.10.1")["resType"] == "auto"
    assert REGISTRY["MVAU_rtl"].defaults("latest")["resType"] == "auto"


def test_keys_and_cycles():
    got = estimate_node("MVAU_hls", {**MVAU, "numInputVectors": [1, 4, 4]}, ZYNQ)
    assert set(got) == {"LUT", "BRAM_18K", "BRAM_efficiency", "URAM", "URAM_efficiency", "DSP", "cycles"}
    assert got["cycles"] == (64 // 8) * (576 // 32) * 16
    assert estimate_node("VVAU_rtl", VVAU, VERSAL)["cycles"] == 64 * 9 // (4 * 3) * 64


@pytest.mark.parametrize("bad", [{"PE": 3}, {"SIMD": 5}, {"PE": 0}, {"mem_mode": "bram"},
                                 {"inputDataType": "INT4X"}, {"numInputVectors": [1, 0]}])
def test_mvau_rejects(bad):
    with pytest.raises(EstimateError):
        estimate_node("MVAU_hls", {**MVAU, **bad}, ZYNQ)


@pytest.mark.parametrize("bad", [{"PE": 5}, {"SIMD": 2}, {"Kernel": [3]}, {"ram_style": "lut"}])
def test_vvau_rejects_uneven_folding_finn_would_estimate(bad):
    with pytest.raises(EstimateError):
        estimate_node("VVAU_hls", {**VVAU, **bad}, ZYNQ)


def test_v80_is_dsp58_only_in_dev():
    attrs = {**MVAU, "PE": 8, "SIMD": 6, "MW": 12, "noActivation": 1, "outputDataType": "INT16"}
    assert estimate_node("MVAU_rtl", attrs, V80, "latest")["DSP"] == 8 * 2
    assert estimate_node("MVAU_rtl", attrs, V80, "0.10.1")["DSP"] == 2 * 6


def test_mvau_hls_simd_floor_of_mw_over_1024():
    attrs = {**MVAU, "MW": 4096, "SIMD": 2}
    assert any("SIMD >= MW/1024" in s for s in _issues("MVAU_hls", attrs, ZYNQ))
    assert not _issues("MVAU_hls", {**attrs, "SIMD": 4}, ZYNQ)
    estimate_node("MVAU_hls", attrs, ZYNQ)  # estimates accept it
    with pytest.raises(EstimateError):
        estimate_node("MVAU_hls", attrs, ZYNQ, strict=True)


def test_hls_stream_width_limit():
    wide_in = {**MVAU, "MW": 4096, "SIMD": 2048, "inputDataType": "UINT8"}  # 16384-bit input stream
    assert any("input stream" in s for s in _issues("MVAU_hls", wide_in, ZU))
    wide_w = {**MVAU, "MW": 4096, "MH": 64, "PE": 64, "SIMD": 256, "weightDataType": "INT4"}  # 65536 bits
    assert any("weight stream" in s for s in _issues("MVAU_hls", wide_w, ZU))
    # up to the ap_int headers' 32768 bits a weight stream only widens AP_INT_MAX_W (FINN asserts nothing)
    assert not any("weight" in s for s in _issues("MVAU_hls", {**wide_w, "SIMD": 128}, ZU))
    assert not any("weight" in s for s in _issues("MVAU_hls", {**wide_w, "mem_mode": "internal_embedded"}, ZU))


def test_uram_needs_runtime_writeable_weights():
    attrs = {**MVAU, "ram_style": "ultra"}
    assert _issues("MVAU_hls", attrs, ZU)
    assert not _issues("MVAU_hls", attrs, VERSAL, "latest")  # dev initialises URAM on Versal
    assert _issues("MVAU_hls", attrs, VERSAL, "0.10.1")
    assert not _issues("MVAU_hls", {**attrs, "runtime_writeable_weights": 1}, ZU)


def test_rtl_variants():
    rtl = {**MVAU, "noActivation": 1, "outputDataType": "INT16"}
    assert not _issues("MVAU_rtl", rtl, ZU)
    assert any("resType" in s for s in _issues("MVAU_rtl", {**rtl, "resType": "lut"}, ZU))
    assert any("thresholds" in s for s in _issues("MVAU_rtl", {**rtl, "noActivation": 0}, ZU))
    assert any("signed weights" in s for s in _issues("MVAU_rtl", {**rtl, "weightDataType": "UINT4"}, ZU))
    assert any("embedded" in s for s in _issues("MVAU_rtl", {**rtl, "mem_mode": "internal_embedded"}, ZU))
    assert not _issues("VVAU_rtl", VVAU, VERSAL)
    assert any("Versal" in s for s in _issues("VVAU_rtl", VVAU, ZU))
    assert estimate_node("VVAU_rtl", VVAU, ZU)["DSP"] == 4  # estimated anyway: PE * ceil(SIMD/3)


def test_binary_needs_xnor_mode_in_hls():
    attrs = {**MVAU, "inputDataType": "BINARY", "weightDataType": "BINARY", "outputDataType": "UINT2"}
    assert any("binaryXnorMode" in s for s in _issues("MVAU_hls", attrs, ZYNQ))
    assert not _issues("MVAU_hls", {**attrs, "binaryXnorMode": 1}, ZYNQ)
