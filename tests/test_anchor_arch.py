"""The notebook architecture (``instanthmr_notebook_*``): the public InstantHMR notebook's state-dict names and
shapes (written down in tests/data/anchor_notebook_state_dict.json), strict loading of its ``.pth`` format,
its forward against a literal transcription of the notebook's, export to our ONNX contract, fine-tuning with our
trainer, and what tools/model_info.py says about an ONNX file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from instanthmr.training.model import (
    CheckpointError,
    build_model,
    count_parameters,
    get_config,
    list_configs,
    load_checkpoint,
    notebook_config_for,
    read_checkpoint,
)
from instanthmr.training.model.random_init import randomize_

DATA = json.loads((Path(__file__).parent / "data" / "anchor_notebook_state_dict.json").read_text())
NOTEBOOK = "instanthmr_notebook_m2_3"
TINY = "instanthmr_notebook_tiny_test"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # two cores shared by several processes: one intra-op thread is faster than two contended ones
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def notebook_spec(variants: tuple[str, ...] = ()) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Names -> (shape, dtype) of the notebook's state dict: the backbone's from timm itself, the rest from the
    data file, with the data file's variant changes applied."""
    import timm

    bb = DATA["backbone"]
    with torch.device("meta"):
        backbone = timm.create_model(bb["timm_name"], pretrained=False, **bb["create_kwargs"])
    spec = {bb["prefix"] + k: (tuple(v.shape), v.dtype) for k, v in backbone.state_dict().items()}
    spec.update({k: (tuple(s), torch.float32) for k, s in DATA["non_backbone"].items()})
    for name in variants:
        v = DATA["variants"][name]
        for k in v["removed"]:
            spec.pop(k, None)
        for k, s in {**v["added"], **v["changed"]}.items():
            spec[k] = (tuple(s), torch.float32)
    return spec


def random_state(spec: dict, seed: int = 0, device: str | None = None) -> dict[str, torch.Tensor]:
    """A random state dict of ``spec`` (small weights, unit BatchNorm variances; meta tensors with ``device``)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, (shape, dtype) in spec.items():
        if device == "meta":
            out[k] = torch.empty(shape, dtype=dtype, device="meta")
        elif dtype == torch.int64:
            out[k] = torch.tensor(7, dtype=torch.int64).expand(shape).clone()
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        elif k == "kp2d_bin_centers":
            out[k] = torch.linspace(-1.5, 1.5, shape[0])
        else:
            out[k] = torch.randn(shape, generator=g) * 0.02
    return out


def save_anchor_checkpoint(path: Path, state: dict, prefix: str = "") -> Path:
    """The notebook's checkpoint layout (``torch.save`` of a plain dict)."""
    torch.save({"epoch": 12, "model_state_dict": {prefix + k: v for k, v in state.items()},
                "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 1e-4, "params": []}]},
                "val_pa_mpjpe": np.float64(41.25)}, path)
    return path


