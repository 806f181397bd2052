"""Quantisation-aware training on scikit-learn's digits (bsopt.models.train): real training, seeded,
with an early-stop hook, whose trained models export to QONNX that bsopt lowers to FINN's layers."""

from __future__ import annotations

import pytest

pytest.importorskip("brevitas")
pytest.importorskip("sklearn")

from bsopt.models.train import digits, digits_mlp, train  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return digits(seed=0)


def test_digits_split_is_stratified_and_scaled(data):
    assert data.x_train.shape[1:] == (1, 8, 8) and len(data.x_train) + len(data.x_test) == 1797
    assert float(data.x_train.min()) == 0.0 and float(data.x_train.max()) == 1.0
    assert sorted(set(data.y_test.tolist())) == list(range(10))  # every class held out


def test_training_is_real_seeded_and_bit_widths_cost_accuracy(data):
    wide = train(digits_mlp(4, 4), data, epochs=12, seed=0)
    assert wide == train(digits_mlp(4, 4), data, epochs=12, seed=0)  # reproducible
    assert wide[-1] >= 0.9 and wide[-1] > wide[0]  # it learns (chance: 0.1)
    binary = train(digits_mlp(1, 1), data, epochs=12, seed=0)
    assert 0.5 < binary[-1] < wide[-1]


def test_on_epoch_stops_a_training_early(data):
    seen = []
    curve = train(digits_mlp(2, 2), data, epochs=10, on_epoch=lambda e, acc: seen.append(acc) or e == 2)
    assert len(curve) == 3 and seen == curve


def test_a_trained_model_exports_and_lowers_to_finn_layers(data, tmp_path):
    from bsopt.lowering import lower
    from bsopt.models.export import export_trained

    model = digits_mlp(2, 2)
    train(model, data, epochs=2)
    path = export_trained(model, data.input_shape, tmp_path / "digits.onnx")
    graph = lower(str(path))
    mvaus = [layer for layer in graph if layer.kind == "MVAU"]
    assert [(m.attrs["MW"], m.attrs["MH"]) for m in mvaus] == [(64, 64), (64, 32), (32, 10)]
