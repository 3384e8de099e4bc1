"""vhd's VideoLights against the official release's numbers, from a committed fixture.

``benchmarks/videolights_golden.py`` ran the release (commit 76308bb) once per dataset shape
(QVHighlights, Charades-STA, TVSum: the real input dims and d = 256, 1 Bi-CMF, 1 encoder and 2
decoder layers, batches of 3-4 unequal lengths) and stored its outputs, weighted loss terms,
gradients and predictions; the weights and features are rebuilt here from their seeds. Training
mode runs with dropout on (FRA's training branch included): both sides used the same masks,
seeded per call (``videolights_golden_helpers.SeededMasks``). No release checkout is needed.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

import pytest
import torch

from tests import videolights_golden_helpers as golden
from vhd.models import VideoLights
from vhd.models.videolights import convert_official_state_dict

PROTOCOLS = {"qvhighlights": "qvhighlights", "charades": "charades", "tvsum": "tvsum"}
# Float32 noise between the two implementations, on this machine: at most 6% of each tolerance
# for outputs, 1% for losses, 11% for gradients (the attention key biases, whose gradients are 0
# in exact arithmetic and 1e-7 in float32; otherwise at most 9e-5 of a parameter's norm).
# Gradients get more room because another CPU may round an FFN pre-activation near 0 to the
# other sign: PReLU then takes the other slope for that element (at full QVHighlights sizes one
# such element moves the input projection's gradient by 1.7e-3 of its norm, see
# benchmarks/videolights_parity.py). A wrong term or mask gives differences of order one.
OUTPUT_RTOL, OUTPUT_ATOL = 3e-4, 5e-5
LOSS_RTOL, LOSS_ATOL = 5e-5, 1e-5
GRADIENT_RTOL, GRADIENT_ATOL = 1e-2, 1e-6


pytestmark = pytest.mark.usefixtures("one_thread")


@cache
def fixture(case: str) -> dict:
    return torch.load(golden.FIXTURES / f"{case}.pt", weights_only=True)


def model_and_batch(case: str) -> tuple[VideoLights, dict]:
    """The release's weights (rebuilt from seeds and checked) converted to vhd names and
    strict-loaded; the fixture's batch."""
    data = fixture(case)
    weights = {name: golden.build(recipe) for name, recipe in data["recipes"].items()}
    rebuilt = torch.stack([golden.checksum(value) for value in weights.values()])
    # float64 sums: equal up to their own summation order (threads), not up to a changed draw
    assert torch.allclose(rebuilt, data["checksums"], rtol=1e-12, atol=1e-9), "weights changed"
    module = VideoLights(**data["hparams"])
    module.net.load_state_dict(convert_official_state_dict(weights))
    batch = golden.vhd_batch(data)
    for key, expected in data["feature_checksums"].items():
        checksum = golden.checksum(batch[key])
        assert torch.allclose(checksum, expected, rtol=1e-12, atol=1e-9), f"{key} changed"
    return module, batch


def assert_outputs(output, expected: dict[str, torch.Tensor]) -> None:
    for name, value in expected.items():
        mine = getattr(output, name).detach().float()
        if mine.shape != value.shape:  # stored as a sketch
            mine = golden.sketch(mine, golden.name_seed(name))
            tolerance = OUTPUT_RTOL * value.abs().max()
        else:
            tolerance = OUTPUT_RTOL * value.abs() + OUTPUT_ATOL
        worst = float(((mine - value).abs() - tolerance).max())
        assert worst <= 0, f"{name}: {worst:.3g} beyond tolerance"


def assert_losses(terms: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert set(expected) <= set(terms), sorted(set(expected) - set(terms))
    assert {k for k in terms if k.startswith("loss")} == set(expected)
    for name, value in expected.items():
        expected_value = pytest.approx(float(value), rel=LOSS_RTOL, abs=LOSS_ATOL)
        assert float(terms[name].detach()) == expected_value, name


def release_name_gradients(module: VideoLights, names: list[str]) -> dict[str, torch.Tensor]:
    """vhd's gradients under the release's parameter names (zero where none)."""
    ours = dict(module.net.named_parameters())
    gradients = {}
    for name in names:
        (converted,) = convert_official_state_dict({name: torch.zeros(1)})
        parameter = ours[converted]
        gradients[name] = (
            parameter.grad if parameter.grad is not None else torch.zeros_like(parameter)
        )
    return gradients


@pytest.mark.parametrize("case", golden.CASES)
def test_training_step_equals_the_releases(case: str) -> None:
    """Outputs, every weighted loss term and every gradient, dropout on with shared masks."""
    data = fixture(case)
    module, batch = model_and_batch(case)
    module.train()
    masks = golden.SeededMasks(data["train"]["mask_seed"])
    with golden.shared_dropout(masks):
        output = module(batch)
    total, terms = module.criterion(output, batch, epoch=data["epoch"])
    total.backward()
    assert Counter(map(repr, masks.calls)) == Counter(map(repr, data["train"]["mask_calls"]))
    assert_outputs(output, data["train"]["outputs"])
    assert_losses(terms, data["train"]["losses"])
    expected = data["train"]["gradients"]
    ours = golden.sketch_table(release_name_gradients(module, expected["names"]))
    tolerance = GRADIENT_RTOL * expected["sketches"][:, -1:] + GRADIENT_ATOL
    excess = ((ours - expected["sketches"]).abs() - tolerance).amax(dim=1)
    wrong = [name for name, value in zip(expected["names"], excess, strict=True) if value > 0]
    assert not wrong, f"gradients differ from the release's: {wrong}"


@pytest.mark.parametrize("case", golden.CASES)
def test_evaluation_equals_the_releases(case: str) -> None:
    """Evaluation mode (FRA's factorised branch, no dropout): outputs and loss terms."""
    data = fixture(case)
    module, batch = model_and_batch(case)
    module.eval()
    with torch.no_grad():
        output = module(batch)
        _, terms = module.criterion(output, batch, epoch=0)
    assert_outputs(output, data["eval"]["outputs"])
    assert_losses(terms, data["eval"]["losses"])


@pytest.mark.parametrize("case", golden.CASES)
def test_predictions_equal_the_releases(case: str) -> None:
    """The prediction path against the release's ``compute_mr_results`` with its
    post-processing (``window_clamp="release"``, the default: [0, 150] s, then rounding)."""
    data = fixture(case)
    module, batch = model_and_batch(case)
    module.eval()
    module.protocol = PROTOCOLS[case]
    predictions = module.predict_batch(batch)
    for mine, theirs in zip(predictions, data["predictions"], strict=True):
        if case != "tvsum":  # the release writes windows for TVSum but nothing scores them
            expected = theirs["pred_relevant_windows"]
            assert len(mine["pred_relevant_windows"]) == len(expected)
            for row, want in zip(mine["pred_relevant_windows"], expected, strict=True):
                assert row[:2] == pytest.approx(want[:2], abs=1e-6)
                assert row[2] == pytest.approx(want[2], abs=1.5e-4)  # 4-decimal rounding
        if case == "charades":  # the release drops saliency for Charades-STA
            assert "pred_saliency_scores" not in mine
            continue
        assert mine["pred_saliency_scores"] == pytest.approx(
            theirs["pred_saliency_scores"], abs=2e-3
        )  # float16, as released
