"""The CPU speed-ups compute the same function: fast Dropout, PReLU and the host allocator."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch
from torch import nn

from vhd.models.layers.dropout import Dropout
from vhd.models.layers.mlp import PReLU


def test_dropout_has_the_state_and_statistics_of_nn_dropout() -> None:
    torch.manual_seed(0)
    layer = Dropout(0.3)
    assert isinstance(layer, nn.Dropout) and layer.state_dict() == {}
    x = torch.randn(200, 500, requires_grad=True)
    y = layer(x)
    kept = y != 0
    assert kept.float().mean().item() == pytest.approx(0.7, abs=0.01)
    assert torch.allclose(y[kept], x[kept] / 0.7)  # survivors scaled by 1 / (1 - p)
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / 0.7)  # the gradient is the scaled mask
    layer.eval()
    assert layer(x) is x


def test_prelu_matches_nn_prelu_values_and_gradients() -> None:
    torch.manual_seed(0)
    reference, fast = nn.PReLU(), PReLU()
    fast.weight.data.fill_(0.3), reference.weight.data.fill_(0.3)
    assert fast.state_dict().keys() == reference.state_dict().keys()
    x = torch.randn(4, 7, 33)
    x[0, 0, :3] = torch.tensor([1e-3, -1e-3, 5.0])
    inputs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    grad = torch.randn_like(x)
    for layer, tensor in zip((reference, fast), inputs, strict=True):
        layer(tensor).backward(grad)
    assert torch.allclose(fast(x), reference(x))
    assert torch.allclose(inputs[1].grad, inputs[0].grad)
    assert torch.allclose(fast.weight.grad, reference.weight.grad, rtol=1e-5)
    with torch.no_grad():  # the fused kernel when no gradient is needed
        assert torch.equal(fast(x), reference(x))


def test_keep_freed_memory_takes_effect_on_glibc_and_can_be_turned_off() -> None:
    code = "from vhd.allocator import keep_freed_memory; print(keep_freed_memory())"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    off = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"VHD_KEEP_FREED_MEMORY": "0", "PATH": ""},
    )
    assert off.stdout.strip() == "False"
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert on.stdout.strip() == str(glibc)
