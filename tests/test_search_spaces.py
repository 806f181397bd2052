"""The example blueprints in search_spaces/ validate, count and decode."""

from __future__ import annotations

from pathlib import Path

import pytest

from bsopt.space.design_space import load_design_space

pytest.importorskip("brevitas")
pytestmark = pytest.mark.models

SPACES = sorted((Path(__file__).resolve().parents[1] / "search_spaces").glob("[a-z]*.yaml"))


@pytest.fixture(scope="module", autouse=True)
def model_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("BSOPT_MODEL_CACHE", str(tmp_path_factory.mktemp("models")))
    yield
    mp.undo()


def test_there_is_a_v3_and_a_01_blueprint_for_every_zoo_model():
    from bsopt.models import ZOO

    names = {p.stem for p in SPACES}
    for model in ZOO:
        assert f"{model}_folding" in names and f"{model}_brainsmith" in names


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_example_blueprint_is_valid_and_decodes(path):
    space = load_design_space(path)
    assert not space.errors, [str(e) for e in space.errors]
    assert not [e for e in space.validate() if e.severity == "warning"]
    n = space.get_total_combinations()
    assert n > 1
    for k in (0, n // 2, n - 1):
        cfg = space.config(k)
        assert cfg.index == k and cfg.config_id.endswith(f"_config_{k:05d}")
        assert space.config_from_values(cfg.params).content_hash() == cfg.content_hash()
    assert space.blueprint.format == ("v3" if path.stem.endswith("_folding") else "0.1")
