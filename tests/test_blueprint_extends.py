"""Brainsmith 0.1 blueprints: extends chains, variable expansion, deep merge and step operations."""

from __future__ import annotations

import textwrap

import pytest

from bsopt.space.design_space import load_design_space


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def errors(space):
    return [e for e in space.validate() if e.severity == "error"]


@pytest.fixture
def chain(tmp_path, monkeypatch):
    """base.yaml <- mid/mid.yaml (via $BSOPT_TEST_BASE) <- leaf/leaf.yaml (via relative path)."""
    monkeypatch.setenv("BSOPT_TEST_BASE", str(tmp_path / "base"))
    write(tmp_path / "base" / "base.yaml", """
        name: base
        clock_ns: 10.0
        board: Pynq-Z1
        finn_config:
          mvau_wwidth_max: 36
          auto_fifo_depths: true
          nested: {a: 1, b: 2}
        design_space:
          kernels: [MVAU, finn:Thresholding]
          steps:
            - qonnx_to_finn
            - tidy_up
            - streamline
            - convert_to_hw
            - minimize_bit_width
            - generate_estimate_reports
        """)
    write(tmp_path / "mid" / "mid.yaml", """
        name: mid
        extends: ${BSOPT_TEST_BASE}/base.yaml
        clock_ns: 5.0
        finn_config:
          nested: {b: 3}
          folding_config_file: ${BLUEPRINT_DIR}/fold.json
        design_space:
          steps:
            - after: streamline
              insert: [[specialize_layers, "~"]]
            - at_start: {insert: [bert_cleanup]}
        """)
    leaf = write(tmp_path / "leaf" / "leaf.yaml", """
        name: leaf
        extends: ../mid/mid.yaml
        design_space:
          kernels: [{MVAU: [MVAU_hls, MVAU_rtl]}]
          steps:
            - replace: tidy_up
              with: [tidy_up, tidy_up]
            - remove: generate_estimate_reports
            - at_end: {insert: generate_estimate_reports}
        """)
    return tmp_path, leaf


def test_extends_chain_merges_and_applies_step_operations(chain):
    root, leaf = chain
    s = load_design_space(leaf)
    assert not errors(s), [str(e) for e in errors(s)]
    bp = s.blueprint
    assert bp.format == "0.1" and len(bp.extends_chain) == 3
    # dicts deep-merge (child wins), lists are replaced
    assert bp.finn_config == {"mvau_wwidth_max": 36, "auto_fifo_depths": True, "nested": {"a": 1, "b": 3},
                              "folding_config_file": f"{root / 'leaf'}/fold.json"}
    assert [e.options[0].name for e in bp.kernels] == ["MVAU"]
    # steps: base list; mid inserts a branch after streamline and a step at the start; leaf edits
    s_count = s.get_total_combinations()
    assert s_count == 2 * 2  # MVAU backends x (specialize_layers | skip)
    first = s.config(0)
    assert first.build_steps == ["bert_cleanup", "qonnx_to_finn", "tidy_up", "tidy_up", "streamline",
                                 "specialize_layers", "convert_to_hw", "minimize_bit_width",
                                 "generate_estimate_reports"]
    assert first.target["clock_ns"] == 5.0 and first.target["part"] == "xc7z020clg400-1"
    assert "specialize_layers" not in s.config(1).build_steps


def test_errors_in_a_parent_point_into_the_parent_file(chain):
    root, leaf = chain
    mid = root / "mid" / "mid.yaml"
    mid.write_text(mid.read_text().replace("clock_ns: 5.0", "clock_ns: 5.0\nclock_nss: 4"))
    errs = errors(load_design_space(leaf))
    assert len(errs) == 1
    assert errs[0].file == str(mid) and errs[0].line == 4 and errs[0].hint == "did you mean 'clock_ns'?"


def test_missing_parent_and_unset_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("BSOPT_NOT_SET", raising=False)
    a = write(tmp_path / "a.yaml", "name: a\nclock_ns: 5\nextends: nowhere.yaml\n")
    (e,) = errors(load_design_space(a))
    assert e.key_path == "extends" and "parent blueprint not found" in e.message and e.line == 3
    b = write(tmp_path / "b.yaml", "name: b\nclock_ns: 5\nextends: ${BSOPT_NOT_SET}/x.yaml\n")
    msgs = [e.message for e in errors(load_design_space(b))]
    assert any("environment variable 'BSOPT_NOT_SET' is not set" in m for m in msgs)


def test_extends_cycles_are_errors(tmp_path):
    write(tmp_path / "x.yaml", "name: x\nclock_ns: 5\nextends: y.yaml\n")
    write(tmp_path / "y.yaml", "name: y\nclock_ns: 5\nextends: z.yaml\n")
    write(tmp_path / "z.yaml", "name: z\nclock_ns: 5\nextends: x.yaml\n")
    errs = errors(load_design_space(tmp_path / "x.yaml"))
    assert len(errs) == 1 and "cycle" in errs[0].message
    assert errs[0].file == str(tmp_path / "z.yaml")
    self_ref = write(tmp_path / "self.yaml", "name: s\nclock_ns: 5\nextends: self.yaml\n")
    assert "cycle" in errors(load_design_space(self_ref))[0].message


def test_step_operations_apply_to_every_match_and_to_branches(tmp_path):
    bp = write(tmp_path / "ops.yaml", """
        name: ops
        clock_ns: 5
        design_space:
          steps:
            - tidy_up
            - streamline
            - tidy_up
            - [minimize_bit_width, "~"]
            - after: tidy_up
              insert: convert_to_hw
            - before: [minimize_bit_width, "~"]
              insert: specialize_layers
            - replace: streamline
              with: [[streamline, "~"]]
        """)
    s = load_design_space(bp)
    assert not errors(s), [str(e) for e in errors(s)]
    assert s.get_total_combinations() == 4
    assert s.config(0).build_steps == ["tidy_up", "convert_to_hw", "streamline", "tidy_up", "convert_to_hw",
                                       "specialize_layers", "minimize_bit_width"]
    assert s.config(3).build_steps == ["tidy_up", "convert_to_hw", "tidy_up", "convert_to_hw",
                                       "specialize_layers"]


def test_an_operation_on_a_missing_step_is_located(tmp_path):
    bp = write(tmp_path / "m.yaml", """
        name: m
        clock_ns: 5
        design_space:
          steps:
            - tidy_up
            - after: streamlin
              insert: convert_to_hw
        """)
    (e,) = errors(load_design_space(bp))
    assert (e.line, e.key_path) == (6, "design_space.steps[1].after") and "not found" in e.message
