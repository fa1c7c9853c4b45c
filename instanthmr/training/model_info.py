"""What a network is: parameter counts and FLOPs of registered configs (:func:`model_stats`), or what an ONNX
file holds (:func:`inspect_onnx`, :func:`match_architecture`, :func:`describe_onnx`; ``tools/model_info.py``).

Configs: FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matmul/conv/attention; one
multiply-add = 2 FLOPs) on the fused (reparameterised) model that is exported.

ONNX files: the parameter count is the number of weight values stored (float and int8 initializers and
constants; integer shape constants left out), the weight dtype the one most of them have, the query count the
second-last dimension of the learned query tensor (``query_embed`` / ``decoder.queries``; else an initializer
of shape (1, Q, d) added in the graph that is not the (S/32)^2 position embedding), the input size the
``image`` input's static size (else the metadata's). The file is then compared with every registered config's
export (built on torch's meta device: nothing allocated): same query count, width and outputs, parameter count
within 2 %, then the config whose distinctive weight shapes the file holds.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

PARAM_TOLERANCE = 0.02  # relative parameter-count difference still called a match (unfused exports: ~0.3 %)
_FLOAT_TYPES = {1: "fp32", 10: "fp16", 16: "bf16", 11: "fp64"}  # onnx.TensorProto data types
_INT8_TYPES = {2: "uint8", 3: "int8"}


def network_label(path: str | Path) -> str:
    """The architecture an ONNX file names in its metadata (our exports write ``model_name``), else its file
    name: what the benchmark tables print in their architecture column. Reads the file's metadata only."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return meta.get("model_name") or f"{Path(path).name} (no metadata)"