def _inputs(n=2, size=224, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(n, 3, size, size, generator=g)
    cliff = torch.stack([torch.rand(n, generator=g) - 0.5, torch.rand(n, generator=g) - 0.5,
                         torch.rand(n, generator=g) * 0.6 + 0.2], dim=1)
    return image, cliff


# ------------------------------------------------------------------------------------------------
# names and shapes
# ------------------------------------------------------------------------------------------------


def test_notebook_configs_are_registered_beside_the_query9_ones():
    assert {NOTEBOOK, "instanthmr_notebook_simcc_m2_3", "instanthmr_notebook_mhr_only_m2_3", TINY} <= \
        set(list_configs("notebook"))
    assert "instanthmr_repvit_m1_5" in list_configs("query9") and NOTEBOOK not in list_configs("query9")
    cfg = get_config(NOTEBOOK)
    assert (cfg.backbone, cfg.d_model, cfg.num_heads, cfg.num_layers, int(cfg.d_model * cfg.mlp_ratio),
            cfg.cond_hidden, cfg.cliff_form) == ("repvit_m2_3", 512, 8, 4, 2048, 128, "pixel")
    with pytest.raises(ValueError, match="wholebody"):
        build_model(TINY, wholebody_head=True)
    with pytest.raises(ValueError, match="simcc"):
        build_model(TINY, joints_3d_head=False)


def test_state_dict_names_and_shapes_equal_the_notebook():
    spec = notebook_spec()
    bb = DATA["backbone"]
    backbone = {k: s for k, (s, _) in spec.items() if k.startswith(bb["prefix"])}
    assert len(backbone) == bb["num_keys"]
    assert sum(int(np.prod(s)) for k, (s, d) in spec.items() if k in backbone and d.is_floating_point
               and "running_" not in k) == bb["num_params"]
    with torch.device("meta"):
        net = build_model(NOTEBOOK)
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert got == {k: s for k, (s, _) in spec.items()}
    assert count_parameters(net) == DATA["num_params"]  # 40,080,521, which fits the released file sizes
    assert net.num_queries == 141 and net.output_names == ("mhr_params", "shape_params", "cam_trans",
                                                           "joints_2d", "joints_3d")


@pytest.mark.parametrize("variants, config, queries", [
    ((), NOTEBOOK, 141),
    (("simcc",), "instanthmr_notebook_simcc_m2_3", 141),
    (("mhr_only",), "instanthmr_notebook_mhr_only_m2_3", 71),
    (("mhr_only", "bound_scales"), "instanthmr_notebook_mhr_only_m2_3", 71),
])
def test_each_variant_is_recognised_from_its_keys(variants, config, queries):
    state = random_state(notebook_spec(variants), device="meta")
    if "kp2d_bin_centers" in state:
        state["kp2d_bin_centers"] = torch.linspace(-1.5, 1.5, 96)
    cfg = notebook_config_for(state)
    assert cfg.name == config and cfg.bound_scales == ("bound_scales" in variants)
    with torch.device("meta"):
        net = build_model(cfg)
    assert net.num_queries == queries
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {k: tuple(v.shape) for k, v in state.items()}


# ------------------------------------------------------------------------------------------------
# the anchor's checkpoint format
# ------------------------------------------------------------------------------------------------


def test_anchor_checkpoint_loads_strictly_full_size(tmp_path):
    """A random state dict with the notebook's names and shapes, in the notebook's file layout, loads strictly
    into instanthmr_notebook_m2_3 and runs (one forward of the full 40 M network)."""
    state = random_state(notebook_spec())
    path = save_anchor_checkpoint(tmp_path / "instanthmr.pth", state)
    model = load_checkpoint(path)
    assert model.config.name == NOTEBOOK and not model.training
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert model.step == 0 and model.checkpoint_extra["epoch"] == 12
    assert model.checkpoint_extra["val_pa_mpjpe"] == pytest.approx(41.25)
    assert "optimizer_state_dict" not in model.checkpoint_extra
    with torch.no_grad():
        out = model(*_inputs(1))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "mhr_params": (1, 204), "shape_params": (1, 45), "cam_trans": (1, 3), "joints_2d": (1, 70, 2),
        "joints_3d": (1, 70, 3)}
    assert all(torch.isfinite(v).all() for v in out.values())


def test_anchor_checkpoint_prefixes_and_bare_state_dicts(tmp_path):
    net = build_model(TINY)
    state = randomize_(net, seed=4).state_dict()
    compiled = save_anchor_checkpoint(tmp_path / "compiled.pth", state, prefix="_orig_mod.")  # torch.compile
    bare = tmp_path / "bare.pth"
    torch.save(state, bare)
    for path in (compiled, bare):
        model = load_checkpoint(path)
        assert model.config.name == TINY
        assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    with pytest.raises(CheckpointError, match="notebook-format checkpoint.*load_checkpoint"):
        read_checkpoint(compiled)  # resuming needs our format; the message says what to use instead


