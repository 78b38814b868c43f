#!/usr/bin/env python3
r"""Golden fixtures for per-run image sizes (issue 12: one session, runs at many sizes).

Each case is one checkpoint saved as its framework publishes it (timm save_for_hf at its own
size, or transformers save_pretrained), and a set of runs at other input sizes, each computed by
the framework's own code in float64:
  timm            the model reloaded with `dynamic_img_size=True` (timm's per-forward
                  resample_abs_pos_embed of the stored table: bicubic, antialias, from the
                  model's grid; the patch conv floors sizes that are not a multiple of the patch)
  transformers    Dinov2Model / Dinov2WithRegistersModel (interpolate_pos_encoding on every
                  forward), SiglipVisionModel / ViTForImageClassification with
                  interpolate_pos_encoding=True
Layout, under tests/data/golden_dynamic/<case>/:
  model/                      the checkpoint (config.json + model.safetensors)
  runs/<H>x<W>/input.npy      [B, 3, H, W] f32 normalised input
  runs/<H>x<W>/logits.npy     [B, C] (absent without a classifier)
  runs/<H>x<W>/embeddings.npy [B, E]
  runs/<H>x<W>/features.npy   [B, T, D] the final tokens (forward_features / last_hidden_state)
  case.json                   the model's own size, the runs (in the order a test runs them), versions

Usage (the venv of tools/make_golden.py --setup):
  .venv-golden/bin/python tools/make_golden_dynamic.py [--out tests/data/golden_dynamic] [--case NAME ...]
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_golden as mg  # noqa: E402  (randomize, timm_build / save, make_input, versions, ...)
import make_golden_families as fam  # noqa: E402  (TINY: D 64, depth 2, 4 heads, patch 8)
import make_golden_hf as mhf  # noqa: E402  (TINY in HF spelling)

REPO = mg.REPO

# (H, W, batch) per run; the model's own size first is not required: the runs exercise a session
# that changes size run to run and comes back to a size it has seen (its cached graph).
TIMM_RUNS = [(48, 48, 2), (32, 32, 2), (24, 40, 3), (16, 64, 1), (48, 48, 1), (64, 56, 2)]
SHORT_RUNS = [(40, 48, 2), (32, 32, 1), (56, 24, 2)]


def write_runs(d, runs, forward, seed, meta):
    """runs: [(H, W, batch)]; forward(x) -> (logits | None, embeddings, features) in float64."""
    written = []
    for k, (h, w, b) in enumerate(runs):
        x = mg.make_input((b, 3, h, w), seed + 10 + k)
        logits, emb, feats = forward(x)
        r = d / "runs" / f"{h}x{w}"
        if r.exists():  # the same size twice: a second run with other images
            r = d / "runs" / f"{h}x{w}_{k}"
        r.mkdir(parents=True)
        np = mg.np
        np.save(r / "input.npy", x.astype(np.float32))
        if logits is not None:
            np.save(r / "logits.npy", mg._np32(logits))
            mg.check_margin(mg._np32(logits), f"{d.name}/{r.name}")
        np.save(r / "embeddings.npy", mg._np32(emb))
        np.save(r / "features.npy", mg._np32(feats))
        written.append({"dir": r.name, "height": h, "width": w, "batch": b, "tokens": int(feats.shape[1])})
        print(f"  {d.name}/{r.name}: input {tuple(x.shape)}, tokens {feats.shape[1]}")
    meta.update({"runs": written, "versions": mg.versions(), "generator": "tools/make_golden_dynamic.py",
                 "reference_dtype": "float64"})
    (d / "case.json").write_text(json.dumps(meta, indent=2) + "\n")


def case_timm(d, arch, seed, runs, img=32, **kw):
    """timm `arch` at TINY sizes, built and saved at img (a checkpoint as published), reloaded with
    timm's local-dir loader and dynamic_img_size=True, run in float64 at every size of `runs`."""
    torch = mg.torch
    model = mg.timm_build(arch, seed, img_size=img, **{**fam.TINY, **kw})
    mg.timm_save(model, d)
    ref = mg.timm.create_model(f"local-dir:{d / 'model'}", pretrained=True, dynamic_img_size=True)
    m = ref.double().eval()

    def forward(x):
        with torch.no_grad():
            feats = m.forward_features(torch.from_numpy(x).double())
            emb = m.forward_head(feats, pre_logits=True)
            logits = m.head(emb) if m.num_classes > 0 else None
        return logits, emb, feats

    cfg = json.loads((d / "model" / "config.json").read_text())
    write_runs(d, runs, forward, seed, {"framework": f"timm {mg.timm.__version__}", "model_size": [img, img],
                                        "architecture": cfg["architecture"], "model_args": cfg.get("model_args", {})})


