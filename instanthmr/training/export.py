"""Export an InstantHMR network to one ONNX file, stamp its metadata, and check it against torch.

    python tools/export_onnx.py --checkpoint runs/x/last.pt --out models/instanthmr.onnx
    python tools/export_onnx.py --random-init --config instanthmr_tiny_test --out /tmp/tiny.onnx
    python tools/export_onnx.py --checkpoint last.pt --out models/instanthmr.fp16.onnx --fp16

The file has inputs ``image`` (N,3,224,224) float32 ImageNet-normalised RGB and ``cliff_cond`` (N,3), and the
outputs ``mhr_params, shape_params, cam_trans, joints_2d, joints_3d`` (+ ``joints_3d_wholebody`` when the model
has that head), dynamic batch axis, RepViT blocks fused. ``--fp16`` gives a graph whose weights and math are
fp16 with float32 inputs and outputs (for GPUs). Every export ends with an ONNX Runtime vs torch parity check.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

DEFAULT_OPSET = 17
# Parity tolerances, relative to max(1, max |torch output|) of each output. fp32 is the 1e-4;
# fp16 (10-bit mantissa through ~30 layers): see the measured errors in docs/architecture.md.
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 1e-2
PARITY_OUTPUTS = ("joints_2d", "joints_3d")  # outputs that decide pass/fail; the others are reported


class ExportError(RuntimeError):
    """The model could not be exported or the exported file fails its parity check."""


def _export_module(model, output_names: tuple[str, ...], fp16: bool, optimize: bool = False):
    import torch

    class ExportWrapper(torch.nn.Module):
        """Tuple outputs in a fixed order; fp16 math inside, float32 at the graph boundary."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, image, cliff_cond):
            out = self.net(image.half() if fp16 else image, cliff_cond)
            return tuple(out[n].float() for n in output_names)

    net = copy.deepcopy(model).eval().fuse()
    if optimize and hasattr(net, "optimize_for_export"):
        net.optimize_for_export()
    if fp16:
        net = net.half()
    return ExportWrapper(net).eval()


def model_metadata(model, fp16: bool = False, step: int | None = None, **extra) -> dict[str, str]:
    """The metadata stamped into the ONNX file (all values are strings; lists/dicts are JSON)."""
    from instanthmr import __version__
    from instanthmr.core.geometry import IMAGENET_MEAN, IMAGENET_STD
    from instanthmr.core.skeleton import COCO_WHOLEBODY_NAMES, MHR70_NAMES

    cfg = model.config
    wholebody = model.wholebody_head is not None
    meta = {
        "instanthmr_version": __version__,
        "model_name": cfg.name,
        "model_config": json.dumps(cfg.to_dict()),
        "cliff_form": cfg.cliff_form,
        **model.export_metadata(),  # per architecture: camera head, query count, the anchor's keys
        "input_size": str(cfg.input_size),
        "mean": json.dumps(list(IMAGENET_MEAN)),
        "std": json.dumps(list(IMAGENET_STD)),
        "joint_set": "MHR70",
        "joint_names": json.dumps(list(MHR70_NAMES)),
        "wholebody": "true" if wholebody else "false",
        "outputs": json.dumps(list(model.output_names)),
        "precision": "fp16" if fp16 else "fp32",
        "train_step": str(int(step if step is not None else getattr(model, "step", 0))),
    }
    if wholebody:
        meta["wholebody_joint_names"] = json.dumps(list(COCO_WHOLEBODY_NAMES))
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()})
    return meta


def _random_inputs(batch: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    cliff = np.stack([rng.uniform(-0.6, 0.6, batch), rng.uniform(-0.6, 0.6, batch),
                      rng.uniform(0.15, 0.9, batch)], axis=1).astype(np.float32)
    return image, cliff


def check_parity(model, path: str | Path, fp16: bool = False, batch: int = 3, seed: int = 0) -> dict:
    """Run ``path`` in ONNX Runtime (CPU) and the unfused fp32 torch ``model`` on one random batch.

    Returns ``{"max_abs_err": {output: err}, "scale": {output: max|ref|}, "tolerance", "ok", "skipped",
    "provider"}``; ``skipped`` is a reason string when ORT cannot run the graph here (fp16 on CPU builds that
    lack fp16 kernels), else ``None``.
    """
    import onnxruntime as ort
    import torch

    from instanthmr.core.errors import first_line

    names = tuple(model.output_names)
    image, cliff = _random_inputs(batch, model.config.input_size, seed)
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(image), torch.from_numpy(cliff))
    ref = {n: ref[n].float().numpy() for n in names}
    tol = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
    report = {"precision": "fp16" if fp16 else "fp32", "batch": batch, "tolerance": tol, "skipped": None,
              "provider": None, "max_abs_err": {}, "scale": {}, "ok": False}
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        outs = sess.run(list(names), {"image": image, "cliff_cond": cliff})
    except Exception as e:
        if not fp16:
            raise ExportError(f"{path}: ONNX Runtime cannot run the exported fp32 graph "
                              f"({first_line(e)})") from None
        report["skipped"] = f"ONNX Runtime CPU cannot run this fp16 graph ({first_line(e, 120)})"
        return report
    report["provider"] = sess.get_providers()[0]
    ok = True
    for n, o in zip(names, outs):
        err = float(np.max(np.abs(o.astype(np.float64) - ref[n])))
        scale = float(max(1.0, np.max(np.abs(ref[n]))))
        report["max_abs_err"][n] = err
        report["scale"][n] = scale
        if n in PARITY_OUTPUTS and not err <= tol * scale:  # `not <=` also catches NaN
            ok = False
    report["ok"] = ok
    return report