def test_anchor_checkpoint_mismatch_is_one_line_naming_the_keys(tmp_path):
    state = build_model(TINY).state_dict()
    del state["head_3d.2.bias"]
    state["head_extra.weight"] = torch.zeros(3, 3)
    path = save_anchor_checkpoint(tmp_path / "bad.pth", state)
    for kwargs, says in (({}, "closest 'instanthmr_notebook_tiny_test'"),
                         ({"config": TINY}, "do not match config 'instanthmr_notebook_tiny_test'")):
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(path, **kwargs)
        msg = str(e.value)
        assert "\n" not in msg and says in msg and "bad.pth" in msg
        assert "1 missing key (head_3d.2.bias)" in msg and "1 unexpected key (head_extra.weight)" in msg
    state = build_model(TINY).state_dict()
    state["query_embed"] = torch.zeros(1, 140, 64)
    with pytest.raises(CheckpointError, match=r"shape mismatch \(query_embed: file \(1, 140, 64\), model "
                                              r"\(1, 141, 64\)\)"):
        load_checkpoint(save_anchor_checkpoint(tmp_path / "shape.pth", state), config=TINY)
    with pytest.raises(CheckpointError, match="unknown model config"):
        load_checkpoint(path, config="instanthmr_nope")


# ------------------------------------------------------------------------------------------------
# forward = the notebook's forward
# ------------------------------------------------------------------------------------------------


class NotebookTranscript(torch.nn.Module):
    """The notebook's Cell-7 module, transcribed with torch's own layers (nn.TransformerDecoder): the reference
    our NotebookHMRNet must equal."""

    def __init__(self, cfg):
        super().__init__()
        import timm

        from instanthmr.training.model.decoder import sincos_pos_embed_2d

        d, grid = cfg.d_model, cfg.input_size // 32
        self.backbone = timm.create_model(cfg.backbone, pretrained=False, num_classes=0, **cfg.backbone_kwargs)
        self.feat_proj = torch.nn.Linear(self.backbone.num_features, d)
        self.register_buffer("mem_pos_embed", sincos_pos_embed_2d(grid, grid, d).unsqueeze(0))
        self.query_embed = torch.nn.Parameter(torch.randn(1, 141, d) * 0.02)
        self.cond_proj = torch.nn.Sequential(torch.nn.Linear(3, cfg.cond_hidden), torch.nn.GELU(),
                                             torch.nn.Linear(cfg.cond_hidden, d))
        layer = torch.nn.TransformerDecoderLayer(d, cfg.num_heads, int(d * cfg.mlp_ratio), cfg.dropout, "gelu",
                                                 batch_first=True, norm_first=True)
        self.transformer = torch.nn.TransformerDecoder(layer, num_layers=cfg.num_layers)
        self.head_global = torch.nn.Linear(d, 252)
        self.head_2d_feat = torch.nn.Sequential(torch.nn.Linear(d, cfg.head_hidden), torch.nn.GELU())
        self.head_2d_xy = torch.nn.Sequential(torch.nn.Linear(cfg.head_hidden, 2))
        self.head_3d = torch.nn.Sequential(torch.nn.Linear(d, cfg.head_hidden), torch.nn.GELU(),
                                           torch.nn.Linear(cfg.head_hidden, 3))

    def forward(self, images, cliff_cond):
        f = self.backbone.forward_features(images)
        f = f.flatten(2).transpose(1, 2)
        memory = self.feat_proj(f) + self.mem_pos_embed
        queries = self.query_embed.expand(images.shape[0], -1, -1) + self.cond_proj(cliff_cond).unsqueeze(1)
        shared = self.transformer(tgt=queries, memory=memory)
        g = self.head_global(shared[:, 0])
        return {"mhr_params": g[:, :204], "shape_params": g[:, 204:249], "cam_trans": g[:, 249:252],
                "joints_2d": self.head_2d_xy(self.head_2d_feat(shared[:, 1:71])),
                "joints_3d": self.head_3d(shared[:, 71:141])}


