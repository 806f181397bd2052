"""Every class of blueprint error is reported with file:line:column, the key path and a hint."""

from __future__ import annotations

import textwrap

import pytest
from finn_reference import network_dirs, prepost_model

from bsopt.blueprint.diagnostics import BlueprintError
from bsopt.cli import main
from bsopt.errors import InputError
from bsopt.space.design_space import load_design_space

HAVE_REF = bool(network_dirs())


def write(tmp_path, text, name="bp.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def only_error(path, model=None):
    errs = [e for e in load_design_space(path, model).validate() if e.severity == "error"]
    assert len(errs) == 1, [str(e) for e in errs]
    return errs[0]


BASE = """\
version: "3.0"
name: t
hw_compiler:
  kernels: [MVAU]
  build_steps: [step_streamline, step_minimize_bit_width]
"""


def test_yaml_syntax_error_names_the_position(tmp_path):
    path = write(tmp_path, BASE + "search: {strategy: tpe\n")
    with pytest.raises(InputError) as exc:
        load_design_space(path)
    assert str(exc.value).startswith(f"{path}:7:1: YAML syntax error")


def test_duplicate_keys_are_errors(tmp_path):
    path = write(tmp_path, BASE + "search: {}\nsearch: {}\n")
    with pytest.raises(InputError, match=r"bp.yaml:7:1: duplicate key 'search'"):
        load_design_space(path)


def test_numbers_in_exponent_notation_are_numbers(tmp_path):
    """`1e12` (YAML 1.2, Python) is a number, although YAML 1.1 reads it as a string; quoted it stays one."""
    path = write(tmp_path, BASE + "search:\n  constraints:\n    - {metric: throughput_fps, operator: '>=', "
                 "value: 1e12}\n    - {metric: LUT, operator: '<=', value: 5E+4}\n")
    space = load_design_space(path)
    assert [e for e in space.validate() if e.severity == "error"] == []
    assert [c.value for c in space.search_config.constraints] == [1e12, 5e4]
    quoted = write(tmp_path, BASE + "search:\n  constraints: [{metric: LUT, operator: '<=', value: '1e3'}]\n",
                   name="quoted.yaml")
    assert "expected a number, got '1e3'" in only_error(quoted).message


def test_alias_bombs_cycles_and_deep_nesting_are_refused_quickly(tmp_path, capsys):
    import resource
    import time

    rows = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        rows.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")  # 9^9 values when expanded
    cases = {"bomb": ("\n".join(rows) + "\n", "expands to more than"),
             "cycle": ("a: &a [*a]\n", "a cycle"),
             "cycle_map": ("a: &a {b: *a}\n", "a cycle"),
             "deep": ("x: " + "[" * 20000 + "]" * 20000 + "\n", "nested too deeply")}
    for name, (text, message) in cases.items():
        path = write(tmp_path, BASE + text, f"{name}.yaml")
        t = time.perf_counter()
        with pytest.raises(InputError, match=message):
            load_design_space(path)
        assert time.perf_counter() - t < 10, name
        assert main(["blueprint", "validate", str(path)]) == 2
        assert message in capsys.readouterr().err
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 2_000_000  # KiB: the bomb never expanded
    # ordinary anchors and aliases still work
    ok = write(tmp_path, BASE + "x: &pe [1, 2]\ny: *pe\n", "ok.yaml")
    with pytest.raises(BlueprintError):  # x and y are unknown keys: located errors, not a YAML failure
        load_design_space(ok).require_valid()


def test_unknown_key_suggests_the_right_one(tmp_path):
    e = only_error(write(tmp_path, BASE + "search:\n  max_evalutions: 10\n"))
    assert (e.line, e.column, e.key_path) == (7, 3, "search.max_evalutions")
    assert "unknown key" in e.message and e.hint == "did you mean 'max_evaluations'?"


def test_wrong_type(tmp_path):
    e = only_error(write(tmp_path, BASE + "search:\n  parallel_builds: four\n"))
    assert (e.line, e.key_path) == (7, "search.parallel_builds") and "expected an integer" in e.message


@pytest.mark.parametrize(
    "snippet, path, words",
    [
        ("search:\n  parallel_builds: 0\n", "search.parallel_builds", "at least 1"),
        ("global:\n  working_directory: ''\n", "global.working_directory", "must not be empty"),
        ("global:\n  output_stage: bitstream\n", "global.output_stage", "unknown output stage"),
        ("search:\n  constraints:\n    - {metric: LUTs, operator: '<=', value: 5}\n",
         "search.constraints[0].metric", "unknown metric 'LUTs'"),
        ("search:\n  constraints:\n    - {metric: LUT, operator: '=<', value: 5}\n",
         "search.constraints[0].operator", "unknown operator"),
        ("objectives: [throughput_fps, energy]\n", "objectives[1]", "unknown metric 'energy'"),
        ("target:\n  clock_ns: {low: 10, high: 5}\n", "target.clock_ns", "empty range"),
        ("target:\n  board: Pynq-Z3\n", "target.board", "unknown board"),
        ("parameters:\n  mvau_wwidth_max: {choices: [36]}\n", "parameters.mvau_wwidth_max",
         "must name where its value goes"),
    ],
)
def test_bad_values(tmp_path, snippet, path, words):
    e = only_error(write(tmp_path, BASE + snippet))
    assert e.key_path == path and words in e.message
    assert e.line >= 6 and e.hint


def test_unknown_kernel_and_backend(tmp_path):
    path = write(tmp_path, """\
    version: "3.0"
    name: t
    hw_compiler:
      kernels: [MVUA, [Thresholding, [hls, vhdl]]]
      build_steps: [step_streamline, step_minimize_bit_width]
    """)
    errs = [e for e in load_design_space(path).validate() if e.severity == "error"]
    assert [(e.line, e.key_path) for e in errs] == [(4, "hw_compiler.kernels[0]"), (4, "hw_compiler.kernels[1]")]
    assert "unknown kernel 'MVUA'" in errs[0].message and errs[0].hint == "did you mean 'MVAU'?"
    assert "unknown backend 'vhdl'" in errs[1].message and "hls, rtl" in errs[1].hint


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_a_kernel_the_model_lacks_is_a_located_warning_as_in_brainsmith(tmp_path):
    path = write(tmp_path, f"""\
    version: "3.0"
    name: t
    model: {prepost_model("tfc_w2a2")}
    hw_compiler:
      kernels: [MVAU, LayerNorm]
      build_steps: [step_streamline, step_minimize_bit_width]
    """)
    found = load_design_space(path).validate()
    assert [e.severity for e in found] == ["warning"]  # a kernel that matches nothing: not an error
    e = found[0]
    assert (e.line, e.key_path) == (5, "hw_compiler.kernels[1]") and "matches no layer of this model" in e.message


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
def test_one_problem_is_one_message_however_many_layers_it_touches(tmp_path):
    path = write(tmp_path, f"""\
    version: "3.0"
    name: t
    model: {prepost_model("tfc_w2a2")}
    hw_compiler:
      build_steps: [step_streamline, step_minimize_bit_width]
    folding:
      kinds:
        MVAU: {{PE: all, SIMDD: all}}
    """)
    found = load_design_space(path).validate()
    assert len(found) == 1 and "'SIMDD' is not a choice" in found[0].message  # TFC has 4 MVAU layers
    # a word where a number belongs (a typo of 'all'): once, with the keyword, not each layer's divisors
    path.write_text(path.read_text().replace("SIMDD: all", "SIMD: al"))
    found = load_design_space(path).validate()
    assert len(found) == 1 and "SIMD='al' is no value: write 'all'" in found[0].message
    assert found[0].hint == "did you mean 'all'?"


@pytest.mark.skipif(not HAVE_REF, reason="reference data missing")
@pytest.mark.parametrize(
    "folding, path, words",
    [
        ("layers:\n    MVAU_hls_0: {PE: [3]}", "folding.layers.MVAU_hls_0.PE[0]", "PE=3 is not legal"),
        ("layers:\n    MVAU_hls_9: {PE: all}", "folding.layers.MVAU_hls_9", "not in the model"),
        ("kinds:\n    MVAU: {PE: all, SMID: all}", "folding.kinds.MVAU.SMID", "not a choice"),
        ("kinds:\n    MVAU: {ram_style: [ultra]}", "folding.kinds.MVAU.ram_style[0]", "not legal"),
        ("kinds:\n    MVAU: {PE: {min: 100}}", "folding.kinds.MVAU.PE", "no legal PE"),
    ],
)
def test_illegal_folding(tmp_path, folding, path, words):
    text = (f'version: "3.0"\nname: t\nmodel: {prepost_model("tfc_w2a2")}\nhw_compiler:\n'
            f"  build_steps: [step_streamline, step_minimize_bit_width]\nsearch: {{strategy: tpe}}\nfolding:\n  {folding}\n")
    bp = tmp_path / "bp.yaml"
    bp.write_text(text)
    errs = [e for e in load_design_space(bp).validate() if e.severity == "error"]
    assert any(e.key_path == path and words in e.message for e in errs), [str(e) for e in errs]
    assert all(e.line > 0 and e.file == str(bp) for e in errs)


def test_per_layer_folding_without_a_model(tmp_path):
    e = only_error(write(tmp_path, BASE + "folding:\n  kinds:\n    MVAU: {PE: all}\n"))
    assert e.key_path == "folding" and "needs the model" in e.message and "--model" in e.hint


def test_exhaustive_over_the_limit(tmp_path):
    text = """\
target:
  clock_ns: {low: 1.0, high: 100.0, step: 0.01}
global:
  max_combinations: 1000
"""
    path = write(tmp_path, BASE + text + "search: {strategy: exhaustive}\n")
    e = only_error(path)
    assert e.key_path == "search.strategy" and "exceeds global.max_combinations (1,000)" in e.message
    # without a search section the strategy is auto (for v3 too): nothing to refuse
    plain = write(tmp_path, BASE + text, "plain.yaml")
    assert [i for i in load_design_space(plain).validate() if i.severity == "error"] == []


def test_empty_build_steps(tmp_path):
    path = write(tmp_path, 'version: "3.0"\nname: t\nhw_compiler:\n  build_steps: []\n')
    e = only_error(path)
    assert (e.line, e.key_path) == (4, "hw_compiler.build_steps") and "empty build_steps" in e.message


def test_unknown_steps_are_warnings_unless_the_backend_runs_them(tmp_path):
    text = BASE.replace("step_minimize_bit_width]", "step_minimize_bit_width, my_custom_step]")
    warn = [e for e in load_design_space(write(tmp_path, text)).validate()]
    assert [e.severity for e in warn] == ["warning"] and "my_custom_step" in warn[0].message
    errs = [e for e in load_design_space(write(tmp_path, text + "backend: finn\n", "f.yaml")).validate()]
    assert [e.severity for e in errs] == ["error"]


def test_format_detection_and_v3_version(tmp_path):
    e = only_error(write(tmp_path, "name: x\nsearch: {}\n"))
    assert "cannot tell the blueprint format" in e.message
    e = only_error(write(tmp_path, BASE.replace('"3.0"', '"2.0"'), "v.yaml"))
    assert e.key_path == "version" and "unsupported blueprint version" in e.message


def test_v01_requires_clock_and_board_for_bitfiles(tmp_path):
    path = write(tmp_path, "name: x\noutput: bitfile\ndesign_space:\n  steps: [streamline]\n")
    errs = [e for e in load_design_space(path).validate() if e.severity == "error"]
    msgs = sorted(e.message for e in errs)
    assert any("missing 'clock_ns'" in m for m in msgs) and any("requires a board" in m for m in msgs)


def test_require_valid_raises_with_every_error(tmp_path):
    path = write(tmp_path, BASE + "search:\n  parallel_builds: 0\n  max_evaluations: 0\n")
    with pytest.raises(BlueprintError) as exc:
        load_design_space(path).require_valid()
    assert len(exc.value.errors) == 2 and str(exc.value).startswith("2 errors in blueprint")


def test_cli_validate_and_count(tmp_path, capsys):
    good = write(tmp_path, BASE + "hw_compiler_extra: 1\n".replace("hw_compiler_extra: 1\n", "")
                 + "target:\n  clock_ns: {choices: [5, 10]}\n", "good.yaml")
    assert main(["blueprint", "validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert "valid v3 blueprint" in out and "2 configurations" in out
    assert main(["blueprint", "count", str(good)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "2"
    bad = write(tmp_path, BASE + "search:\n  max_evalutions: 10\n", "bad.yaml")
    assert main(["blueprint", "validate", str(bad)]) == 2  # bad input, as every command
    err = capsys.readouterr().err
    assert f"{bad}:7:3: error: search.max_evalutions: unknown key" in err
    assert main(["blueprint", "count", str(bad)]) == 2
    assert main(["blueprint", "validate", str(tmp_path / "missing.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_a_float_model_is_fine_without_per_layer_choices(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3), dtype=np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="fc")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w])
    model = tmp_path / "float.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    plain = write(tmp_path, BASE, "plain.yaml")
    s = load_design_space(plain, model)
    assert not s.errors and s.get_total_combinations() == 1 and s.model_sha256
    per_layer = write(tmp_path, BASE + "search: {strategy: tpe}\nfolding:\n  kinds:\n    MVAU: {PE: all}\n", "pl.yaml")
    (e,) = load_design_space(per_layer, model).errors
    assert e.file == "--model" and "not quantized" in e.message
    missing = load_design_space(plain, tmp_path / "nope.onnx").errors
    assert len(missing) == 1 and "model file not found" in missing[0].message


def test_a_missing_model_is_reported_once(tmp_path):
    per_layer = write(tmp_path, BASE + "search: {strategy: tpe}\nfolding:\n  kinds:\n    MVAU: {PE: all}\n", "pl.yaml")
    errs = load_design_space(per_layer, tmp_path / "nope.onnx").errors
    assert len(errs) == 1 and errs[0].file == "--model" and "model file not found" in errs[0].message
