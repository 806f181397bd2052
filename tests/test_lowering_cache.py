"""The on-disk cache of lowered models: a second command on the same model reads the lowered graph
instead of importing onnx and lowering again; the result equals a fresh lowering; other options,
other content or edited lowering code are other entries; a damaged entry is computed again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from finn_reference import network_dirs, prepost_model

pytestmark = pytest.mark.skipif(not network_dirs(), reason="FINN reference data not found")

PROBE = """
import sys, time
from bsopt.lowering import lower
from bsopt.lowering.info import inspect_model
t = time.time()
g = lower(sys.argv[1], fpgapart=sys.argv[2])
info = inspect_model(sys.argv[1])
print(len(g.layers), 'onnx' in sys.modules, g.to_json() == info.dataflow.to_json() or sys.argv[2] != 'xc7z020clg400-1')
"""


def _probe(tmp_path, model, part="xc7z020clg400-1", **env):
    out = subprocess.run([sys.executable, "-c", PROBE, str(model), part], capture_output=True, text=True, check=True,
                         env={**os.environ, "BSOPT_MODEL_CACHE": str(tmp_path / "models"), **env}).stdout.split()
    return int(out[0]), out[1] == "True", out[2] == "True"


def test_a_second_command_reads_the_lowered_model_without_onnx(tmp_path):
    model = prepost_model("tfc_w2a2")
    n, onnx_loaded, _ = _probe(tmp_path, model)
    assert onnx_loaded  # the first lowers
    kinds = sorted(p.name.split("-")[1] for p in (tmp_path / "models" / "lowered").glob("*.pkl"))
    assert kinds == ["generic", "graph", "info"]  # the part-independent graph, this part's, the information
    n2, onnx_loaded2, same = _probe(tmp_path, model)
    assert (n2, onnx_loaded2, same) == (n, False, True)
    # another part: another graph entry, specialised from the generic one without reading the model
    n3, onnx_loaded3, _ = _probe(tmp_path, model, part="xczu7ev-ffvc1156-2-e")
    assert (n3, onnx_loaded3) == (n, False)
    kinds = sorted(p.name.split("-")[1] for p in (tmp_path / "models" / "lowered").glob("*.pkl"))
    assert kinds == ["generic", "graph", "graph", "info"]


def test_cached_lowering_equals_a_fresh_one_and_damaged_entries_are_recomputed(tmp_path, monkeypatch):
    from bsopt.lowering import lower

    monkeypatch.setenv("BSOPT_MODEL_CACHE", str(tmp_path / "models"))
    model = prepost_model("cnv_w1a1")
    first = lower(model).to_json()
    monkeypatch.setenv("BSOPT_LOWERING_CACHE", "0")
    fresh = lower(model).to_json()
    monkeypatch.delenv("BSOPT_LOWERING_CACHE")
    assert lower(model).to_json() == first == fresh
    (entry,) = (tmp_path / "models" / "lowered").glob("*-graph-*.pkl")
    entry.write_bytes(b"damaged")
    assert lower(model).to_json() == fresh
    assert entry.read_bytes() != b"damaged"  # written again


def test_the_same_content_elsewhere_is_one_entry_and_reports_its_own_path(tmp_path, monkeypatch):
    from bsopt.lowering.info import inspect_model

    monkeypatch.setenv("BSOPT_MODEL_CACHE", str(tmp_path / "models"))
    src = prepost_model("tfc_w2a2")
    copy = tmp_path / ("copy" + "".join(src.suffixes))
    copy.write_bytes(src.read_bytes())
    assert inspect_model(src).sha256 == inspect_model(copy).sha256
    assert inspect_model(copy).path == str(copy)
    assert len(list((tmp_path / "models" / "lowered").glob("*-info-*.pkl"))) == 1


@pytest.mark.parametrize("options", [{"fpgapart": "xczu7ev-ffvc1156-2-e"},
                                     {"fpgapart": "xczu7ev-ffvc1156-2-e", "preferred_impl_style": {"MVAU": "rtl"}},
                                     {"minimize_bit_width": False}, {"finn_version": "0.10.1"}])
def test_a_variant_specialised_from_the_cached_generic_graph_equals_a_fresh_lowering(tmp_path, monkeypatch, options):
    from bsopt.lowering import lower

    monkeypatch.setenv("BSOPT_MODEL_CACHE", str(tmp_path / "models"))
    model = prepost_model("cnv_w1a1")
    lower(model)  # fills the generic entry
    variant = lower(model, **options).to_json()
    assert len(list((tmp_path / "models" / "lowered").glob("*-generic-*.pkl"))) == (
        2 if "finn_version" in options else 1)
    monkeypatch.setenv("BSOPT_LOWERING_CACHE", "0")
    assert variant == lower(model, **options).to_json()


def test_inspecting_a_model_caches_the_generic_graph_every_variant_starts_from(tmp_path):
    """`blueprint count` inspects the model; a later command that needs another part or backend
    specialises the cached generic graph without reading the model (onnx is not imported)."""
    model = prepost_model("tfc_w2a2")
    env = {**os.environ, "BSOPT_MODEL_CACHE": str(tmp_path / "models")}
    subprocess.run([sys.executable, "-c", "import sys; from bsopt.lowering.info import inspect_model; "
                    "inspect_model(sys.argv[1])", str(model)], env=env, check=True)
    out = subprocess.run([sys.executable, "-c", "import sys; from bsopt.lowering import lower; "
                          "g = lower(sys.argv[1], fpgapart='xczu7ev-ffvc1156-2-e'); print(len(g), 'onnx' in sys.modules)",
                          str(model)], env=env, check=True, capture_output=True, text=True).stdout.split()
    assert out[1] == "False" and int(out[0]) > 0


def test_file_digests_are_remembered_and_follow_the_content(tmp_path, monkeypatch):
    import hashlib

    from bsopt.lowering import cache

    monkeypatch.setenv("BSOPT_MODEL_CACHE", str(tmp_path / "models"))
    model = tmp_path / "m.onnx"
    model.write_bytes(b"a" * 3_000_000)
    assert cache.file_digest(model) == hashlib.sha256(b"a" * 3_000_000).hexdigest()
    assert hashlib.sha256(b"a" * 3_000_000).hexdigest() in (tmp_path / "models" / "lowered" / "digests.json").read_text()
    model.write_bytes(b"b" * 3_000_000)  # the same size, rewritten in place
    os.utime(model, ns=(1, 1))
    assert cache.file_digest(model) == hashlib.sha256(b"b" * 3_000_000).hexdigest()
