#!/usr/bin/env python3
r"""Golden fixtures for vit-infer, produced by the real frameworks (timm, transformers).

Each case builds a tiny, randomly re-initialised ViT with the framework's own code, saves it
exactly as that framework saves checkpoints, reloads it through the framework's own loader and
records, under tests/data/golden/<case>/:
  <model files as saved>   model.safetensors + config.json (timm save_for_hf / HF
                           save_pretrained), or model.npz (JAX layout, np.savez)
  input.npy                [B, 3, H, W] f32, normalised input
  logits.npy               [B, C] f32 (absent when the model has no classifier)
  embeddings.npy           [B, D] f32, pooled features fed to the head
  activations.npz          per-block outputs [B, T, D] f32 ("embed", "block0".., "final")
  case.json                {"model": ..., "overrides": {...}, package versions, ...}
Reference forward passes run in float64 with the framework's code (fp32 forward agrees to
~1e-6; float64 keeps fixture noise out of the engine's error budget).

Usage:
  python3 tools/make_golden.py --setup [--venv .venv-golden]   # venv + pip install deps
  .venv-golden/bin/python tools/make_golden.py [--out tests/data/golden] [--case NAME ...]
Shell equivalent of --setup:
  python3 -m venv .venv-golden && .venv-golden/bin/pip install torch timm transformers \
      safetensors numpy pillow
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ["torch", "timm", "transformers", "safetensors", "numpy", "pillow"]


def setup_venv(venv: Path) -> None:
    """Creates the venv and installs the frameworks from PyPI (CPU wheels are enough)."""
    if not (venv / "bin" / "python").exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    subprocess.check_call(pip + ["install", "--upgrade", "pip"])
    subprocess.check_call(pip + ["install"] + PACKAGES)
    print(f"venv ready: {venv}/bin/python {Path(__file__).relative_to(REPO)}")


# ---------------------------------------------------------------------------------------------
# Everything below needs the frameworks; imported lazily so --setup works without them.


def _imports():
    global np, torch, nn, timm, transformers, safetensors, PIL
    import numpy as np
    import torch
    import torch.nn as nn
    import timm
    import transformers
    import safetensors
    import PIL
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def versions() -> dict:
    return {
        "torch": torch.__version__,
        "timm": timm.__version__,
        "transformers": transformers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }


# Gains for the re-initialisation, relative to 1/sqrt(fan_in). q/k get more so attention is
# far from uniform (a wrong scale or head split then changes the output a lot); the head gets
# more so logits are O(1-10).
def _linear_gain(name: str) -> float:
    if name.endswith(("attn.qkv", "attention.query", "attention.key", "q_proj", "k_proj")):
        return 1.6
    if name.endswith(("head", "classifier")):
        return 2.5
    return 1.0


def randomize(model, seed: int) -> None:
    """Re-randomises every parameter so that a bug in any component shows in the logits:
    Linear/Conv weights ~ N(0, gain/sqrt(fan_in)), biases ~ N(0, 0.1..0.2), LayerNorm weights
    1 + N(0, 0.15), LayerNorm biases N(0, 0.1), LayerScale gammas 0.2 + N(0, 0.5) (signed, far
    from timm's 1e-5 init so that a skipped or misapplied scale shows), nn.MultiheadAttention
    in_proj as a Linear (q / k rows at the qkv gain), cls/pos tokens and the attention-pool
    latent / probe N(0, 0.5)."""
    g = torch.Generator().manual_seed(seed)

    def rn(shape, std, mean=0.0):
        return torch.randn(shape, generator=g, dtype=torch.float32) * std + mean

    done = set()
    with torch.no_grad():
        for mname, mod in model.named_modules():
            if isinstance(mod, nn.LayerNorm):
                mod.weight.copy_(rn(mod.weight.shape, 0.15, 1.0))
                mod.bias.copy_(rn(mod.bias.shape, 0.1))
            elif type(mod).__name__ == "LayerScale":  # timm init_values: gamma [D] (init 1e-5)
                mod.gamma.copy_(rn(mod.gamma.shape, 0.5, 0.2))
            elif isinstance(mod, nn.MultiheadAttention):  # HF SigLIP head: in_proj [3D, D] rows q | k | v
                D = mod.embed_dim
                gains = torch.tensor([1.6] * (2 * D) + [1.0] * D).unsqueeze(1)  # q, k as attn.qkv's
                mod.in_proj_weight.copy_(rn(mod.in_proj_weight.shape, 1.0 / D ** 0.5) * gains)
                mod.in_proj_bias.copy_(rn(mod.in_proj_bias.shape, 0.15))
            elif isinstance(mod, (nn.Linear, nn.Conv2d)):
                fan_in = mod.weight[0].numel()
                mod.weight.copy_(rn(mod.weight.shape, _linear_gain(mname) / fan_in ** 0.5))
                if mod.bias is not None:
                    mod.bias.copy_(rn(mod.bias.shape, 0.15))
            else:
                continue
            for pname, _ in mod.named_parameters(recurse=False):
                done.add(f"{mname}.{pname}" if mname else pname)
        for pname, p in model.named_parameters():
            if pname not in done:  # cls token, position embeddings
                p.copy_(rn(p.shape, 0.5))
                done.add(pname)
    missing = [n for n, _ in model.named_parameters() if n not in done]
    assert not missing, missing


def _np32(t):
    return t.detach().to(torch.float32).cpu().numpy().copy()


def timm_forward(model, x):
    """float64 forward of a timm VisionTransformer with per-block capture."""
    m = model.double().eval()
    acts = {}
    hooks = [m.blocks[0].register_forward_pre_hook(lambda mod, a: acts.__setitem__("embed", _np32(a[0])))]
    for i, blk in enumerate(m.blocks):
        hooks.append(blk.register_forward_hook(
            lambda mod, a, out, i=i: acts.__setitem__(f"block{i}", _np32(out))))
    with torch.no_grad():
        xd = torch.from_numpy(x).double()
        feats = m.forward_features(xd)
        acts["final"] = _np32(feats)
        emb = m.forward_head(feats, pre_logits=True)
        logits = m.head(emb) if m.num_classes > 0 else None
        ref = m(xd)
    for h in hooks:
        h.remove()
    if logits is not None:
        assert torch.equal(ref, logits)
    return (_np32(logits) if logits is not None else None), _np32(emb), acts


def hf_forward(model, x):
    """float64 forward of a transformers ViTModel / ViTForImageClassification."""
    m = model.double().eval()
    vit = m.vit if hasattr(m, "vit") else m
    # transformers 5 names the block list `layers` (4.x: `encoder.layer`); saved keys are the
    # legacy `vit.encoder.layer.{i}...` names either way.
    layers = vit.layers if hasattr(vit, "layers") else vit.encoder.layer
    acts = {}
    hooks = [layers[0].register_forward_pre_hook(
        lambda mod, a: acts.__setitem__("embed", _np32(a[0])))]
    for i, layer in enumerate(layers):
        hooks.append(layer.register_forward_hook(
            lambda mod, a, out, i=i: acts.__setitem__(
                f"block{i}", _np32(out[0] if isinstance(out, (tuple, list)) else out))))
    with torch.no_grad():
        xd = torch.from_numpy(x).double()
        if hasattr(m, "classifier"):
            out = m(pixel_values=xd)
            seq = m.vit(pixel_values=xd).last_hidden_state
            logits = _np32(out.logits)
            assert torch.allclose(m.classifier(seq[:, 0]), out.logits, rtol=0, atol=1e-12)
        else:
            seq = m(pixel_values=xd).last_hidden_state
            logits = None
        acts["final"] = _np32(seq)
        emb = _np32(seq[:, 0])
    for h in hooks:
        h.remove()
    return logits, emb, acts


def check_margin(logits, name):
    """Top-1 must be well separated so top-1 agreement is a fair assertion for the engine."""
    if logits is None:
        return
    s = np.sort(logits, axis=1)
    margin = float((s[:, -1] - s[:, -2]).min())
    scale = float(np.abs(logits).max())
    assert margin > 1e-3 * scale, f"{name}: top-1 margin {margin} too small (scale {scale})"
    assert 0.5 < scale < 30, f"{name}: logit scale {scale} outside O(1-10)"


def write_case(d: Path, model_rel: str, x, logits, emb, acts, overrides, framework, extra=None):
    np.save(d / "input.npy", x.astype(np.float32))
    if logits is not None:
        np.save(d / "logits.npy", logits.astype(np.float32))
    np.save(d / "embeddings.npy", emb.astype(np.float32))
    np.savez(d / "activations.npz", **acts)
    meta = {
        "model": model_rel,
        "overrides": overrides,
        "framework": framework,
        "reference_dtype": "float64",
        "batch": int(x.shape[0]),
        "input_shape": list(x.shape),
        "num_classes": int(logits.shape[1]) if logits is not None else 0,
        "embed_dim": int(emb.shape[1]),
        "versions": versions(),
        "generator": "tools/make_golden.py",
    }
    meta.update(extra or {})
    (d / "case.json").write_text(json.dumps(meta, indent=2) + "\n")
    check_margin(logits, d.name)
    mx = float(np.abs(logits).max()) if logits is not None else float("nan")
    print(f"  {d.name}: input {tuple(x.shape)}, max|logit| {mx:.3f}, "
          f"max|emb| {float(np.abs(emb).max()):.3f}, "
          f"{sum(f.stat().st_size for f in d.rglob('*') if f.is_file()) / 1024:.0f} KiB")


def make_input(shape, seed):
    g = np.random.default_rng(seed)
    return g.standard_normal(shape).astype(np.float32)


# --- timm cases ----------------------------------------------------------------------------


def timm_build(arch, seed, **kw):
    model = timm.create_model(arch, pretrained=False, **kw)
    randomize(model, seed)
    return model.eval()


def timm_save(model, d: Path, dtype=None):
    from timm.models._hub import save_for_hf
    if dtype is not None:
        model = model.to(dtype)
    save_for_hf(model, d / "model", safe_serialization=True)


def timm_reload(d: Path, **kw):
    """Rebuilds the model from the saved folder with timm's own local-dir loader: proves that
    config.json alone (architecture + model_args) describes the model, and applies timm's
    checkpoint_filter_fn (pos-embed resampling, dtype casts) exactly as timm does."""
    return timm.create_model(f"local-dir:{d / 'model'}", pretrained=True, **kw).float().eval()


def case_timm(d, arch, seed, batch, img, dtype=None, overrides=None, reload_kw=None, **kw):
    model = timm_build(arch, seed, img_size=img, **kw)
    x_img = (reload_kw or {}).get("img_size", img)
    x = make_input((batch, 3, x_img, x_img), seed + 1)
    # Reference before saving (fp32 original) for the sanity check below.
    orig = _np32(model.float()(torch.from_numpy(x))) if not reload_kw else None
    timm_save(model, d, dtype)
    ref = timm_reload(d, **(reload_kw or {}))
    logits, emb, acts = timm_forward(ref, x)
    if orig is not None and dtype is None:
        diff = np.abs(orig - logits).max()
        assert diff < 1e-4 * np.abs(logits).max(), f"{d.name}: reload changed logits by {diff}"
    cfg = json.loads((d / "model" / "config.json").read_text())
    extra = {"architecture": cfg["architecture"], "model_args": cfg.get("model_args", {})}
    if dtype is not None:
        extra["weights_dtype"] = str(dtype).replace("torch.", "")
    write_case(d, "model", x, logits, emb, acts, overrides or {}, f"timm {timm.__version__}", extra)


def case_jax_npz(d, seed):
    """A JAX-layout .npz made from a random timm model by the inverse of the mapping in
    vit-reference.md §2; the reference is a fresh timm model filled by timm's own npz loader."""
    from timm.models.vision_transformer import _load_weights
    kw = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, mlp_ratio=2.0,
              num_classes=7)
    src = timm_build("vit_tiny_patch16_224", seed, **kw)
    D, H = 64, 4
    hd = D // H
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in src.state_dict().items()}
    w = {
        "embedding/kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0),  # OIHW -> HWIO
        "embedding/bias": sd["patch_embed.proj.bias"],
        "cls": sd["cls_token"],
        "Transformer/posembed_input/pos_embedding": sd["pos_embed"],
        "Transformer/encoder_norm/scale": sd["norm.weight"],
        "Transformer/encoder_norm/bias": sd["norm.bias"],
        "head/kernel": sd["head.weight"].T,
        "head/bias": sd["head.bias"],
    }
    for i in range(kw["depth"]):
        p, b = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        a = b + "MultiHeadDotProductAttention_1/"
        w[b + "LayerNorm_0/scale"] = sd[p + "norm1.weight"]
        w[b + "LayerNorm_0/bias"] = sd[p + "norm1.bias"]
        qkv_w, qkv_b = sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"]
        for j, n in enumerate(("query", "key", "value")):
            w[a + f"{n}/kernel"] = qkv_w[j * D:(j + 1) * D].T.reshape(D, H, hd)  # (D, heads, hd)
            w[a + f"{n}/bias"] = qkv_b[j * D:(j + 1) * D].reshape(H, hd)
        w[a + "out/kernel"] = sd[p + "attn.proj.weight"].T.reshape(H, hd, D)      # (heads, hd, D)
        w[a + "out/bias"] = sd[p + "attn.proj.bias"]
        w[b + "LayerNorm_2/scale"] = sd[p + "norm2.weight"]
        w[b + "LayerNorm_2/bias"] = sd[p + "norm2.bias"]
        for r in range(2):
            w[b + f"MlpBlock_3/Dense_{r}/kernel"] = sd[p + f"mlp.fc{r + 1}.weight"].T
            w[b + f"MlpBlock_3/Dense_{r}/bias"] = sd[p + f"mlp.fc{r + 1}.bias"]
    w = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in w.items()}
    np.savez(d / "model.npz", **w)
    # Fresh model with different random weights, then filled by timm's loader from the file.
    ref = timm_build("vit_tiny_patch16_224", seed + 99, **kw)
    with torch.no_grad():
        _load_weights(ref, str(d / "model.npz"))
    for k, v in ref.state_dict().items():  # every parameter must have come from the npz
        assert torch.equal(v, src.state_dict()[k]), f"jax_npz: {k} not restored by _load_weights"
    x = make_input((3, 3, 32, 32), seed + 1)
    logits, emb, acts = timm_forward(ref, x)
    write_case(d, "model.npz", x, logits, emb, acts, {}, f"timm {timm.__version__}",
               {"layout": "jax", "heads": H, "note": "reference = timm _load_weights(npz)"})