def case_hf(d, cls, config_cls, cfg_kw, seed, runs, head, **fwd):
    """transformers `cls(config_cls(**cfg_kw))`, saved / reloaded as make_golden_families does, run in
    float64 at every size of `runs` (head(model, x, **fwd) -> (logits | None, embeddings, last_hidden_state))."""
    torch = mg.torch
    m = fam.hf_build_reload(d, cls, config_cls, seed, cfg_kw).double().eval()

    def forward(x):
        with torch.no_grad():
            return head(m, torch.from_numpy(x).double(), **fwd)

    cfg = json.loads((d / "model" / "config.json").read_text())
    write_runs(d, runs, forward, seed, {"framework": f"transformers {mg.transformers.__version__}",
                                        "model_size": [cfg_kw["image_size"], cfg_kw["image_size"]],
                                        "hf_class": cls.__name__, "model_type": cfg["model_type"]})


def all_cases():
    from transformers import (Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel,
                              SiglipVisionConfig, SiglipVisionModel, ViTConfig, ViTForImageClassification)
    return {
        # cls token, pos with a prefix row, token pooling, classifier
        "dyn_vit": lambda d: case_timm(d, "vit_base_patch16_224", 401, TIMM_RUNS),
        # no_embed_class table, 4 registers, LayerScale, no cls, avg pooling + fc_norm
        "dyn_reg4_gap": lambda d: case_timm(d, "vit_base_patch16_reg4_gap_256", 402, SHORT_RUNS),
        # the attention-pool head over a run-dependent number of tokens
        "dyn_siglip_map": lambda d: case_timm(d, "vit_base_patch16_siglip_224", 403, SHORT_RUNS),
        # HF DINOv2: interpolate_pos_encoding from the stored table (bicubic, no antialias)
        "dyn_hf_dinov2": lambda d: case_hf(d, Dinov2Model, Dinov2Config, dict(mlp_ratio=2, **mhf.TINY), 404,
                                           SHORT_RUNS, mhf.dinov2_pooled),
        # HF DINOv2 with registers: its copy of interpolate_pos_encoding antialiases (timm's rule)
        "dyn_hf_dinov2_reg": lambda d: case_hf(d, Dinov2WithRegistersModel, Dinov2WithRegistersConfig,
                                               dict(mlp_ratio=2, num_register_tokens=4, **mhf.TINY), 405,
                                               SHORT_RUNS, mhf.dinov2_pooled),
        # HF SigLIP: interpolate_pos_encoding=True on a table without prefix rows, the map head
        "dyn_hf_siglip": lambda d: case_hf(d, SiglipVisionModel, SiglipVisionConfig,
                                           dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                num_attention_heads=4, image_size=32, patch_size=8),
                                           406, SHORT_RUNS, siglip_pooled, interpolate_pos_encoding=True),
        # HF ViT: interpolate_pos_encoding=True (bicubic, no antialias, the square stored grid to
        # each run's, also when it shrinks), a classifier on the cls row
        "dyn_hf_vit": lambda d: case_hf(d, ViTForImageClassification, ViTConfig,
                                        dict(intermediate_size=128, **mhf.TINY, **mhf.labelled(5)), 407, SHORT_RUNS,
                                        mhf.cls_classifier, interpolate_pos_encoding=True),
    }


def siglip_pooled(m, x, **fwd):
    out = m(pixel_values=x, **fwd)
    return None, out.pooler_output, out.last_hidden_state


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "golden_dynamic")
    ap.add_argument("--case", action="append", help="only these cases (default: all)")
    a = ap.parse_args()
    mg._imports()
    cases = all_cases()
    for name in a.case or sorted(cases):
        if name not in cases:
            sys.exit(f"unknown case {name!r}; known: {', '.join(sorted(cases))}")
        d = a.out / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        cases[name](d)


if __name__ == "__main__":
    main()