def test_forward_equals_the_notebooks():
    ours = randomize_(build_model(TINY), seed=5).eval()
    ref = NotebookTranscript(ours.config).eval()
    ref.load_state_dict(ours.state_dict(), strict=True)  # the same names in both directions
    image, cliff = _inputs(3)
    with torch.no_grad():
        a, b = ours(image, cliff), ref(image, cliff)
        ours.train(), ref.train()  # training mode too (dropout off so the two are comparable)
        for m in list(ours.modules()) + list(ref.modules()):
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        ours.transformer.layers[0].self_attn.dropout = ours.transformer.layers[0].multihead_attn.dropout = 0.0
        ref.transformer.layers[0].self_attn.dropout = ref.transformer.layers[0].multihead_attn.dropout = 0.0
        c = ours(image, cliff)
        d = ref(image, cliff)
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=2e-5, rtol=1e-4, msg=k)
        torch.testing.assert_close(c[k], d[k], atol=2e-5, rtol=1e-4, msg=k)
    assert (a["joints_3d"][0] - a["joints_3d"][1]).abs().max() > 1e-4  # the inputs matter


def test_simcc_and_bounded_variants():
    net = randomize_(build_model(TINY, head_2d="simcc", joints_3d_head=False, bound_scales=True), seed=2).eval()
    with torch.no_grad():
        net.scale_lo.copy_(torch.linspace(-2.0, 0.0, 77))
        net.scale_hi.copy_(net.scale_lo + 0.5)
        out = net(*_inputs(2))
    assert net.num_queries == 71 and net.output_names == ("mhr_params", "shape_params", "cam_trans", "joints_2d")
    assert "joints_3d" not in out and out["joints_2d"].shape == (2, 70, 2)
    assert (out["joints_2d"].abs() <= 1.5).all()  # expected bin centre: inside the bins' span
    bounded = torch.cat([out["mhr_params"][:, :3], out["mhr_params"][:, 130:]], dim=1)
    assert ((bounded >= net.scale_lo) & (bounded <= net.scale_hi)).all()
    assert (out["mhr_params"][:, 3:130].abs() > 0).any()


# ------------------------------------------------------------------------------------------------
# export, runtime, fine-tuning, model_info
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    from instanthmr.training.export import export_onnx

    net = randomize_(build_model(TINY), seed=1).eval()
    net.step = 0
    path = tmp_path_factory.mktemp("nb") / "notebook_tiny.onnx"
    report = export_onnx(net, path)
    assert report["ok"], report
    return path