# --- transformers cases ----------------------------------------------------------------------


def hf_config():
    from transformers import ViTConfig
    labels = ["tench", "goldfish", "white shark", "tiger shark", "hammerhead"]
    return ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, image_size=32, patch_size=8, num_channels=3,
                     num_labels=5, id2label={i: l for i, l in enumerate(labels)},
                     label2id={l: i for i, l in enumerate(labels)})


def case_hf(d, seed, bare):
    from transformers import ViTForImageClassification, ViTModel
    torch.manual_seed(seed)
    cls = ViTModel if bare else ViTForImageClassification
    model = cls(hf_config())
    randomize(model, seed)
    model.save_pretrained(str(d / "model"), safe_serialization=True)
    ref = cls.from_pretrained(str(d / "model")).float().eval()  # the framework's own reload
    # from_pretrained silently re-initialises keys it cannot match: insist on a full restore.
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref.state_dict()[k]), f"{d.name}: {k} not restored by from_pretrained"
    x = make_input((3, 3, 32, 32), seed + 1)
    logits, emb, acts = hf_forward(ref, x)
    cfg = json.loads((d / "model" / "config.json").read_text())
    write_case(d, "model", x, logits, emb, acts, {}, f"transformers {transformers.__version__}",
               {"layer_norm_eps": cfg["layer_norm_eps"],
                "embeddings_def": "last_hidden_state[:, 0] (after final layernorm)"})


