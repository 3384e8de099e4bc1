"""Small feed-forward blocks of the DETR family: the MLP head and the input projection block."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vhd.models.layers.dropout import Dropout


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them (DETR's box/span head)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(
            nn.Linear(d_in, d_out) for d_in, d_out in zip(dims, [*dims[1:], out_dim], strict=True)
        )

    def forward(self, x: Tensor) -> Tensor:
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = F.relu(x)
        return x


def pointwise(conv: nn.Conv1d, x: Tensor) -> Tensor:
    """A kernel-1 ``Conv1d`` applied to channels-last ``x`` (B, L, C_in) -> (B, L, C_out)."""
    return F.linear(x, conv.weight.squeeze(-1), conv.bias)


class ProjectionBlock(nn.Module):
    """LayerNorm -> Dropout -> per-token linear map -> optional ReLU (Moment-DETR input block).

    ``conv=True`` makes the linear map a kernel-1 ``Conv1d`` over time, the "convolutional
    projection" of VideoLights (same function as a linear layer, conv weight layout). It is
    applied as a linear map on the (out, in) view of the kernel: the same numbers, without the
    transposed copies and the slow convolution backward.
    """

    def __init__(
        self, in_dim: int, out_dim: int, dropout: float, relu: bool, conv: bool = True
    ) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.dropout = Dropout(dropout)
        self.conv = conv
        self.proj = (
            nn.Conv1d(in_dim, out_dim, kernel_size=1) if conv else nn.Linear(in_dim, out_dim)
        )
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        """(B, L, in_dim) -> (B, L, out_dim)."""
        x = self.dropout(self.norm(x))
        x = pointwise(self.proj, x) if self.conv else self.proj(x)
        return F.relu(x) if self.relu else x


def input_projection(
    in_dim: int, out_dim: int, num_blocks: int, dropout: float, conv: bool = True
) -> nn.Sequential:
    """``num_blocks`` projection blocks, ReLU after all but the last (Moment-DETR)."""
    dims = [in_dim] + [out_dim] * num_blocks
    return nn.Sequential(
        *(
            ProjectionBlock(dims[i], dims[i + 1], dropout, relu=i < num_blocks - 1, conv=conv)
            for i in range(num_blocks)
        )
    )


class _ScalarPReLU(torch.autograd.Function):
    """PReLU with one slope ``a``: the fused forward kernel, and a backward in few passes over
    memory: ``dx = g * prelu(sign(x), -a)`` (1 where x > 0, ``a`` where x < 0) and ``da = <g,
    min(x, 0)>``. Only the gradient at exactly ``x = 0`` differs from ``nn.PReLU`` (0 here, ``a``
    there), a set of measure zero."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        return torch.prelu(x, weight.to(x.dtype))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor]:
        x, weight = ctx.saved_tensors
        slope = torch.prelu(torch.sign(x), -weight.to(x.dtype))
        negative = x.clamp(max=0).reshape(-1).to(weight.dtype)
        grad_weight = torch.dot(grad.reshape(-1).to(weight.dtype), negative).reshape(1)
        return grad * slope, grad_weight


class PReLU(nn.PReLU):
    """``nn.PReLU`` (same parameters and state) with a faster CPU backward.

    On the CPU, in a training step, ``prelu``'s own backward kernel and ``relu(x) - a * relu(-x)``
    both cost several passes over (32, 76, 1024) activations; ``_ScalarPReLU`` needs fewer
    (measured 6 % of a VideoLights training step). Without a gradient the fused kernel runs.
    """

    def forward(self, x: Tensor) -> Tensor:
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        if x.device.type != "cpu" or self.num_parameters != 1 or not needs_grad:
            return super().forward(x)
        return _ScalarPReLU.apply(x, self.weight)


def activate_in_place(activation: nn.Module, hidden: Tensor) -> Tensor:
    """``activation(hidden)`` written over ``hidden`` (a temporary nobody else reads, such as a
    fresh FFN layer output) when no gradient is needed: on the CPU a second activation-sized
    tensor costs more than the function. ReLU and one-slope PReLU (as ``leaky_relu``, the same
    numbers); other activations run as they are."""
    needs_grad = hidden.requires_grad or any(p.requires_grad for p in activation.parameters())
    if torch.is_grad_enabled() and needs_grad:
        return activation(hidden)
    if isinstance(activation, nn.ReLU):
        return F.relu_(hidden)
    one_slope = isinstance(activation, nn.PReLU) and activation.num_parameters == 1
    if one_slope and hidden.device.type == "cpu":  # float() of the slope would wait for a GPU
        return F.leaky_relu_(hidden, float(activation.weight))
    return activation(hidden)


def make_activation(name: str) -> nn.Module:
    """FFN activations by name; ``prelu`` is a module with one learnable slope (init 0.25)."""
    activations = {"prelu": PReLU, "relu": nn.ReLU, "gelu": nn.GELU}
    if name not in activations:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(activations)}")
    return activations[name]()


def xavier_init_matrices(module: nn.Module) -> None:
    """Xavier-uniform for every parameter with two or more dims (DETR's transformer init)."""
    for parameter in module.parameters():
        if parameter.dim() > 1:
            nn.init.xavier_uniform_(parameter)
