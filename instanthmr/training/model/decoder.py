"""The query decoder: learned query tokens cross-attending to the backbone's image tokens.

Attention is written with plain matmul/softmax (no ``nn.MultiheadAttention`` fast path) so the ONNX graph
is the same ops in fp32 and fp16 and exports without special cases.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sincos_pos_embed_2d(height: int, width: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Fixed 2D sine-cosine position embedding ``(height * width, dim)``, row-major over the grid.

    A quarter of the channels each hold sin(y), cos(y), sin(x), cos(x) at geometric frequencies (MAE style).
    """
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4 for a 2D sin-cos embedding, got {dim}")
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32) / quarter)
    y = ys.reshape(-1, 1) * omega[None]
    x = xs.reshape(-1, 1) * omega[None]
    return torch.cat([y.sin(), y.cos(), x.sin(), x.cos()], dim=1)


def attention_math(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Scaled dot-product attention of projected ``q`` (N, S, D) over ``k``, ``v`` (N, L, D), heads split and
    merged: the math of ONNX Runtime's ``Attention`` / ``MultiHeadAttention`` contrib ops."""
    d = q.shape[-1] // num_heads
    q, k, v = (t.reshape(t.shape[0], t.shape[1], num_heads, d).transpose(1, 2) for t in (q, k, v))
    attn = torch.softmax((q * (1.0 / math.sqrt(d))) @ k.transpose(-2, -1), dim=-1)
    return (attn @ v).transpose(1, 2).reshape(q.shape[0], -1, num_heads * d)


class OrtSelfAttention(torch.autograd.Function):
    """Self-attention with its packed input projection, exported as one ONNX Runtime ``com.microsoft::Attention``
    node: ``x`` (N, S, D), ``weight`` (D, 3D) = [Wq; Wk; Wv] transposed, ``bias`` (3D,). ORT runs the three
    projections as one GEMM and the heads without the reshape/transpose/softmax nodes of the plain graph
    (docs/performance.md, "The notebook network"). Inference only (no backward)."""

    @staticmethod
    def forward(ctx, x, weight, bias, num_heads: int):
        q, k, v = (x @ weight + bias).chunk(3, dim=-1)
        return attention_math(q, k, v, num_heads)

    @staticmethod
    def symbolic(g, x, weight, bias, num_heads: int):
        out = g.op("com.microsoft::Attention", x, weight, bias, num_heads_i=num_heads)
        out.setType(x.type())
        return out


class OrtCrossAttention(torch.autograd.Function):
    """Attention of projected queries ``q`` (N, S, D) over projected keys/values ``k``, ``v`` (N, L, D), the
    input projections' ``bias`` (3D,) added inside, exported as one ``com.microsoft::MultiHeadAttention`` node."""

    @staticmethod
    def forward(ctx, q, k, v, bias, num_heads: int):
        b_q, b_k, b_v = bias.chunk(3)
        return attention_math(q + b_q, k + b_k, v + b_v, num_heads)

    @staticmethod
    def symbolic(g, q, k, v, bias, num_heads: int):
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, bias, num_heads_i=num_heads)
        out.setType(q.type())
        return out


class Attention(nn.Module):
    """Multi-head attention of ``x`` (queries) over ``context`` (keys/values)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        nq, nk, h, d = x.shape[1], context.shape[1], self.num_heads, self.head_dim
        # -1 on the batch axis keeps the exported batch dimension dynamic
        q = self.q(x).reshape(-1, nq, h, d).transpose(1, 2)
        kv = self.kv(context).reshape(-1, nk, 2, h, d).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(-1, nq, h * d)
        return self.proj(out)


class DecoderLayer(nn.Module):
    """Pre-LN transformer decoder layer: query self-attention, cross-attention to image tokens, MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, num_heads)
        self.norm_cross = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, num_heads)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        q = self.norm_self(queries)
        queries = queries + self.drop(self.self_attn(q, q))
        queries = queries + self.drop(self.cross_attn(self.norm_cross(queries), self.norm_context(tokens)))
        return queries + self.drop(self.mlp(self.norm_mlp(queries)))


class QueryDecoder(nn.Module):
    """``num_queries`` learned tokens, conditioned on an extra per-sample vector, decoded against tokens."""

    def __init__(self, num_queries: int, dim: int, num_heads: int, num_layers: int, mlp_ratio: float = 4.0,
                 dropout: float = 0.0):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.layers = nn.ModuleList(DecoderLayer(dim, num_heads, mlp_ratio, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """``tokens (N, T, D)`` image tokens (position already added), ``condition (N, D)`` added to every
        query; returns ``(N, Q, D)``."""
        # (N, 1, D) + (Q, D): no op on the parameter itself, so the exported initializer keeps its name
        # (decoder.queries: tools/model_info.py reads the query count from it)
        queries = self.queries if self.queries.dtype == tokens.dtype else self.queries.to(tokens.dtype)
        x = condition[:, None, :] + queries
        for layer in self.layers:
            x = layer(x, tokens)
        return self.norm(x)
