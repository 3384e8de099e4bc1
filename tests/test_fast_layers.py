"""The CPU speed-ups compute the same function: fast Dropout, attention dropout and batch-first
attention, PReLU, the decoder's cross-attention in memory space, and the host allocator."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch
from torch import nn

from vhd.models.layers.attention import (
    attention_fused,
    attention_math,
    multihead_attention,
    padded_pair_mask,
)
from vhd.models.layers.decoder import AnchorDecoderLayer
from vhd.models.layers.dropout import Dropout, keep_mask
from vhd.models.layers.mlp import PReLU, activate_in_place


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


def test_keep_mask_drops_at_rate_p_in_every_lane() -> None:
    """Each 64-bit draw feeds four elements: all four lanes must be uniform (plain ``random_()``
    leaves the top bit 0, which would never drop the fourth)."""
    torch.manual_seed(0)
    for p in (0.1, 0.5):
        mask = keep_mask((400_000,), p, torch.device("cpu"))
        assert mask.unique().tolist() == [0.0, pytest.approx(1 / (1 - p))]
        rates = (mask == 0).view(-1, 4).float().mean(dim=0)
        assert torch.allclose(rates, torch.full((4,), p), atol=0.005), (p, rates)


def test_attention_math_is_nn_multihead_attention() -> None:
    """Values and gradients of the written-out attention (used when training with dropout on
    the CPU) and of the batch-first fused one (otherwise) equal the module's as the models call
    it (``need_weights=False``), with key padding, the Bi-CMF release mask, and queries whose
    keys are all blocked (zeros); key and value the same tensor (packed) or not."""
    torch.manual_seed(0)
    batch, heads, dim = 4, 8, 32
    module = nn.MultiheadAttention(dim, heads, dropout=0.0, batch_first=True)
    query, key = torch.randn(batch, 9, dim), torch.randn(batch, 6, dim)
    query_pad = torch.zeros(batch, 9, dtype=torch.bool)
    query_pad[1, 5:], query_pad[2, 2:] = True, True
    key_pad = torch.zeros(batch, 6, dtype=torch.bool)
    key_pad[1, 3:], key_pad[3, 1:] = True, True
    pair_mask = padded_pair_mask(query_pad, key_pad, heads, "release")
    all_blocked = torch.zeros(batch * heads, 9, 6, dtype=torch.bool)
    all_blocked[:, 0, 0] = True  # with key padding leaving only key 0: query 0 sees nothing
    only_first = torch.ones(batch, 6, dtype=torch.bool)
    only_first[:, 0] = False
    for padding, mask in ((None, None), (key_pad, pair_mask), (only_first, all_blocked)):
        outputs, grads = [], []
        runs = (
            lambda p, m: module(query, key, key, key_padding_mask=p, attn_mask=m,
                                need_weights=False)[0],
            lambda p, m: attention_math(module, query, key, key, p, m, 0.0),
            lambda p, m: multihead_attention(module, query, key, key, p, m),  # fused
            lambda p, m: attention_fused(module, query, key, key.clone(), p, m, 0.0),
        )  # fmt: skip
        for run in runs:
            module.zero_grad()
            out = run(padding, mask)
            out.square().sum().backward()
            outputs.append(out)
            grads.append(module.in_proj_weight.grad.clone())
        for out, grad in zip(outputs[1:], grads[1:], strict=True):
            assert torch.allclose(out, outputs[0], atol=1e-6)
            assert torch.allclose(grad, grads[0], atol=1e-5)


def test_attention_dropout_drops_weights_when_training() -> None:
    torch.manual_seed(0)
    module = nn.MultiheadAttention(16, 4, dropout=0.5, batch_first=True)
    x = torch.randn(2, 5, 16)
    module.eval()
    reference = multihead_attention(module, x, x, x)
    module.train()
    first, second = multihead_attention(module, x, x, x), multihead_attention(module, x, x, x)
    assert not torch.allclose(first, second) and not torch.allclose(first, reference)


def test_prelu_under_bf16_autocast() -> None:
    layer = PReLU()
    x = torch.randn(3, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x.to(torch.bfloat16))
    y.float().sum().backward()
    assert y.dtype == torch.bfloat16 and layer.weight.grad.dtype == torch.float32
    expected = torch.where(x > 0, 1.0, 0.25)
    assert torch.allclose(x.grad, expected, atol=1e-2)


def reference_cross_attention(layer, content, sine, memory, key_pos, padding) -> torch.Tensor:
    """DAB-DETR's conditional cross-attention as written in the release: project the memory to
    keys and values, per head [content | position] queries and keys, attention, output map."""
    batch, _, dim = content.shape
    heads = layer.num_heads
    key = layer.ca_kcontent_proj(memory)
    if layer.ca_qpos_proj is not None:
        key = key + key_pos

    def split_cat(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        shape = (*first.shape[:2], heads, dim // heads)
        return torch.cat([first.view(shape), second.view(shape)], -1).flatten(2)

    query = split_cat(content, sine)
    key = split_cat(key, key_pos.expand_as(key))
    value = layer.ca_v_proj(memory)
    heads_of = lambda x: x.view(batch, x.shape[1], heads, -1).transpose(1, 2)  # noqa: E731
    attended = torch.nn.functional.scaled_dot_product_attention(
        heads_of(query), heads_of(key), heads_of(value), attn_mask=~padding[:, None, None, :]
    )
    return layer.cross_attn.out_proj(attended.transpose(1, 2).flatten(2))


@pytest.mark.parametrize("first", [True, False])
@pytest.mark.parametrize("shared_positions", [True, False])
def test_decoder_cross_attention_in_memory_space_is_the_release_attention(
    first: bool, shared_positions: bool
) -> None:
    """Taking the queries into memory space and projecting values after attending gives the
    values and gradients of projecting the memory (first layer: positions in the content keys;
    with padding; one shared position row or one per video)."""
    torch.manual_seed(0)
    layer = AnchorDecoderLayer(32, 4, 64, 0.0, "prelu", first=first)
    for linear in (layer.ca_kcontent_proj, layer.ca_v_proj):
        torch.nn.init.normal_(linear.bias)  # nonzero biases: their terms are part of the test
    batch, queries, length = 3, 5, 9
    content, sine = torch.randn(batch, queries, 32), torch.randn(batch, queries, 32)
    memory = torch.randn(batch, length, 32)
    padding = torch.zeros(batch, length, dtype=torch.bool)
    padding[1, 6:] = True
    rows = 1 if shared_positions else batch
    key_pos = torch.randn(rows, length, 32)
    index = torch.zeros(batch, dtype=torch.long) if shared_positions else None
    results = []
    for run in ("memory space", "release"):
        layer.zero_grad()
        inputs = [x.clone().requires_grad_() for x in (content, sine, memory, key_pos)]
        if run == "release":
            out = reference_cross_attention(layer, *inputs, padding)
        else:
            out = layer.cross_attention(*inputs[:3], inputs[3], index, padding)
        out.square().sum().backward()
        grads = [x.grad for x in inputs] + [
            p.grad for p in layer.parameters() if p.grad is not None
        ]
        results.append((out, grads))
    (ours, our_grads), (theirs, their_grads) = results
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert len(our_grads) == len(their_grads)
    for mine, reference in zip(our_grads, their_grads, strict=True):
        assert torch.allclose(mine, reference, atol=1e-4)


def test_activation_in_place_only_without_gradients() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 9, 16)
    for activation in (nn.ReLU(), PReLU(), nn.GELU()):
        expected = activation(x).detach()
        with torch.no_grad():
            hidden = x.clone()
            out = activate_in_place(activation, hidden)
        assert torch.equal(out, expected)
        if not isinstance(activation, nn.GELU):
            assert out.data_ptr() == hidden.data_ptr()  # written over the temporary
        tracked = x.clone()  # the slope needs its gradient: no in-place shortcut
        out = activate_in_place(activation, tracked)
        assert out.data_ptr() != tracked.data_ptr() or not list(activation.parameters())
    prelu = PReLU()
    activate_in_place(prelu, -x.clone()).sum().backward()
    assert prelu.weight.grad is not None