def _set_output_shapes(proto, model, image, cliff) -> None:
    """Write the static per-person output shapes (the tracer leaves reshaped dims symbolic)."""
    import torch

    with torch.no_grad():
        ref = model.eval()(image, cliff)
    for out in proto.graph.output:
        dims = out.type.tensor_type.shape.dim
        for d, size in zip(list(dims)[1:], ref[out.name].shape[1:]):
            d.ClearField("dim_param")
            d.dim_value = int(size)


def export_onnx(model, path: str | Path, fp16: bool = False, metadata: dict | None = None,
                opset: int = DEFAULT_OPSET, parity: bool = True, parity_batch: int = 3, seed: int = 0,
                optimize: bool = True) -> dict:
    """Export ``model`` (an unfused network of any architecture, on any device, in any mode; it is not modified) to
    ``path``.

    The copy that is exported is fused (RepViT reparameterised) and, with ``fp16``, halved. ``optimize`` (fp32
    only; architectures that have one) writes the graph ONNX Runtime runs fastest, same outputs to float rounding
    (``NotebookHMRNet.optimize_for_export``: the constant queries' first projection folded, ORT's fused
    attention ops; metadata ``export_optimized``); ``False`` writes the plain graph any ONNX runtime reads. ``metadata``
    entries are added to (or override) :func:`model_metadata`. Returns the parity report of
    :func:`check_parity` (``{"skipped": "parity check disabled"}`` with ``parity=False``); raises
    :class:`ExportError` when fp32 parity fails.
    """
    import onnx
    import torch

    if opset < 17:
        raise ValueError(f"opset must be 17 or newer (LayerNormalization), got {opset}")
    if getattr(model, "fused", False):
        raise ExportError("export needs the unfused model (it fuses a copy and checks parity against the original)")
    from instanthmr.core.faults import atomic_path

    path = Path(path)
    # a float32 CPU eval copy (attributes such as .step come along): the trainer's model keeps its device,
    # dtype and train mode
    model = copy.deepcopy(model).cpu().float().eval()
    names = tuple(model.output_names)
    optimize = bool(optimize and not fp16 and hasattr(model, "optimize_for_export"))
    wrapper = _export_module(model, names, fp16, optimize)
    size = model.config.input_size
    dummy_image, dummy_cliff = (torch.from_numpy(a) for a in _random_inputs(2, size, seed))
    dynamic = {n: {0: "batch"} for n in ("image", "cliff_cond") + names}
    import warnings

    # written under a temporary name and renamed only once it passed its checks: a failed parity check or
    # an interrupt leaves no file (and an earlier good one at ``path`` untouched)
    with atomic_path(path) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer chatter
            torch.onnx.export(wrapper, (dummy_image, dummy_cliff), str(tmp), dynamo=False,
                              input_names=["image", "cliff_cond"], output_names=list(names), dynamic_axes=dynamic,
                              opset_version=opset, do_constant_folding=True,
                              custom_opsets={"com.microsoft": 1} if optimize else None)
        proto = onnx.load(str(tmp))
        _set_output_shapes(proto, model, dummy_image, dummy_cliff)
        meta = model_metadata(model, fp16=fp16, **(metadata or {}))
        meta.setdefault("export_optimized", "query-fold+ort-attention" if optimize else "none")
        del proto.metadata_props[:]
        for k, v in meta.items():
            proto.metadata_props.add(key=k, value=str(v))
        proto.doc_string = f"InstantHMR {meta['model_name']} ({meta['precision']}, CLIFF form {meta['cliff_form']})"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        if not parity:
            return {"skipped": "parity check disabled", "ok": None}
        try:
            report = check_parity(model, tmp, fp16=fp16, batch=parity_batch, seed=seed + 1)
        except ExportError as e:  # name the file the user asked for, not the temporary one
            raise ExportError(str(e).replace(str(tmp), str(path))) from None
        if not fp16 and not report["ok"]:
            raise ExportError(f"{path}: ONNX Runtime disagrees with torch beyond {FP32_TOLERANCE:g}: "
                              f"{format_report(report)}; nothing was written")
    return report


def format_report(report: dict) -> str:
    if report.get("skipped"):
        return f"parity skipped: {report['skipped']}"
    errs = ", ".join(f"{n} {e:.2e}" for n, e in report["max_abs_err"].items())
    verdict = "OK" if report["ok"] else "FAILED"
    return (f"parity {report['precision']} ({report['provider']}, batch {report['batch']}): max abs error {errs}; "
            f"tolerance {report['tolerance']:g} x max(1, |ref|) on {'/'.join(PARITY_OUTPUTS)}: {verdict}")


def random_init_onnx(config: str | None = None, seed: int = 0, cache_dir: str | Path | None = None) -> Path:
    """Export a random-init InstantHMR network (``config``, default ``DEFAULT_CONFIG``) to ONNX and
    return its path; cached under the temp folder so repeated runs export once. Imports torch: plumbing and
    speed measurements only, its outputs mean nothing."""
    import os
    import tempfile

    from instanthmr.training.model import DEFAULT_CONFIG, build_model
    from instanthmr.training.model.random_init import randomize_

    name = config or DEFAULT_CONFIG
    folder = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "instanthmr_random_init"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{name}-seed{seed}-optimized.onnx"  # not the plain exports an older version cached
    if out.is_file():
        return out
    model = randomize_(build_model(name), seed=seed).eval()
    model.step = 0
    tmp = folder / f".{name}-seed{seed}.{os.getpid()}.onnx"
    export_onnx(model, tmp, parity=False, metadata={"random_init": "true"})
    os.replace(tmp, out)  # atomic: a concurrent run never reads a half-written file
    return out
