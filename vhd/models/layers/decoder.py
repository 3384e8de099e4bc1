"""DAB-DETR's decoder for 1-D spans: learnable (center, width) anchors refined layer by layer.

Each layer turns its anchor into a sine embedding, derives the query position from it, attends
among queries and then to the video memory with conditional (content | position) queries and
keys, and predicts an anchor update through the shared ``span_refine`` head. Queries are
batch-first: (B, num_queries, d).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vhd.models.layers.attention import ProjectedAttention, blocking, masked_softmax
from vhd.models.layers.dropout import Dropout
from vhd.models.layers.dropout import dropout as fast_dropout
from vhd.models.layers.mlp import MLP, activate_in_place, make_activation
from vhd.models.layers.position import span_sine_embedding


def inverse_sigmoid(x: Tensor, eps: float = 1e-3) -> Tensor:
    """logit(x) with x clamped to [0, 1] and both sides floored at ``eps`` (DETR)."""
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def packed_linear(x: Tensor, *layers: nn.Linear) -> tuple[Tensor, ...]:
    """``tuple(layer(x) for layer in layers)`` as one matrix product (fewer, larger calls)."""
    weight = torch.cat([layer.weight for layer in layers])
    bias = torch.cat([layer.bias for layer in layers])
    return F.linear(x, weight, bias).split([layer.out_features for layer in layers], dim=-1)


def distinct_rows(x: Tensor) -> tuple[Tensor, Tensor | None]:
    """The distinct rows of ``x`` (B, ...) and the index that rebuilds ``x`` from them (None when
    all rows differ). Videos of the same length have the same positions, so each layer projects
    each distinct position row once (in QVHighlights nearly every video has 75 clips). CPU only:
    on a GPU the projection is cheap and ``unique`` would wait for the device."""
    if x.requires_grad or len(x) < 2 or x.device.type != "cpu":
        return x, None
    if torch.equal(x, x[:1].expand_as(x)):  # the usual case, without sorting
        return x[:1], torch.zeros(len(x), dtype=torch.long, device=x.device)
    rows, index = torch.unique(x.flatten(1), dim=0, return_inverse=True)
    if len(rows) == len(x):
        return x, None
    return rows.view(-1, *x.shape[1:]), index


class AnchorDecoderLayer(nn.Module):
    """Conditional self- and cross-attention then FFN, post-norm (DAB-DETR layer).

    ``first`` layers also add the projected query position to the cross-attention content query
    and the projected memory position to its keys (``ca_qpos_proj``); later layers have no such
    projection, as in the release.
    """

    def __init__(
        self, dim: int, num_heads: int, ffn_dim: int, dropout: float, activation: str, first: bool
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.sa_qcontent_proj = nn.Linear(dim, dim)
        self.sa_qpos_proj = nn.Linear(dim, dim)
        self.sa_kcontent_proj = nn.Linear(dim, dim)
        self.sa_kpos_proj = nn.Linear(dim, dim)
        self.sa_v_proj = nn.Linear(dim, dim)
        self.self_attn = ProjectedAttention(dim, dim, num_heads, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.ca_qcontent_proj = nn.Linear(dim, dim)
        self.ca_qpos_proj = nn.Linear(dim, dim) if first else None
        self.ca_kcontent_proj = nn.Linear(dim, dim)
        self.ca_kpos_proj = nn.Linear(dim, dim)
        self.ca_v_proj = nn.Linear(dim, dim)
        self.ca_qpos_sine_proj = nn.Linear(dim, dim)
        self.cross_attn = ProjectedAttention(2 * dim, dim, num_heads, dropout)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = Dropout(dropout)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = make_activation(activation)

    def forward(
        self,
        target: Tensor,
        memory: Tensor,
        memory_padding: Tensor,
        memory_pos: Tensor,
        query_pos: Tensor,
        query_sine: Tensor,
        pos_index: Tensor | None = None,
    ) -> Tensor:
        """``memory_pos`` holds the distinct position rows when ``pos_index`` (B,) says which
        row each sample has (``distinct_rows``); otherwise one row per sample."""
        # self-attention among queries: content + position, the three content maps as one
        content_q, content_k, value = packed_linear(
            target, self.sa_qcontent_proj, self.sa_kcontent_proj, self.sa_v_proj
        )
        position_q, position_k = packed_linear(query_pos, self.sa_qpos_proj, self.sa_kpos_proj)
        attended = self.self_attn(content_q + position_q, content_k + position_k, value)
        target = self.norm1(target + self.dropout1(attended))
        # cross-attention to the memory: per head [content | position] queries and keys
        content = self.ca_qcontent_proj(target)
        if self.ca_qpos_proj is not None:
            content = content + self.ca_qpos_proj(query_pos)
        key_pos = self.ca_kpos_proj(memory_pos)
        attended = self.cross_attention(
            content, self.ca_qpos_sine_proj(query_sine), memory, key_pos, pos_index, memory_padding
        )
        target = self.norm2(target + self.dropout2(attended))
        hidden = activate_in_place(self.activation, self.linear1(target))
        hidden = self.linear2(self.dropout(hidden))
        return self.norm3(target + self.dropout3(hidden))

    def cross_attention(
        self,
        content: Tensor,
        sine: Tensor,
        memory: Tensor,
        key_pos: Tensor,
        pos_index: Tensor | None,
        memory_padding: Tensor,
    ) -> Tensor:
        """DAB-DETR's conditional cross-attention with the memory side left unprojected.

        Head h scores ``[c_h | s_h] . [k_h | p_h] / sqrt(2 d_h)`` with content keys
        ``k_h = M Wk_h^T + bk_h`` (plus ``p_h`` in the first layer) and position keys ``p_h``, and
        returns ``A_h (M Wv_h^T + bv_h)``. With 10 queries and 75 clips it is cheaper to take the
        queries into memory space, ``c_h . k_h = (c_h Wk_h) . M + c_h . bk_h``, and to project
        after attending, ``A_h M Wv_h^T + (sum A_h) bv_h``: the same function (sums in another
        order) with about half the multiply-adds and no per-head key and value copies.
        ``content`` and ``sine`` may have one row for all samples (``share_first_queries``).
        """
        scores = self.cross_scores(content, sine, memory, key_pos, pos_index)
        weights = masked_softmax(scores, blocking(memory_padding))
        weights = fast_dropout(weights, self.cross_attn.dropout, self.training)
        # values after attending: (A_h M) Wv_h^T + (sum_j A_hj) bv_h
        batch, heads, queries, length = weights.shape
        values = self.ca_v_proj
        mixed = (weights.reshape(batch, heads * queries, length) @ memory).view(
            batch, heads, queries, -1
        )
        mixed = mixed.transpose(0, 1).flatten(1, 2)  # (h, B * Q, d)
        head_dim = values.out_features // heads
        attended = torch.bmm(mixed, values.weight.view(heads, head_dim, -1).transpose(1, 2))
        total = weights.sum(dim=-1).transpose(0, 1).reshape(heads, batch * queries, 1)
        attended = attended + total * values.bias.view(heads, 1, head_dim)  # (h, B * Q, e)
        attended = _per_sample(attended, batch).transpose(1, 2).flatten(2)  # (B, Q, d)
        return self.cross_attn.out_proj(attended)

    def cross_scores(
        self,
        content: Tensor,
        sine: Tensor,
        memory: Tensor,
        key_pos: Tensor,
        pos_index: Tensor | None,
    ) -> Tensor:
        """The (B, h, Q, L) scaled scores of ``cross_attention``."""
        rows, queries, dim = content.shape  # rows: B, or 1 for queries shared by all samples
        batch, length = memory.shape[:2]
        heads = self.num_heads
        keys = self.ca_kcontent_proj
        # first layer: the content keys carry the positions too
        position = sine + content if self.ca_qpos_proj is not None else sine
        # content part in memory space: (c_h Wk_h) . M_j, then + c_h . bk_h
        in_memory = torch.bmm(_per_head(content, heads), keys.weight.view(heads, -1, dim))
        in_memory = _per_sample(in_memory, rows).reshape(rows, heads * queries, dim)
        scores = (in_memory @ memory.transpose(1, 2)).view(batch, heads, queries, length)
        key_bias = _per_head(content, heads) * keys.bias.view(heads, 1, -1)
        scores = scores + _per_sample(key_bias.sum(dim=-1, keepdim=True), rows)
        # position part per head: p_h . kp_h(j), for the distinct position rows
        if pos_index is not None and len(key_pos) == 1:
            pos_keys = key_pos[0].view(length, heads, -1).permute(1, 2, 0)  # (h, e, L)
            positional = _per_sample(torch.bmm(_per_head(position, heads), pos_keys), rows)
        else:
            pos_keys = key_pos if pos_index is None else key_pos[pos_index]
            pos_keys = pos_keys.view(batch, length, heads, -1).permute(0, 2, 3, 1)  # (B, h, e, L)
            positional = position.view(rows, queries, heads, -1).transpose(1, 2) @ pos_keys
        return (scores + positional) * (2 * dim // heads) ** -0.5


def _per_head(x: Tensor, heads: int) -> Tensor:
    """(R, Q, d) -> (h, R * Q, d / h), a view."""
    rows, queries, dim = x.shape
    return x.reshape(rows * queries, heads, dim // heads).transpose(0, 1)


def _per_sample(x: Tensor, rows: int) -> Tensor:
    """(h, R * Q, n) -> (R, h, Q, n), a view."""
    heads, total, width = x.shape
    return x.view(heads, rows, total // rows, width).transpose(0, 1)


class AnchorDecoder(nn.Module):
    """A stack of anchor decoder layers with shared anchor heads (DAB-DETR, 2-d anchors).

    Returns the normalised outputs of every layer (L, B, Q, d) and the anchor each layer started
    from (L, B, Q, 2): the span heads predict relative to it. Anchors passed from layer to layer
    are detached; the returned ones are not.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        dropout: float,
        num_layers: int,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            AnchorDecoderLayer(dim, num_heads, ffn_dim, dropout, activation, first=index == 0)
            for index in range(num_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.query_scale = MLP(dim, dim, dim, 2)  # conditional scaling of the anchor code
        self.ref_point_head = MLP(dim, dim, dim, 2)  # anchor code -> query position
        self.span_refine = MLP(dim, dim, 2, 3)  # per-layer anchor update
        self.ref_anchor_head = MLP(dim, dim, 1, 2)  # width modulation of the attention
        nn.init.zeros_(self.span_refine.layers[-1].weight)
        nn.init.zeros_(self.span_refine.layers[-1].bias)

    def forward(
        self,
        anchors: Tensor,
        memory: Tensor,
        memory_padding: Tensor,
        memory_pos: Tensor,
        share_first_queries: bool | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``anchors`` (Q, 2) before sigmoid; memory (B, L, d), padding (B, L), positions.

        Every sample starts from the same anchors and an empty target, so without dropout the
        query side of the first layer (anchor codes, self-attention, cross-attention queries) is
        the same for all: ``share_first_queries`` computes it once and broadcasts it against the
        memory. None: share unless dropout is active (its masks must differ per sample).
        """
        batch, dim = memory.shape[0], memory.shape[-1]
        if share_first_queries is None:
            share_first_queries = not (self.training and self.layers[0].dropout.p > 0)
        rows = 1 if share_first_queries else batch
        reference = anchors.sigmoid()[None]
        target = memory.new_zeros(rows, anchors.shape[0], dim)
        outputs, references = [], [reference.expand(batch, -1, -1)]
        reference = reference.expand(rows, -1, -1)
        pos_rows, pos_index = distinct_rows(memory_pos)
        for index, layer in enumerate(self.layers):
            sine = span_sine_embedding(reference, dim // 2).to(memory.dtype)
            query_pos = self.ref_point_head(sine)
            if index > 0:
                sine = sine * self.query_scale(target)
            width_scale = self.ref_anchor_head(target).sigmoid()[..., 0] / reference[..., 1]
            sine = sine * width_scale[..., None]
            target = layer(target, memory, memory_padding, pos_rows, query_pos, sine, pos_index)
            outputs.append(self.norm(target))
            if index == len(self.layers) - 1:
                break  # the last refinement would feed no layer and no head
            reference = (self.span_refine(target) + inverse_sigmoid(reference)).sigmoid()
            references.append(reference)
            reference = reference.detach()
        return torch.stack(outputs), torch.stack(references)
