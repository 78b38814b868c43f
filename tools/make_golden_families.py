#!/usr/bin/env python3
r"""Golden fixtures for the ViT families (issue 12): register tokens, no_embed_class, no class
token with avg / avgmax / max pooling, pre-norm CLIP towers with quick-GELU and eps 1e-5,
tanh-GELU, qkv_bias=False, no final norm, DeiT distilled. Each model is built with timm's own
code from its architecture name (the family's entrypoint) with tiny sizes, every parameter
re-randomised, saved with timm's save_for_hf, reloaded with timm's local-dir loader, and run in
float64 (tools/make_golden.py: the same helpers, the same case layout), under
tests/data/golden_families/<case>/; the hf_* cases are the same families in transformers' own
layouts (tools/make_golden_hf.py). The CPU golden test reads this set as well as
tests/data/golden.

Usage (the venv of tools/make_golden.py --setup):
  .venv-golden/bin/python tools/make_golden_families.py [--out tests/data/golden_families] [--case NAME ...]
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_golden as mg  # noqa: E402  (the shared helpers: randomize, timm_forward, write_case, ...)
import make_golden_hf  # noqa: E402  (the HF layouts of the same families: hf_* cases)

REPO = mg.REPO

# D 64, depth 2, 4x4 grid: a few hundred KiB per case.
TINY = dict(patch_size=8, embed_dim=64, depth=2, num_heads=4, mlp_ratio=2.0, num_classes=10)


def deit_forward(model, x):
    """float64 forward of timm's VisionTransformerDistilled (eval): embeddings = forward_head's
    pre_logits, (cls + dist) / 2 of the normed tokens; logits = model(x), the mean of head(cls)
    and head_dist(dist), checked against that definition."""
    torch = mg.torch
    m = model.double().eval()
    with torch.no_grad():
        xd = torch.from_numpy(x).double()
        feats = m.forward_features(xd)
        emb = m.forward_head(feats, pre_logits=True)
        logits = m(xd)
        both = (m.head(feats[:, 0]) + m.head_dist(feats[:, 1])) / 2
    assert torch.allclose(both, logits, rtol=0, atol=1e-12), "deit: logits are not the mean of both heads"
    return mg._np32(logits), mg._np32(emb), {"final": mg._np32(feats)}


def case_family(d, arch, seed, batch=2, img=32, forward=None, **kw):
    """mg.case_timm with the forward swapped where the family's head differs."""
    if forward is None:
        mg.case_timm(d, arch, seed, batch, img, **kw)
        meta = json.loads((d / "case.json").read_text())
        meta["generator"] = "tools/make_golden_families.py"
        (d / "case.json").write_text(json.dumps(meta, indent=2) + "\n")
        return
    model = mg.timm_build(arch, seed, img_size=img, **kw)
    x = mg.make_input((batch, 3, img, img), seed + 1)
    mg.timm_save(model, d)
    ref = mg.timm_reload(d)
    logits, emb, acts = forward(ref, x)
    cfg = json.loads((d / "model" / "config.json").read_text())
    mg.write_case(d, "model", x, logits, emb, acts, {}, f"timm {mg.timm.__version__}",
                  {"architecture": cfg["architecture"], "model_args": cfg.get("model_args", {}),
                   "generator": "tools/make_golden_families.py"})


def all_cases():
    v = "vit_tiny_patch16_224"
    return {
        # Registers + no_embed_class (FlexiViT / DeiT-III style embedding), token pooling.
        "fam_reg_noembedcls": lambda d: case_family(d, v, 201, reg_tokens=2, no_embed_class=True, **TINY),
        # Registers with the table holding their rows; avg pooling skips all prefix tokens.
        "fam_reg_avg": lambda d: case_family(d, v, 202, reg_tokens=3, global_pool="avg", **TINY),
        # No class token, avg pool + fc_norm (the *_gap models).
        "fam_gap_nocls": lambda d: case_family(d, v, 203, class_token=False, global_pool="avg", **TINY),
        # No class token, avgmax after the final norm (fc_norm off), tanh-GELU, no qkv bias.
        "fam_avgmax_tanh": lambda d: case_family(d, v, 204, class_token=False, global_pool="avgmax",
                                                 fc_norm=False, act_layer="gelu_tanh", qkv_bias=False, **TINY),
        # Max pool with fc_norm, a cls token present but skipped by the pool.
        "fam_max": lambda d: case_family(d, v, 205, global_pool="max", **TINY),
        # No final norm at all (final_norm=False), token pooling.
        "fam_nonorm": lambda d: case_family(d, v, 206, final_norm=False, **TINY),
        # OpenAI CLIP tower: pre_norm (norm_pre, no patch bias), quick-GELU, LayerNorm eps 1e-5,
        # all from the architecture name (timm keeps them out of model_args).
        "fam_clip_quickgelu": lambda d: case_family(d, "vit_base_patch16_clip_quickgelu_224", 207, **TINY),
        # LAION / DataComp CLIP tower: pre_norm, erf GELU, eps 1e-5.
        "fam_clip": lambda d: case_family(d, "vit_base_patch16_clip_224", 208, **TINY),
        # SigLIP gap tower: no class token, avg pool without fc_norm.
        "fam_siglip_gap": lambda d: case_family(d, "vit_base_patch16_siglip_gap_224", 209, **TINY),
        # timm *_reg4_gap: 4 registers, no class token, no_embed_class, LayerScale, avg pool after
        # the final norm (fc_norm=False), all from the architecture name.
        "fam_reg4_gap_ls": lambda d: case_family(d, "vit_base_patch16_reg4_gap_256", 211, **TINY),
        # DINOv2 with registers (timm): cls + 4 registers, no_embed_class, LayerScale, token pool.
        "fam_dinov2_reg4": lambda d: case_family(d, "vit_small_patch14_reg4_dinov2", 212, **TINY),
        # DeiT distilled: cls + dist tokens, output = mean of head and head_dist.
        "fam_deit_distilled": lambda d: case_family(d, "deit_tiny_distilled_patch16_224", 210,
                                                    forward=deit_forward, **TINY),
        # The HF layouts (transformers' DeiT / CLIP vision / DINOv2 classes): make_golden_hf.py.
        **make_golden_hf.all_cases(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "tests" / "data" / "golden_families"))
    ap.add_argument("--case", action="append", help="only these cases (repeatable)")
    args = ap.parse_args()
    mg._imports()
    mg.generate(all_cases(), args.case, Path(args.out))


if __name__ == "__main__":
    main()