def test_export_has_our_contract_and_the_anchors_metadata(tiny_onnx, tmp_path):
    import onnx

    from instanthmr.runtime.hmr import InstantHMR
    from instanthmr.training.export import export_onnx

    proto = onnx.load(str(tiny_onnx))
    assert [i.name for i in proto.graph.input] == ["image", "cliff_cond"]
    assert [o.name for o in proto.graph.output] == ["mhr_params", "shape_params", "cam_trans", "joints_2d",
                                                    "joints_3d"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert {k: meta[k] for k in ("arch", "image_size", "bound_scales", "cliff_focal", "cliff_form", "cam_head",
                                 "num_queries")} == {
        "arch": "legacy", "image_size": "224", "bound_scales": "false", "cliff_focal": "false",
        "cliff_form": "pixel", "cam_head": "direct", "num_queries": "141"}
    assert "pixel_aspect" not in meta  # no pixel-form camera correction: cam_trans is used as predicted

    hmr = InstantHMR(tiny_onnx, device="cpu")
    img = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    (pred,) = hmr.predict(img, np.array([[200.0, 40.0, 320.0, 340.0]]))
    assert np.isfinite(pred.joints_3d_cam).all() and np.isfinite(pred.joints_2d).all()

    mhr_only = randomize_(build_model(TINY, head_2d="simcc", joints_3d_head=False, bound_scales=True)).eval()
    mhr_only.step = 0
    report = export_onnx(mhr_only, tmp_path / "mhr_only.onnx")
    proto = onnx.load(str(tmp_path / "mhr_only.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert report["ok"] and [o.name for o in proto.graph.output] == ["mhr_params", "shape_params", "cam_trans",
                                                                     "joints_2d"]
    assert (meta["arch"], meta["bound_scales"], meta["num_queries"]) == ("mhr_only", "true", "71")


def test_optimised_export_gives_the_plain_exports_outputs(tmp_path):
    """The default export (first self-attention projection of the constant queries folded, ONNX Runtime's fused
    attention ops) against ``optimize=False`` (standard ops only), same random weights: same outputs at batch 1
    and 4 to float rounding, on inputs far from the parity check's (large CLIFF vectors, images x 3)."""
    import onnx
    import onnxruntime as ort

    from instanthmr.training.export import export_onnx

    net = randomize_(build_model(TINY, num_layers=2), seed=1).eval()  # 2 layers: a folded and a plain one
    net.step = 0
    fast, plain = tmp_path / "fast.onnx", tmp_path / "plain.onnx"
    assert export_onnx(net, fast)["ok"] and export_onnx(net, plain, optimize=False)["ok"]
    ops = {p: {n.op_type for n in onnx.load(str(p)).graph.node} for p in (fast, plain)}
    assert {"Attention", "MultiHeadAttention"} <= ops[fast] and not {"Attention", "MultiHeadAttention"} & ops[plain]
    metas = [{m.key: m.value for m in onnx.load(str(p)).metadata_props}["export_optimized"] for p in (fast, plain)]
    assert metas == ["query-fold+ort-attention", "none"]
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (fast, plain)]
    rng = np.random.default_rng(3)
    for batch in (1, 4):
        feeds = {"image": 3 * rng.standard_normal((batch, 3, 224, 224)).astype(np.float32),
                 "cliff_cond": rng.uniform(-3, 3, (batch, 3)).astype(np.float32)}
        fast, ref = (s.run(None, feeds) for s in sessions)
        for name, a, b in zip(net.output_names, fast, ref):
            assert a.shape == b.shape and np.abs(a - b).max() <= 1e-5 * max(1.0, np.abs(b).max()), name


def test_fine_tunes_from_an_anchor_checkpoint(tmp_path):
    from instanthmr.training.config import load_config
    from instanthmr.training.data.synthetic import write_synthetic_shards
    from instanthmr.training.trainer import Trainer

    shards = write_synthetic_shards(tmp_path / "syn", 16, seed=0, shard_size=16)
    start = randomize_(build_model(TINY), seed=3).state_dict()
    ckpt = save_anchor_checkpoint(tmp_path / "instanthmr.pth", start)
    cfg = load_config("configs/train_smoke.yaml", [f"data.train=[{shards}]", f"run.out_dir={tmp_path / 'run'}",
                                                   "run.progress=false", f"model.name={TINY}",
                                                   f"model.init_checkpoint={ckpt}", "optim.steps=2",
                                                   "optim.warmup_steps=0"])
    trainer = Trainer(cfg)
    assert type(trainer.model).__name__ == "NotebookHMRNet"
    assert all(torch.equal(trainer.model.state_dict()[k].cpu(), v) for k, v in start.items())  # the file's weights
    hist = trainer.fit()
    assert len(hist) == 2 and all(np.isfinite(h["loss"]) for h in hist)
    tuned = load_checkpoint(tmp_path / "run" / "final.pt")  # our format now, config included
    assert tuned.config.arch == "notebook" and tuned.config.name == TINY
    moved = max(float((tuned.state_dict()[k].float() - v.float()).abs().max()) for k, v in start.items())
    assert moved > 0


def test_model_info_says_what_an_onnx_file_holds(tiny_onnx, tmp_path, capsys):
    import onnx

    from instanthmr.cli import model_info

    info = model_info.inspect_onnx(tiny_onnx)
    net = build_model(TINY)
    assert (info["queries"], info["d_model"], info["input_size"], info["dtype"]) == (141, 64, 224, "fp32")
    assert abs(info["params"] - count_parameters(net.eval().fuse())) / info["params"] < 0.02
    assert model_info.match_architecture(info)["config"] == TINY

    # the anchor's own files carry no metadata and other initializer names (and are plain exports: no derived
    # constants of an optimised one, which the renaming would hide): matched from the graph alone
    from instanthmr.training.export import export_onnx

    export_onnx(randomize_(build_model(TINY), seed=1).eval(), tmp_path / "plain.onnx", optimize=False, parity=False)
    proto = onnx.load(str(tmp_path / "plain.onnx"))
    del proto.metadata_props[:]
    renames = {t.name: f"w{i}" for i, t in enumerate(proto.graph.initializer)}
    for t in proto.graph.initializer:
        t.name = renames[t.name]
    for n in proto.graph.node:
        n.input[:] = [renames.get(i, i) for i in n.input]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    info = model_info.inspect_onnx(bare)
    assert info["queries"] == 141 and info["metadata"] == {}
    assert model_info.match_architecture(info)["config"] == TINY

    assert model_info.main([str(bare)]) == 0
    line = capsys.readouterr().out
    assert "141 queries" in line and "fp32 weights" in line and f"architecture: {TINY}" in line
    assert "metadata: none" in line
    assert model_info.main([str(tmp_path / "missing.onnx")]) == 2


def test_model_info_names_fp16_and_int8_weights(tiny_onnx, tmp_path):
    from instanthmr.cli import model_info
    from instanthmr.training.export import export_onnx
    from instanthmr.training.quantize import quantize

    net = randomize_(build_model(TINY), seed=1).eval()
    net.step = 0
    export_onnx(net, tmp_path / "fp16.onnx", fp16=True, parity=False)
    quantize(tiny_onnx, tmp_path / "int8.onnx")
    for name, dtype in (("fp16.onnx", "fp16"), ("int8.onnx", "int8 + fp32")):
        info = model_info.inspect_onnx(tmp_path / name)
        assert info["dtype"] == dtype and info["queries"] == 141
        assert model_info.match_architecture(info)["config"] == TINY


def test_int8_modes_quantise_conv_only_or_conv_and_linear(tiny_onnx, tmp_path):
    """``static``: only the backbone's Conv layers read int8 tensors (attention, decoder and heads stay float, as
    the anchor advises); ``static-linear`` adds dynamic int8 MatMuls, while the fused attention ops still take
    float inputs. Both run in InstantHMR and follow the fp32 file (random weights: drift only, not accuracy)."""
    import onnx

    from instanthmr.runtime.hmr import InstantHMR
    from instanthmr.training.quantize import quantize

    conv = quantize(tiny_onnx, tmp_path / "conv.int8.onnx", calib_count=4)
    linear = quantize(tiny_onnx, tmp_path / "linear.int8.onnx", mode="static-linear", calib_count=4)
    for path, mode in ((conv, "static"), (linear, "static-linear")):
        model = onnx.load(str(path))
        dequantised = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
        readers = {n.op_type for n in model.graph.node if set(n.input) & dequantised}
        assert "Conv" in readers and not readers & {"MatMul", "Gemm", "Attention", "MultiHeadAttention"}, readers
        ops = {n.op_type for n in model.graph.node}
        assert ("MatMulInteger" in ops) == (mode == "static-linear") and "MultiHeadAttention" in ops
        assert {p.key: p.value for p in model.metadata_props}["precision"] == f"int8-{mode}"
    import onnx.helper as oh

    with pytest.raises(ValueError, match="static-linear is for the InstantHMR network"):  # a detector-shaped graph
        g = oh.make_graph([oh.make_node("Relu", ["input"], ["y"])], "d",
                          [oh.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
                          [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])])
        onnx.save(oh.make_model(g), str(tmp_path / "det.onnx"))
        quantize(tmp_path / "det.onnx", tmp_path / "det.int8.onnx", mode="static-linear")
    img = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    box = np.array([[200.0, 40.0, 320.0, 340.0]])
    (ref,) = InstantHMR(tiny_onnx, device="cpu").predict(img, box)
    for path in (conv, linear):
        (got,) = InstantHMR(path, device="cpu").predict(img, box)
        spread = max(float(np.abs(ref.joints_3d_local).max()), 1e-3)
        assert np.abs(got.joints_3d_local - ref.joints_3d_local).max() < 0.5 * spread, path.name


