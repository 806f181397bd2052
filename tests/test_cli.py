"""The command line as a new user meets it: help, version, inspect, and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from finn_reference import NETWORKS, load_json, network_dirs, prepost_model
from onnx import TensorProto, helper, numpy_helper

from bsopt import __version__
from bsopt.cli import main

HAVE_REF = bool(network_dirs())


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version_and_help_list_the_commands(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"bsopt {__version__}"
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("model", "quickstart"):
        assert command in out
    code, out, _ = run(capsys, "model", "--help")
    for command in ("export", "inspect", "zoo"):
        assert command in out


def test_unknown_command_is_a_usage_error(capsys):
    code, _, err = run(capsys, "frobnicate")
    assert code == 2
    assert "frobnicate" in err


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_inspect_json_lists_finns_layers(capsys):
    code, out, _ = run(capsys, "model", "inspect", str(prepost_model("cnv_w1a1")), "--json")
    assert code == 0
    info = json.loads(out)
    ref = load_json(NETWORKS / "cnv_w1a1" / "final_node_attrs.json")
    assert [(layer["name"], layer["op_type"]) for layer in info["layers"]] == [
        (n["name"], n["op_type"]) for n in ref
    ]
    mvau = next(layer for layer in info["layers"] if layer["name"] == "MVAU_hls_0")
    assert mvau["macs"] == 27 * 64 * 30 * 30
    assert mvau["params"] == 27 * 64 and mvau["param_bits"] == 27 * 64 * 2
    assert mvau["attrs"]["accDataType"] == "INT13"


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_inspect_table_and_finn_version_switch(capsys):
    path = str(prepost_model("cnv_w1a1"))
    code, out, _ = run(capsys, "model", "inspect", path)
    assert code == 0 and "Pool_hls_0" in out and "MVAU_hls_8" in out
    code, out, _ = run(capsys, "model", "inspect", path, "--finn-version", "0.10.1")
    assert code == 0 and "StreamingMaxPool_hls_0" in out


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_inspect_applies_a_folding_config(capsys, tmp_path):
    cfg = tmp_path / "f.json"
    cfg.write_text(json.dumps({"MVAU_hls_0": {"runtime_writeable_weights": 1}}))
    code, out, _ = run(capsys, "model", "inspect", str(prepost_model("tfc_w2a2")), "--json",
                       "--folding-config", str(cfg))
    assert code == 0
    layers = {layer["name"]: layer for layer in json.loads(out)["layers"]}
    assert layers["MVAU_hls_0"]["attrs"]["accDataType"] == "INT13"
    cfg.write_text("{not json")
    code, _, err = run(capsys, "model", "inspect", str(prepost_model("tfc_w2a2")), "--folding-config", str(cfg))
    assert code == 2 and "invalid JSON" in err and "line 1" in err


def _float_model(path):
    w = numpy_helper.from_array(np.ones((4, 3), dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")], "float",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def _model_with_sigmoid(path):
    scale = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "s")
    zp = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "z")
    bw = numpy_helper.from_array(np.array(4.0, dtype=np.float32), "b")
    nodes = [
        helper.make_node("Quant", ["x", "s", "z", "b"], ["q"], name="act_quant", domain="qonnx.custom_op.general",
                         signed=1, narrow=0, rounding_mode="ROUND"),
        helper.make_node("Sigmoid", ["q"], ["y"], name="gate_sigmoid"),
    ]
    graph = helper.make_graph(
        nodes, "sigmoid", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], [scale, zp, bw],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("qonnx.custom_op.general", 1)])
    anno = onnx.TensorAnnotation(tensor_name="x")
    anno.quant_parameter_tensor_names.append(onnx.StringStringEntryProto(key="finn_datatype", value="INT8"))
    model.graph.quantization_annotation.append(anno)
    onnx.save(model, path)


@pytest.mark.parametrize(
    "case, expect",
    [
        ("missing", "model file not found"),
        ("garbage", "not an ONNX model"),
        ("empty", "the file is empty"),
        ("float", "not quantized"),
        ("unsupported", "operator 'Sigmoid' cannot be mapped"),
    ],
)
def test_bad_models_give_one_clear_error(capsys, tmp_path, case, expect):
    path = tmp_path / f"{case}.onnx"
    if case == "garbage":
        path.write_bytes(b"this is not a protobuf \xff\xfe" * 10)
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "float":
        _float_model(path)
    elif case == "unsupported":
        _model_with_sigmoid(path)
    code, out, err = run(capsys, "model", "inspect", str(path))
    assert code == 2
    assert expect in err
    assert str(path) in err  # says where
    assert "hint:" in err  # says what to do
    assert "Traceback" not in err + out
    if case == "unsupported":
        assert "gate_sigmoid" in err and "MatMul" in err  # names the node and the supported ops


def test_errors_exit_nonzero_without_traceback_in_a_real_process(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("hello")
    proc = subprocess.run([sys.executable, "-m", "bsopt", "model", "inspect", str(bad)], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert "not an ONNX model" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "bsopt", "--debug", "model", "inspect", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "not an ONNX model" in proc.stderr
    # --debug is the root's option, and is taken after the subcommand too
    proc = subprocess.run([sys.executable, "-m", "bsopt", "model", "inspect", str(bad), "--debug"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" in proc.stderr and "No such option" not in proc.stderr


@pytest.mark.parametrize("argv", [["model", "zoo"],                        # a rich table
                                  ["model", "zoo", "--help"],              # click's help
                                  ["study", "list", "--json"]])            # print()
def test_a_reader_that_has_gone_ends_the_command_quietly(tmp_path, argv):
    """`bsopt … | head`: once the reader has closed the pipe, stop without a message, with 141 (128 + SIGPIPE)."""
    import os

    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command writes a byte
    proc = subprocess.run([sys.executable, "-m", "bsopt", "--workdir", str(tmp_path), *argv], stdout=write,
                          stderr=subprocess.PIPE, text=True)
    os.close(write)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""


def test_export_options_given_twice_are_refused(capsys, tmp_path):
    code, _, err = run(capsys, "model", "export", "bert", "-o", str(tmp_path / "x.onnx"), "--set", "layers=2",
                       "--set", "layers=3")
    assert code == 2 and "--set layers is given twice" in err and not (tmp_path / "x.onnx").exists()


def test_export_argument_errors(capsys, tmp_path):
    code, _, err = run(capsys, "model", "export", "--out", str(tmp_path / "x.onnx"))
    assert code == 2 and "missing model NAME" in err
    code, _, err = run(capsys, "model", "export", "--module", "a.b:c", "--out", str(tmp_path / "x.onnx"))
    assert code == 2 and "--input-shape" in err
    code, _, err = run(capsys, "model", "export", "--module", "a.b:c", "--input-shape", "1,x",
                       "--out", str(tmp_path / "x.onnx"))
    assert code == 2 and "invalid --input-shape" in err


def test_cli_reference_is_current():
    """docs/cli.md is generated from the commands (python -m bsopt.cli.reference > docs/cli.md)."""
    from pathlib import Path

    from bsopt.cli.reference import render

    doc = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    assert doc.read_text() == render(), "regenerate it: python -m bsopt.cli.reference > docs/cli.md"


def test_inspect_estimate_and_fold_take_zoo_references(capsys, tmp_path, monkeypatch):
    """As blueprints do: the reference is exported once into the model cache, the file is what
    `bsopt model export` writes, and a bad reference is one located error."""
    pytest.importorskip("brevitas")
    monkeypatch.setenv("BSOPT_MODEL_CACHE", str(tmp_path / "models"))
    code, out, _ = run(capsys, "model", "inspect", "zoo:tfc?w=2&a=2", "--json")
    assert code == 0
    by_ref = json.loads(out)
    code, _, _ = run(capsys, "model", "export", "tfc", "-w", "2", "-a", "2", "-o", str(tmp_path / "tfc.onnx"))
    assert code == 0
    code, out, _ = run(capsys, "model", "inspect", str(tmp_path / "tfc.onnx"), "--json")
    by_file = json.loads(out)
    assert by_ref["sha256"] == by_file["sha256"] and by_ref["layers"] == by_file["layers"]
    assert [p.name for p in (tmp_path / "models").glob("*.onnx")] == ["tfc_w2a2_s0.onnx"]
    code, out, _ = run(capsys, "estimate", "--model", "zoo:tfc?w=2&a=2")
    assert code == 0 and "fps" in out
    code, _, err = run(capsys, "model", "inspect", "zoo:tfc?w=2&a=2&layers=3")
    assert code == 2 and "zoo:tfc?w=2&a=2&layers=3: unknown zoo option 'layers'" in err