# --- driver -------------------------------------------------------------------------------------

TINY = dict(patch_size=8, embed_dim=64, depth=2, num_heads=4, mlp_ratio=2.0, num_classes=10)


def all_cases():
    return {
        "timm_token": lambda d: case_timm(d, "vit_tiny_patch16_224", 101, 3, 32, **TINY),
        "timm_avg": lambda d: case_timm(d, "vit_tiny_patch16_224", 102, 3, 32,
                                        global_pool="avg", **TINY),
        # Architecture name says huge (hd 80 via 1280/16); model_args must win: D 160, 2 heads.
        "timm_hd80": lambda d: case_timm(d, "vit_huge_patch14_224", 103, 2, 32, patch_size=8,
                                         embed_dim=160, depth=1, num_heads=2, mlp_ratio=1.0,
                                         num_classes=6),
        "timm_hd24": lambda d: case_timm(d, "vit_small_patch16_224", 104, 2, 32, patch_size=8,
                                         embed_dim=96, depth=2, num_heads=4, mlp_ratio=1.5,
                                         num_classes=8),
        "timm_197": lambda d: case_timm(d, "vit_base_patch16_224", 105, 2, 224, patch_size=16,
                                        embed_dim=48, depth=1, num_heads=2, mlp_ratio=2.0,
                                        num_classes=10),
        "resample": lambda d: case_timm(d, "vit_tiny_patch16_224", 106, 2, 32,
                                        overrides={"image_size": 48},
                                        reload_kw={"img_size": 48}, **TINY),
        "resample_down": lambda d: case_timm(d, "vit_tiny_patch16_224", 107, 2, 32,
                                             overrides={"image_size": 24},
                                             reload_kw={"img_size": 24}, **TINY),
        "f16": lambda d: case_timm(d, "vit_tiny_patch16_224", 108, 2, 32,
                                   dtype=torch.float16, **TINY),
        "bf16": lambda d: case_timm(d, "vit_tiny_patch16_224", 109, 2, 32,
                                    dtype=torch.bfloat16, **TINY),
        # LayerScale (timm init_values, blocks.N.ls1 / ls2.gamma), odd batch, avg pool + fc_norm.
        "timm_layerscale": lambda d: case_timm(d, "vit_small_patch16_224", 113, 3, 32, init_values=1e-5,
                                               global_pool="avg", **TINY),
        "hf_cls": lambda d: case_hf(d, 110, bare=False),
        "hf_bare": lambda d: case_hf(d, 111, bare=True),
        "jax_npz": lambda d: case_jax_npz(d, 112),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setup", action="store_true", help="create the venv and install the frameworks")
    ap.add_argument("--venv", default=str(REPO / ".venv-golden"))
    ap.add_argument("--out", default=str(REPO / "tests" / "data" / "golden"))
    ap.add_argument("--case", action="append", help="only these cases (repeatable)")
    args = ap.parse_args()
    if args.setup:
        setup_venv(Path(args.venv))
        return
    _imports()
    generate(all_cases(), args.case, Path(args.out))


def generate(cases, names, out: Path) -> None:
    """Writes each named case (all when names is empty) into a fresh out/<name>/."""
    names = names or list(cases)
    for name in names:
        d = out / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        cases[name](d)
    print(f"wrote {len(names)} case(s) to {out}")


if __name__ == "__main__":
    main()
