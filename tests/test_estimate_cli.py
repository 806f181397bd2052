"""bsopt estimate / bsopt fold from the command line, against FINN's reports."""

from __future__ import annotations

import json

import pytest
from finn_reference import NETWORKS, load_json, network_dirs, prepost_model

import bsopt
from bsopt.cli import main

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")


def test_estimate_writes_finns_reports(tmp_path, capsys):
    d = NETWORKS / "cnv_w1a1_folded"
    out = tmp_path / "report"
    code = main(["estimate", "--model", str(prepost_model("cnv_w1a1_folded")), "--folding",
                 str(d / "folding_config.json"), "--board", "Pynq-Z1", "--clock-ns", "10", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "MVAU_hls_5" in text and "fits" in text and "3,051.8 fps" in text
    for name in ("estimate_layer_resources.json", "estimate_layer_cycles.json", "estimate_network_performance.json"):
        assert json.loads((out / name).read_text()) == load_json(d / "report" / name)


def test_estimate_json_and_bad_inputs(tmp_path, capsys):
    model = str(prepost_model("tfc_w2a2"))
    assert main(["estimate", "--model", model, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["performance"]["max_cycles"] == 784 * 64 and data["fit"]["part"] == "xc7z020clg400-1"
    assert main(["estimate", "--model", model, "--board", "Pynq-Z9"]) == 2
    assert "unknown board 'Pynq-Z9'" in capsys.readouterr().err
    bad = tmp_path / "f.json"
    bad.write_text(json.dumps({"MVAU_hls_0": {"PE": 3}}))
    assert main(["estimate", "--model", model, "--folding", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "MVAU_hls_0" in err and "PE" in err and "Traceback" not in err
    assert main(["estimate", "--model", model, "--clock-ns", "0"]) == 2


def test_fold_reproduces_finns_auto_folding(tmp_path, capsys):
    d = NETWORKS / "cnv_w1a1"
    out = tmp_path / "folding.json"
    assert main(["fold", "--model", str(prepost_model("cnv_w1a1")), "--target-fps", "3000", "--clock-ns", "10",
                 "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == load_json(d / "auto_folding_config.json")
    assert "33,020" in capsys.readouterr().out
    # a low target makes FINN pick a folding its own HLS code generation rejects: bsopt says so
    assert main(["fold", "--model", str(prepost_model("cnv_w1a1")), "--target-fps", "100", "--out",
                 str(out)]) == 0
    assert "code generation would reject" in capsys.readouterr().out


def test_public_estimate_node():
    r = bsopt.estimate_node("MVAU_hls", {"MW": 64, "MH": 64, "PE": 4, "SIMD": 8, "inputDataType": "INT2",
                                         "weightDataType": "INT2", "outputDataType": "INT2", "noActivation": 1},
                            "xc7z020clg400-1")
    assert r["cycles"] == (64 // 4) * (64 // 8)
    with pytest.raises(bsopt.BsoptError):
        bsopt.estimate_node("MVAU_hls", {"MW": 64, "MH": 64, "PE": 3, "SIMD": 8, "inputDataType": "INT2",
                                         "weightDataType": "INT2", "outputDataType": "INT2"}, "xc7z020clg400-1")
    with pytest.raises(bsopt.BsoptError, match="strict|1024|code generation"):
        bsopt.estimate_node("MVAU_hls", {"MW": 4096, "MH": 8, "PE": 1, "SIMD": 2, "inputDataType": "INT2",
                                         "weightDataType": "INT2", "outputDataType": "INT2", "noActivation": 1},
                            "xc7z020clg400-1", strict=True)
