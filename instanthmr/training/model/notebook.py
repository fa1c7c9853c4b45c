"""``NotebookHMRNet`` (architecture ``notebook``): the network the public InstantHMR training notebook builds.

``mohamdev/InstantHMR`` ``notebooks/distill_transformer_decoder.ipynb`` (the file its docs call the source of
truth) builds RepViT-M2.3 (timm, ``num_classes=0``, ``forward_features``), a 512-wide 4-layer pre-norm
``nn.TransformerDecoder`` (8 heads, feed-forward 2048, GELU, no final norm) and 141 learned queries: 1 global +
70 for 2D + 70 for 3D, each plus the same CLIFF conditioning vector (MLP 3 -> 128 -> 512). About 40 M
parameters, which fits the released files' sizes (``instanthmr.onnx`` ~77 MB fp16, ``instanthmr.pth`` ~461 MB
with AdamW moments). The model card instead describes "RepViT-M1.5 + 9 tokens" (our ``query9`` architecture);
which of the two the released files hold is not verified here.

::

    image (N,3,S,S) -> backbone.forward_features (N,C,S/32,S/32) -> tokens -> feat_proj (C->d) + mem_pos_embed
    cliff_cond (N,3) -> cond_proj (3 -> 128 -> d, GELU), added to every row of query_embed (1, Q, d)
    queries -> transformer (as nn.TransformerDecoder, pre-norm, no masks) over the image tokens -> (N, Q, d)
      token 0        -> head_global (d -> 252): mhr_params [0:204] | shape_params [204:249] | cam_trans [249:252]
      tokens 1..70   -> head_2d_feat (d -> 256, GELU) -> head_2d_xy (256 -> 2)          joints_2d (N,70,2)
                        [simcc: head_2d_logits (256 -> 2 x 96) -> softmax -> expected bin centre]
      tokens 71..140 -> head_3d (d -> 256, GELU, 256 -> 3)                               joints_3d (N,70,3)

``cam_trans`` is regressed directly (the full-frame translation in metres, the camera with focal
``sqrt(W^2 + H^2)`` and principal point at the image centre), not through a CLIFF weak-perspective camera.

Parameter and buffer names and shapes equal the notebook's (``tests/data/anchor_notebook_state_dict.json``), so
the anchor's ``instanthmr.pth`` (``model_state_dict``) loads strictly. Variants of the anchor's later training
scripts, on the same trunk: ``head_2d="simcc"`` (``head_2d_logits`` + buffer ``kp2d_bin_centers``; its exporter
calls this arch ``correctives``), ``joints_3d_head=False`` (``mhr_only``: 71 queries, no ``head_3d``, no
``joints_3d`` output) and ``bound_scales`` (buffers ``scale_lo``/``scale_hi``, 77 values each).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from instanthmr.body.mhr import NUM_MODEL_PARAMS
from instanthmr.training.model.backbone import create_backbone, feature_channels
from instanthmr.training.model.config import ModelConfig, register_arch, register_config
from instanthmr.training.model.decoder import (
    OrtCrossAttention,
    OrtSelfAttention,
    attention_math,
    sincos_pos_embed_2d,
)
from instanthmr.training.model.heads import NUM_JOINTS, NUM_SHAPE_PARAMS
from instanthmr.training.model.network import OUTPUT_NAMES, HMRNetBase

GLOBAL_OUTPUTS = (("mhr_params", NUM_MODEL_PARAMS), ("shape_params", NUM_SHAPE_PARAMS), ("cam_trans", 3))
# mhr_params slices the anchor's --bound-scales maps through a tanh: root translation and the 74 size
# parameters (6 "*_flexible" joint params + 68 bone scales), 77 values in all
BOUNDED_SLICES = ((0, 3), (130, 204))
NUM_BOUNDED = sum(b - a for a, b in BOUNDED_SLICES)
CAM_Z_INIT = 2.0  # the notebook's initial depth (head_global.bias[-1]), metres


def _as(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t`` in ``dtype``, without a cast op when it already is: the exported initializer keeps its name
    (``query_embed``), which ``tools/model_info.py`` reads the query count from."""
    return t if t.dtype == dtype else t.to(dtype)