def test_doctor_describes_present_networks(tiny_onnx, tmp_path, monkeypatch):
    import shutil

    from instanthmr.cli import doctor

    shutil.copy(tiny_onnx, tmp_path / "instanthmr.onnx")
    monkeypatch.setattr(doctor, "MODELS_DIR", tmp_path)
    monkeypatch.setattr(doctor, "STARTER_MODEL", tmp_path / "instanthmr-starter.onnx")
    lines, _ = doctor.report()
    holds = [ln for ln in lines if "holds:" in ln]
    assert len(holds) == 1 and "141 queries" in holds[0] and f"architecture: {TINY}" in holds[0]


def test_bench_tools_time_both_architectures_in_one_run(tmp_path, shared_data, capsys):
    """tools/bench_model.py --config A B and tools/bench_e2e.py --config A,B: every row names its
    architecture, and both are measured in the same run."""
    from instanthmr.cli import bench_e2e, bench_model
    from instanthmr.training.export_detector import export_detector

    archs = ["instanthmr_tiny_test", TINY]
    rows = bench_model.run_benchmark(archs, [1], runs=2, warmup=1, threads=1, torch_eager=False)
    assert {(r["architecture"], r["variant"]) for r in rows} == {
        (a, v) for a in archs for v in ("network ORT fp32", "backbone ORT fp32")}
    assert all(r["ms"] > 0 for r in rows)
    assert bench_model.main(["--config", "instanthmr_nope"]) == 2

    clip = shared_data / "videos" / "mmpose_demo_5frames.mp4"
    if not clip.is_file():
        pytest.skip(f"{clip} not found")
    torch.manual_seed(0)
    det = export_detector("nano", tmp_path / "det128.onnx", pretrained=False, resolution=128)
    out = tmp_path / "e2e.json"
    rc = bench_e2e.main(["--video", str(clip), "--config", ",".join(archs), "--detector", str(det),
                         "--fast-detector", str(det), "--detector-resolution", "128", "--variants", "straightforward",
                         "--frames", "2", "--warmup", "1", "--rounds", "1", "--cache-dir", str(tmp_path / "cache"),
                         "--json", str(out)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert [(r["architecture"], r["variant"]) for r in rep["rows"]] == [(a, "straightforward") for a in archs]
    assert set(rep["architectures"]) == set(archs) and all(v["random_hmr"] for v in rep["architectures"].values())
    printed = capsys.readouterr().out
    assert all(f"| {a} | straightforward |" in printed for a in archs)
    assert bench_e2e.main(["--config", "instanthmr_nope", "--cache-dir", str(tmp_path)]) != 0


def test_model_info_matches_a_file_exported_the_notebooks_way(tmp_path):
    """The notebook's Cell-15 recipe: its own module (unfused RepViT, torch's nn.TransformerDecoder) exported to
    fp32, then ONNX Runtime's float16 converter with float32 inputs/outputs, no metadata: recognised from the
    graph alone as fp16 weights, 141 queries, the notebook architecture."""
    import warnings

    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    from instanthmr.cli import model_info

    ref = NotebookTranscript(get_config(TINY)).eval()

    class Deploy(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, image, cliff_cond):
            out = self.model(image, cliff_cond)
            return tuple(out[k] for k in ("mhr_params", "shape_params", "cam_trans", "joints_2d", "joints_3d"))

    names = ["mhr_params", "shape_params", "cam_trans", "joints_2d", "joints_3d"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Deploy(ref), (torch.randn(1, 3, 224, 224), torch.randn(1, 3)), str(tmp_path / "fp32.onnx"),
                          dynamo=False, input_names=["image", "cliff_cond"], output_names=names, opset_version=17,
                          dynamic_axes={k: {0: "batch"} for k in ["image", "cliff_cond", *names]})
    fp16 = convert_float_to_float16(onnx.load(str(tmp_path / "fp32.onnx")), keep_io_types=True)
    onnx.save(fp16, str(tmp_path / "fp16.onnx"))
    info = model_info.inspect_onnx(tmp_path / "fp16.onnx")
    assert (info["dtype"], info["queries"], info["d_model"], info["input_size"], info["metadata"]) == \
        ("fp16", 141, 64, 224, {})
    match = model_info.match_architecture(info)
    assert match["config"] == TINY and match["param_diff"] < 0.01
