import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    """Zoo references in blueprints export into a fresh folder per test module ($BSOPT_MODEL_CACHE)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BSOPT_MODEL_CACHE", str(tmp_path_factory.mktemp("models")))
    yield
    mp.undo()