def anchor_arch_name(config: ModelConfig) -> str:
    """The name the anchor's exporter (``tools/pth_to_onnx.py``) gives this variant in ONNX metadata ``arch``."""
    if not config.joints_3d_head:
        return "mhr_only"
    # the SimCC softmax here always runs in float32, which is what the anchor's "correctives" script adds to
    # "optimized"; its exporter labels any SimCC checkpoint with a 3D head "correctives"
    return "correctives" if config.head_2d == "simcc" else "legacy"


class PackedAttention(nn.Module):
    """``nn.MultiheadAttention`` (batch first) with its parameter names (``in_proj_weight`` = [Wq; Wk; Wv],
    ``in_proj_bias``, ``out_proj``) and its math, written with plain matmul/softmax: torch's own module takes a
    fused kernel in inference that the ONNX exporter cannot write, and this one is the same ops in fp32 and
    fp16."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.num_heads, self.head_dim, self.dropout = num_heads, dim // num_heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)  # nn.MultiheadAttention's initialisation
        nn.init.zeros_(self.out_proj.bias)
        self.ort_fused = False  # set by NotebookHMRNet.optimize_for_export: ONNX Runtime's fused attention ops

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        nq, nk, h, d = x.shape[1], context.shape[1], self.num_heads, self.head_dim
        if self.ort_fused:
            if x is context:  # self-attention: one Attention node, its packed projection one GEMM
                return self.out_proj(OrtSelfAttention.apply(x, self.in_proj_weight.t(), self.in_proj_bias, h))
            w_q, w_k, w_v = self.in_proj_weight.split(h * d)
            return self.attend(x @ w_q.t(), context @ w_k.t(), context @ w_v.t(), self.in_proj_bias)
        w_q, w_kv = self.in_proj_weight.split([h * d, 2 * h * d])
        b_q, b_kv = self.in_proj_bias.split([h * d, 2 * h * d])
        # -1 on the batch axis keeps the exported batch dimension dynamic
        q = F.linear(x, w_q, b_q).reshape(-1, nq, h, d).transpose(1, 2)
        kv = F.linear(context, w_kv, b_kv).reshape(-1, nk, 2, h, d).permute(2, 0, 3, 1, 4)
        attn = torch.softmax((q * (1.0 / math.sqrt(d))) @ kv[0].transpose(-2, -1), dim=-1)
        attn = F.dropout(attn, self.dropout, self.training)
        return self.out_proj((attn @ kv[1]).transpose(1, 2).reshape(-1, nq, h * d))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Attention (inference) of already projected ``q`` (N, S, D), ``k``, ``v`` (N, L, D), their projection
        ``bias`` (3D,) not yet added, then ``out_proj``."""
        if self.ort_fused:
            return self.out_proj(OrtCrossAttention.apply(q, k, v, bias, self.num_heads))
        b_q, b_k, b_v = bias.chunk(3)
        return self.out_proj(attention_math(q + b_q, k + b_k, v + b_v, self.num_heads))