def model_stats(name: str, wholebody: bool = False) -> dict:
    """``{"config", "arch", "backbone", "queries", "params", "params_fused", "params_backbone",
    "params_decoder_heads", "gflops", "gflops_backbone"}`` of one registered config (fused figures are what
    the ONNX file holds)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from instanthmr.training.model import build_model, count_parameters

    model = build_model(name, **({"wholebody_head": True} if wholebody else {})).eval()
    params = count_parameters(model)
    model.fuse()
    image, cliff = torch.zeros(1, 3, model.config.input_size, model.config.input_size), torch.zeros(1, 3)
    cliff[:, 2] = 0.5

    def flops(fn) -> int:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            fn()
        return counter.get_total_flops()

    total = flops(lambda: model(image, cliff))
    backbone = flops(lambda: model.image_features(image))
    p_backbone = count_parameters(model.backbone)
    return {"config": name, "arch": model.config.arch, "backbone": model.config.backbone,
            "queries": model.num_queries, "wholebody": wholebody, "params": params,
            "params_fused": count_parameters(model), "params_backbone": p_backbone,
            "params_decoder_heads": count_parameters(model) - p_backbone,
            "gflops": total / 1e9, "gflops_backbone": backbone / 1e9}


# ------------------------------------------------------------------------------------------------
# ONNX files
# ------------------------------------------------------------------------------------------------


def _tensors(graph):
    """``(name, dims, data_type)`` of every initializer and Constant-node tensor (subgraphs included)."""
    for t in graph.initializer:
        yield t.name, tuple(t.dims), t.data_type
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t is not None:
                    yield node.output[0], tuple(a.t.dims), a.t.data_type
        for a in node.attribute:
            if a.g is not None and a.g.node:
                yield from _tensors(a.g)


def _numel(dims) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def _static_image_size(model) -> int | None:
    for inp in model.graph.input:
        if inp.name == "image":
            dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
            if len(dims) == 4 and dims[2] and dims[2] == dims[3]:
                return int(dims[2])
    return None


def _query_tensor(model, tensors, input_size: int | None):
    """``(Q, d)`` of the learned query tensor, or ``None``."""
    for name, dims, dtype in tensors:
        base = name.rsplit(".", 1)[-1].lower()
        if base in ("query_embed", "queries") and len(dims) >= 2:
            return int(dims[-2]), int(dims[-1])
    # names lost (renamed by an exporter): a (1, Q, d) float tensor added in the graph that is not the
    # (S/32)^2 image-token position embedding
    grid = (input_size // 32) ** 2 if input_size else None
    added = {i for n in model.graph.node if n.op_type in ("Add", "Expand") for i in n.input}
    hits = {(int(d[1]), int(d[2])) for name, d, t in tensors
            if name in added and t in _FLOAT_TYPES and len(d) == 3 and d[0] == 1 and d[1] > 1 and d[1] != grid}
    return hits.pop() if len(hits) == 1 else None


def inspect_onnx(path: str | Path) -> dict:
    """What ``path`` holds: ``{"path", "params", "dtype", "dtype_counts", "queries", "d_model", "input_size",
    "inputs", "outputs", "metadata", "shapes"}`` (``queries``/``d_model``/``input_size`` ``None`` when not
    found). Needs the ``onnx`` package."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    # quantisation scales and zero points are not weights
    qparams = {i for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear") for i in n.input[1:]}
    dequantized = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    # nor are constants an optimised export derives from other weights (ConstantQueryProjection's "derived_*")
    tensors = [t for t in _tensors(model.graph) if t[0] not in qparams and ".derived_" not in t[0]]
    # torch's exporter stores equal weights once and points the copies at it through Identity nodes (random
    # inits have many: zero-initialised branches, cloned decoder layers): count each copy as the model does
    by_name = {t[0]: t for t in tensors}
    tensors += [(n.output[0],) + by_name[n.input[0]][1:] for n in model.graph.node
                if n.op_type == "Identity" and n.input[0] in by_name]
    counts: dict[str, int] = {}
    for name, dims, dtype in tensors:
        kind = _FLOAT_TYPES.get(dtype) or _INT8_TYPES.get(dtype)
        if dtype == 6 and name in dequantized:  # int32 biases of quantised convolutions
            kind = "int32"
        if kind:
            counts[kind] = counts.get(kind, 0) + _numel(dims)
    params = sum(counts.values())
    if counts.get("int8", 0) + counts.get("uint8", 0) > 0:
        rest = max((k for k in counts if k in _FLOAT_TYPES.values()), key=counts.get, default=None)
        dtype = "int8" + (f" + {rest}" if rest else "")
    else:
        dtype = max(counts, key=counts.get) if counts else "none"
    meta = {p.key: p.value for p in model.metadata_props}
    size = _static_image_size(model)
    if size is None:
        for key in ("input_size", "image_size"):
            if meta.get(key, "").isdigit():
                size = int(meta[key])
                break
    q = _query_tensor(model, tensors, size)

    def io(values):
        return {v.name: [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                         for d in v.type.tensor_type.shape.dim] for v in values}

    init_names = {t.name for t in model.graph.initializer}
    return {"path": str(path), "params": params, "dtype": dtype, "dtype_counts": counts,
            "queries": q[0] if q else None, "d_model": q[1] if q else None, "input_size": size,
            "inputs": {k: v for k, v in io(model.graph.input).items() if k not in init_names},
            "outputs": io(model.graph.output), "metadata": meta,
            "shapes": [dims for _, dims, t in tensors if len(dims) >= 2 and (t in _FLOAT_TYPES or t in _INT8_TYPES)]}


@functools.cache
def _signature(config: str, wholebody: bool) -> dict:
    """Exported parameter count (fused parameters + float buffers) and the decoder/head weight shapes of a
    config (a registered name, or a config dict as JSON), from a model built and fused on the meta device."""
    import torch

    from instanthmr.training.model import build_model

    spec = json.loads(config) if config.startswith("{") else config
    with torch.device("meta"):
        net = build_model(spec, **({"wholebody_head": True} if wholebody else {})).eval().fuse()
    params = sum(p.numel() for p in net.parameters())
    params += sum(b.numel() for b in net.buffers() if b.dtype.is_floating_point)
    head_shapes = {tuple(v.shape) for k, v in net.state_dict().items() if not k.startswith("backbone.") and v.ndim >= 2}
    return {"params": int(params), "head_shapes": head_shapes}


def _config_summary(cfg) -> tuple[int, int, tuple[str, ...]]:
    """``(queries, d_model, outputs)`` of a :class:`ModelConfig` without building it."""
    from instanthmr.training.model import output_names_for, query_count

    return query_count(cfg), cfg.d_model, output_names_for(cfg)


def match_architecture(info: dict) -> dict | None:
    """The registered config the file of :func:`inspect_onnx` matches best (``{"config", "param_diff",
    "shape_score", "input_size", "wholebody", "from_metadata"}``), or ``None``. When no registered config
    matches, the config in the file's own ``model_config`` metadata is tried (a config with overrides). Needs
    torch and timm (raises ImportError otherwise)."""
    from instanthmr.training.model import ModelConfig, get_config, list_configs

    outputs = set(info["outputs"])
    wholebody = "joints_3d_wholebody" in outputs
    file_shapes = {tuple(s) for s in info["shapes"]} | {tuple(reversed(s)) for s in info["shapes"]}

    def candidates():
        for name in list_configs():
            yield name, name, get_config(name)
        try:
            cfg = ModelConfig.from_dict(json.loads(info["metadata"]["model_config"]))
        except (KeyError, ValueError, TypeError):
            return
        yield f"{cfg.name} with overrides (from the file's metadata)", json.dumps(cfg.to_dict()), cfg

    best = None
    for label, key, cfg in candidates():
        if best is not None and key.startswith("{"):
            break  # a registered config matched: the metadata's own config is only the fallback
        try:
            cfg = cfg.replace(wholebody_head=True) if wholebody else cfg
        except ValueError:  # e.g. a wholebody head the architecture does not have
            continue
        queries, d_model, outs = _config_summary(cfg)
        if set(outs) != outputs or info["queries"] not in (None, queries) or info["d_model"] not in (None, d_model):
            continue
        sig = _signature(key, wholebody)
        diff = abs(info["params"] - sig["params"]) / max(sig["params"], 1)
        if diff > PARAM_TOLERANCE:
            continue
        score = sum(s in file_shapes for s in sig["head_shapes"]) / max(len(sig["head_shapes"]), 1)
        rank = (-round(score, 3), diff)
        if best is None or rank < best[0]:
            best = (rank, {"config": label, "param_diff": diff, "shape_score": score,
                           "input_size": cfg.input_size, "wholebody": wholebody,
                           "from_metadata": key.startswith("{")})
    return best[1] if best else None


def describe_onnx(path: str | Path, match: bool = True) -> str:
    """One line: parameters, weight dtype, queries, input size, outputs, metadata model name, architecture."""
    info = inspect_onnx(path)
    meta = info["metadata"]
    q = f"{info['queries']} queries (d {info['d_model']})" if info["queries"] else "query count not found"
    size = f"input {info['input_size']}x{info['input_size']}" if info["input_size"] else "input size dynamic"
    named = meta.get("model_name") or (f"anchor arch {meta['arch']}" if "arch" in meta else None)
    parts = [f"{info['params'] / 1e6:.2f} M parameters", f"{info['dtype']} weights", q, size,
             f"{len(info['outputs'])} outputs ({', '.join(info['outputs'])})",
             f"metadata: {named}" if named else ("metadata: none" if not meta else "metadata: no model name")]
    if match:
        try:
            m = match_architecture(info)
        except ImportError as e:
            parts.append(f"architecture: not compared ({e.name or 'torch'} not installed)")
        else:
            if m is None:
                parts.append("architecture: matches no registered config")
            else:
                extra = "" if info["input_size"] in (None, m["input_size"]) else f", at input {info['input_size']}"
                parts.append(f"architecture: {m['config']}{' + wholebody head' if m['wholebody'] else ''} "
                             f"(parameters within {m['param_diff']:.1%}{extra})")
    return "; ".join(parts)