class ConstantQueryProjection(nn.Module):
    """The first layer's ``self_attn`` input projection of ``norm1(E + c)``, with ``E`` the constant learned
    queries (1, Q, d) and ``c`` (N, 1, d) the per-person CLIFF vector added to every row, from constants
    folded at export (inference only, same math up to float rounding).

    With ``e = E - mean(E)`` per row and ``g = c - mean(c)``: ``norm1(E + c) = gamma * (e + g) / sigma + beta``,
    ``sigma^2 = mean(e^2) + 2 e.g / d + mean(g^2)``, so ``W norm1(E + c) = (A + g (W gamma)^T) / sigma + W beta``
    with ``A = (gamma e) W^T`` (Q, 3D) constant: one (N, d) x (d, 3D) product per person instead of the
    (N Q, d) x (d, 3D) GEMM (141 rows: 5 % of the notebook decoder's FLOPs). Returns ``q, k, v`` (N, Q, D) and the
    bias (3D,) still to add (``in_proj_bias + W beta``)."""

    def __init__(self, query_embed: torch.Tensor, norm: nn.LayerNorm, attn: PackedAttention):
        super().__init__()
        e = query_embed[0] - query_embed[0].mean(-1, keepdim=True)  # (Q, d)
        w, gamma = attn.in_proj_weight, norm.weight  # (3D, d), (d,)
        # w_g replaces the projection weight in the graph (same size); the "derived_" constants are computed from
        # weights counted elsewhere, and tools/model_info.py leaves them out of the parameter count
        self.register_buffer("w_g", (w * gamma).t().contiguous())  # (d, 3D)
        self.register_buffer("bias", attn.in_proj_bias + w @ norm.bias)
        self.register_buffer("derived_e_over_d", e / e.shape[-1])  # (Q, d)
        self.register_buffer("derived_mean_e2", (e * e).mean(-1, keepdim=True) + norm.eps)  # (Q, 1), eps folded in
        self.register_buffer("derived_a", (e * gamma) @ w.t())  # (Q, 3D)

    def forward(self, c: torch.Tensor):
        g = c - c.mean(-1, keepdim=True)  # (N, 1, d)
        var = (self.derived_mean_e2 + 2.0 * (self.derived_e_over_d @ g.transpose(1, 2))
               + (g * g).mean(-1, keepdim=True))  # (N, Q, 1)
        q, k, v = ((self.derived_a + g @ self.w_g) * torch.rsqrt(var)).chunk(3, dim=-1)
        return q, k, v, self.bias


class DecoderLayer(nn.Module):
    """``nn.TransformerDecoderLayer(norm_first=True, activation="gelu", batch_first=True)``: same names, same
    math (the image tokens are not normalised; dropout on attention weights and on each residual branch)."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.self_attn = PackedAttention(dim, num_heads, dropout)
        self.multihead_attn = PackedAttention(dim, num_heads, dropout)
        self.linear1, self.linear2 = nn.Linear(dim, ff_dim), nn.Linear(ff_dim, dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout, self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(dropout) for _ in range(4))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_qkv: tuple | None = None) -> torch.Tensor:
        """``self_qkv``: the self-attention's projected ``(q, k, v, bias)`` when folded
        (:class:`ConstantQueryProjection`), else computed from ``norm1(x)``."""
        if self_qkv is None:
            q = self.norm1(x)
            x = x + self.dropout1(self.self_attn(q, q))
        else:
            x = x + self.dropout1(self.self_attn.attend(*self_qkv))
        x = x + self.dropout2(self.multihead_attn(self.norm2(x), memory))
        return x + self.dropout3(self.linear2(self.dropout(F.gelu(self.linear1(self.norm3(x))))))


class Decoder(nn.Module):
    """``nn.TransformerDecoder(layer, num_layers)`` without final norm: ``transformer.layers.N.*``."""

    def __init__(self, dim: int, num_heads: int, ff_dim: int, dropout: float, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(dim, num_heads, ff_dim, dropout) for _ in range(num_layers))

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, first_self_qkv: tuple | None = None) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            queries = layer(queries, memory, first_self_qkv if i == 0 else None)
        return queries


@register_arch("notebook")
class NotebookHMRNet(HMRNetBase):
    """``forward(image, cliff_cond)`` returns a dict of tensors:

    * ``mhr_params`` (N, 204), ``shape_params`` (N, 45): MHR parameters (``bound_scales``: 0:3 and 130:204
      squashed into ``[scale_lo, scale_hi]``).
    * ``cam_trans`` (N, 3): full-frame camera translation of the body, metres, camera axes (x right, y down,
      z forward); float32 even in a half model.
    * ``joints_2d`` (N, 70, 2): MHR70 joints in normalised crop coordinates (``[-1, 1]`` spans the crop).
    * ``joints_3d`` (N, 70, 3): MHR70 joints, metres, body-centred, camera axes (absent without
      ``joints_3d_head``).

    ``image`` is (N, 3, S, S) ImageNet-normalised RGB, ``cliff_cond`` (N, 3) in ``config.cliff_form`` (the
    notebook's is ``pixel``: ``[2cx/W - 1, 2cy/H - 1, max(bw, bh) / max(W, H)]`` of the tight box).
    """

    def __init__(self, config: ModelConfig, pretrained_backbone: str | None = None):
        super().__init__()
        self.config = config
        d, grid = config.d_model, config.input_size // 32
        self.backbone = create_backbone(config.backbone, pretrained_backbone, features_only=False,
                                        **config.backbone_kwargs)
        self.feat_proj = nn.Linear(feature_channels(self.backbone), d)
        self.register_buffer("mem_pos_embed", sincos_pos_embed_2d(grid, grid, d)[None])  # persistent, as there
        self.query_embed = nn.Parameter(torch.randn(1, self.query_count(config), d) * 0.02)
        self.cond_proj = nn.Sequential(nn.Linear(3, config.cond_hidden), nn.GELU(), nn.Linear(config.cond_hidden, d))
        self.transformer = Decoder(d, config.num_heads, int(d * config.mlp_ratio), config.dropout, config.num_layers)
        self.head_global = nn.Linear(d, sum(n for _, n in GLOBAL_OUTPUTS))
        h = config.head_hidden
        self.head_2d_feat = nn.Sequential(nn.Linear(d, h), nn.GELU())
        if config.head_2d == "simcc":
            self.head_2d_logits = nn.Linear(h, 2 * config.simcc_bins)
            self.register_buffer("kp2d_bin_centers",
                                 torch.linspace(-config.simcc_range, config.simcc_range, config.simcc_bins))
        else:
            self.head_2d_xy = nn.Sequential(nn.Linear(h, 2))
        self.head_3d = (nn.Sequential(nn.Linear(d, h), nn.GELU(), nn.Linear(h, 3)) if config.joints_3d_head
                        else None)
        self.wholebody_head = None  # (query9 only; export reads the attribute)
        if config.bound_scales:  # the anchor fills these from its assets/mhr_size_bounds.npz; a checkpoint overrides
            self.register_buffer("scale_lo", torch.full((NUM_BOUNDED,), -1.0))
            self.register_buffer("scale_hi", torch.full((NUM_BOUNDED,), 1.0))
        with torch.no_grad():  # the notebook's init: near-zero global outputs, 2 m depth
            nn.init.normal_(self.head_global.weight, std=1e-4)
            nn.init.zeros_(self.head_global.bias)
            self.head_global.bias[-1] = CAM_Z_INIT
        self.query_fold = None  # ConstantQueryProjection, set on the export copy by optimize_for_export
        self.fused = False

    @staticmethod
    def query_count(config: ModelConfig) -> int:
        return 1 + NUM_JOINTS + (NUM_JOINTS if config.joints_3d_head else 0)

    @staticmethod
    def output_names_for(config: ModelConfig) -> tuple[str, ...]:
        return OUTPUT_NAMES if config.joints_3d_head else tuple(n for n in OUTPUT_NAMES if n != "joints_3d")

    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(image)

    @torch.no_grad()
    def optimize_for_export(self, ort_attention: bool = True):
        """Switch this fused model to the graph ONNX Runtime runs fastest, same math up to float rounding
        (export only; docs/performance.md "The notebook network vs its backbone"): the first layer's
        self-attention projection of the constant queries folded (:class:`ConstantQueryProjection`) and, with
        ``ort_attention``, attention as ORT's fused ``Attention`` / ``MultiHeadAttention`` contrib ops (files
        then need ONNX Runtime). Returns self."""
        if not self.fused:
            raise RuntimeError("optimize_for_export is for the fused export copy (call fuse() first)")
        first = self.transformer.layers[0]
        self.query_fold = ConstantQueryProjection(self.query_embed, first.norm1, first.self_attn)
        for layer in self.transformer.layers:
            layer.self_attn.ort_fused = layer.multihead_attn.ort_fused = ort_attention
        return self

    def export_metadata(self) -> dict[str, str]:
        """Our keys plus the anchor exporter's (``arch``, ``image_size``, ``bound_scales``, ``cliff_focal``), so
        either reader feeds the file right. ``cam_head: direct`` tells our runtime that ``cam_trans`` is used
        as predicted (no pixel-form camera correction)."""
        cfg = self.config
        meta = {**super().export_metadata(), "cam_head": "direct", "arch": anchor_arch_name(cfg),
                "image_size": str(cfg.input_size), "bound_scales": "true" if cfg.bound_scales else "false"}
        if cfg.cliff_form == "pixel":  # the anchor's cliff_focal=true form (atan) is not ours: say nothing then
            meta["cliff_focal"] = "false"
        return meta

    def _bound(self, mhr: torch.Tensor) -> torch.Tensor:
        lo, hi = self.scale_lo.to(mhr.dtype), self.scale_hi.to(mhr.dtype)
        parts, start, k = [], 0, 0
        for a, b in BOUNDED_SLICES:
            parts.append(mhr[:, start:a])
            n = b - a
            parts.append(lo[k:k + n] + (hi[k:k + n] - lo[k:k + n]) * 0.5 * (torch.tanh(mhr[:, a:b]) + 1.0))
            start, k = b, k + n
        parts.append(mhr[:, start:])
        return torch.cat(parts, dim=1)

    def forward(self, image: torch.Tensor, cliff_cond: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.image_features(image)
        memory = self.feat_proj(feat.flatten(2).transpose(1, 2)) + _as(self.mem_pos_embed, feat.dtype)
        # broadcasting (1, Q, d) + (N, 1, d) is the notebook's expand + add, and keeps the ONNX batch axis dynamic
        cond = self.cond_proj(cliff_cond.to(feat.dtype))[:, None, :]
        queries = _as(self.query_embed, feat.dtype) + cond
        shared = self.transformer(queries, memory, None if self.query_fold is None else self.query_fold(cond))
        g = self.head_global(shared[:, 0])
        mhr, shape, cam = torch.split(g, [n for _, n in GLOBAL_OUTPUTS], dim=1)
        if self.config.bound_scales:
            mhr = self._bound(mhr)
        h2 = self.head_2d_feat(shared[:, 1:1 + NUM_JOINTS])
        if self.config.head_2d == "simcc":
            bins = self.config.simcc_bins
            prob = torch.softmax(self.head_2d_logits(h2).float().unflatten(-1, (2, bins)), dim=-1)
            joints_2d = (prob * self.kp2d_bin_centers.float()).sum(-1)
        else:
            joints_2d = self.head_2d_xy(h2)
        out = {"mhr_params": mhr, "shape_params": shape, "cam_trans": cam.float(), "joints_2d": joints_2d}
        if self.head_3d is not None:
            out["joints_3d"] = self.head_3d(shared[:, 1 + NUM_JOINTS:])
        return out


# -- named configs of this architecture ----------------------------------------------------------------------


@register_config
def instanthmr_notebook_m2_3() -> ModelConfig:
    """The public training notebook's network: RepViT-M2.3, d 512, 8 heads, 4 layers, FF 2048, 141 queries,
    linear 2D head (the anchor exporter's ``legacy``), ~40.1 M parameters."""
    return ModelConfig(arch="notebook", backbone="repvit_m2_3", d_model=512, num_heads=8, num_layers=4,
                       mlp_ratio=4.0, dropout=0.1, cond_hidden=128, head_hidden=256)


@register_config
def instanthmr_notebook_simcc_m2_3() -> ModelConfig:
    """The notebook trunk with the later scripts' SimCC 2D head (96 bins over [-1.5, 1.5] per axis)."""
    return instanthmr_notebook_m2_3().replace(head_2d="simcc")


@register_config
def instanthmr_notebook_mhr_only_m2_3() -> ModelConfig:
    """The later ``mhr_only`` script: SimCC 2D head, no 3D queries or head (71 queries, 4 outputs; keypoints come
    from the MHR layer)."""
    return instanthmr_notebook_m2_3().replace(head_2d="simcc", joints_3d_head=False)


@register_config
def instanthmr_notebook_tiny_test() -> ModelConfig:
    """The notebook graph at tiny widths, for tests and CI."""
    return ModelConfig(arch="notebook", backbone="repvit_m0_9",
                       backbone_kwargs={"embed_dim": [16, 32, 48, 64], "depth": [1, 1, 1, 1]},
                       d_model=64, num_heads=2, num_layers=1, mlp_ratio=2.0, dropout=0.1, cond_hidden=16,
                       head_hidden=32)
