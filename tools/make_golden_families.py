#!/usr/bin/env python3
r"""Golden fixtures for the ViT families (issue 12): register tokens, no_embed_class, no class
token with avg / avgmax / max pooling, pre-norm CLIP towers with quick-GELU and eps 1e-5,
tanh-GELU, qkv_bias=False, no final norm, DeiT distilled, the attention-pool head (global_pool
'map': timm SigLIP towers and *_reg4_map, transformers' SiglipVisionModel), AIMv2 (timm aimv2_*,
transformers' Aimv2VisionModel). Each model is built with timm's own
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
import functools
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


def hf_siglip_forward(model, x, **fwd):
    """float64 forward of transformers' SiglipVisionModel: embeddings = pooler_output (the
    attention-pool head on post_layernorm(x)), checked against head(last_hidden_state); no logits."""
    torch = mg.torch
    m = model.double().eval()
    with torch.no_grad():
        out = m(pixel_values=torch.from_numpy(x).double(), **fwd)
        again = m.head(out.last_hidden_state)
    assert torch.allclose(again, out.pooler_output, rtol=0, atol=1e-12), "siglip: pooler_output is not head(x)"
    return None, mg._np32(out.pooler_output), {"final": mg._np32(out.last_hidden_state)}


def hf_build_reload(d, cls, config_cls, seed, cfg_kw):
    """A transformers model of `cls` (random, every parameter re-randomised), saved with
    save_pretrained under d/model and reloaded with from_pretrained, which must restore every
    tensor (it silently re-initialises what it cannot match)."""
    mg.torch.manual_seed(seed)
    model = cls(config_cls(**cfg_kw))
    mg.randomize(model, seed)
    model.save_pretrained(str(d / "model"), safe_serialization=True)
    ref = cls.from_pretrained(str(d / "model")).float().eval()
    for k, v in model.state_dict().items():
        assert mg.torch.equal(v, ref.state_dict()[k]), f"{d.name}: {k} not restored by from_pretrained"
    return ref


def case_hf_siglip(d, seed, batch=3, run_img=None, **cfg_kw):
    """transformers' SiglipVisionModel (random, every parameter re-randomised incl. the probe and
    the MultiheadAttention in_proj), saved with save_pretrained, reloaded with from_pretrained.
    run_img: another input size (interpolate_pos_encoding=True; the engine's image_size override)."""
    from transformers import SiglipVisionConfig, SiglipVisionModel
    ref = hf_build_reload(d, SiglipVisionModel, SiglipVisionConfig, seed, cfg_kw)
    img = run_img or cfg_kw["image_size"]
    x = mg.make_input((batch, 3, img, img), seed + 1)
    logits, emb, acts = hf_siglip_forward(ref, x, **({"interpolate_pos_encoding": True} if run_img else {}))
    mg.write_case(d, "model", x, logits, emb, acts, {"image_size": run_img} if run_img else {},
                  f"transformers {mg.transformers.__version__}",
                  {"generator": "tools/make_golden_families.py",
                   "embeddings_def": "pooler_output (SiglipMultiheadAttentionPoolingHead)"})


def hf_aimv2_forward(model, x):
    """float64 forward of transformers' Aimv2VisionModel: embeddings = pooler_output (the
    Aimv2AttentionPoolingHead on rms_norm(x): the raw cls_token as the query, k / v projections,
    output_proj; no norm, no MLP), checked against head(last_hidden_state); without the head
    (use_head=False) the mean of last_hidden_state (timm's aimv2 pools avg); no logits."""
    torch = mg.torch
    m = model.double().eval()
    with torch.no_grad():
        out = m(pixel_values=torch.from_numpy(x).double())
        if m.config.use_head:
            pooled = out.pooler_output
            assert torch.allclose(m.head(out.last_hidden_state), pooled, rtol=0, atol=1e-12), "aimv2: pooler_output"
        else:
            assert out.pooler_output is None
            pooled = out.last_hidden_state.mean(dim=1)
    return None, mg._np32(pooled), {"final": mg._np32(out.last_hidden_state)}


def case_hf_aimv2(d, seed, batch=3, **cfg_kw):
    """transformers' Aimv2VisionModel (random, every parameter re-randomised incl. the head's
    cls_token and every RMSNorm weight), saved with save_pretrained, reloaded with from_pretrained."""
    from transformers import Aimv2VisionConfig, Aimv2VisionModel
    ref = hf_build_reload(d, Aimv2VisionModel, Aimv2VisionConfig, seed, cfg_kw)
    img = cfg_kw["image_size"]
    x = mg.make_input((batch, 3, img, img), seed + 1)
    logits, emb, acts = hf_aimv2_forward(ref, x)
    mg.write_case(d, "model", x, logits, emb, acts, {}, f"transformers {mg.transformers.__version__}",
                  {"generator": "tools/make_golden_families.py",
                   "embeddings_def": "pooler_output (Aimv2AttentionPoolingHead)" if ref.config.use_head
                   else "mean of last_hidden_state (use_head=False)"})


def case_map_latent2(d, seed, batch=3, img=32):
    """A timm map model whose AttentionPoolLatent has latent_len 2 (a constructor argument the
    VisionTransformer does not pass on, so the hub config cannot say it: the tensor does). The
    reference is timm's own float64 forward of the model built here (a local-dir reload would
    rebuild latent_len 1); pool 'token' keeps latent row 0 of the head's output."""
    from timm.layers import AttentionPoolLatent
    model = mg.timm.create_model("vit_base_patch16_siglip_224", pretrained=False, img_size=img, **TINY)
    model.attn_pool = AttentionPoolLatent(TINY["embed_dim"], num_heads=TINY["num_heads"],
                                          mlp_ratio=TINY["mlp_ratio"], latent_len=2,
                                          norm_layer=functools.partial(mg.nn.LayerNorm, eps=1e-6))  # timm's ViT norm
    mg.randomize(model, seed)
    model.eval()
    x = mg.make_input((batch, 3, img, img), seed + 1)
    mg.timm_save(model, d)
    logits, emb, acts = mg.timm_forward(model, x)
    cfg = json.loads((d / "model" / "config.json").read_text())
    mg.write_case(d, "model", x, logits, emb, acts, {}, f"timm {mg.timm.__version__}",
                  {"architecture": cfg["architecture"], "model_args": cfg.get("model_args", {}),
                   "latent_len": 2, "generator": "tools/make_golden_families.py"})


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


def openclip_case(d, seed, batch, quick_gelu, **vision):
    """An open_clip CLIP (random, every parameter re-randomised; a one-layer text tower beside the
    image tower), saved as open_clip publishes to the hub (open_clip_model.safetensors +
    open_clip_config.json), reloaded with open_clip's own local-dir loader, the image tower run in
    float64: embeddings = encode_image (the projected pooled row), features = the final tokens
    (after ln_post, or before it when final_ln_after_pool normalises the pooled row only)."""
    import open_clip
    import safetensors.torch
    from open_clip.push_to_hf_hub import save_config_for_hf
    torch = mg.torch
    vision_cfg = dict(width=64, layers=2, head_width=16, mlp_ratio=2.0, patch_size=8, image_size=32, **vision)
    model_cfg = dict(embed_dim=24, quick_gelu=quick_gelu, vision_cfg=vision_cfg,
                     text_cfg=dict(context_length=8, vocab_size=100, width=32, heads=2, layers=1))
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(**{k: v for k, v in model_cfg.items()})
    mg.randomize(model, seed)
    out = d / "model"
    out.mkdir(parents=True)
    safetensors.torch.save_file(model.state_dict(), str(out / "open_clip_model.safetensors"))
    # What open_clip.create_model sets from the pretrained tag (OpenAI CLIP's mean / std).
    model.visual.image_mean = (0.48145466, 0.4578275, 0.40821073)
    model.visual.image_std = (0.26862954, 0.26130258, 0.27577711)
    save_config_for_hf(model, out / "open_clip_config.json", model_config=model_cfg)
    ref = open_clip.create_model(f"local-dir:{out}")
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref.state_dict()[k]), f"{d.name}: {k} not restored by open_clip's loader"
    m = ref.double().eval()
    x = mg.make_input((batch, 3, 32, 32), seed + 1)
    v = m.visual
    with torch.no_grad():
        xd = torch.from_numpy(x).double()
        t = v.transformer(v._embeds(xd))
        if v.final_ln_after_pool:
            feats, pooled = t, v.ln_post(t[:, 1:].mean(dim=1) if v.pool_type == "avg" else t[:, 0])
        else:
            feats = v.ln_post(t)
            pooled = feats[:, 1:].mean(dim=1) if v.pool_type == "avg" else feats[:, 0]
        emb = pooled @ v.proj
        again = m.encode_image(xd)
    assert torch.allclose(again, emb, rtol=0, atol=1e-12), f"{d.name}: encode_image is not pooled @ proj"
    mg.write_case(d, "model", x, None, mg._np32(emb), {"final": mg._np32(feats)}, {},
                  f"open_clip {open_clip.__version__}", {"model_cfg": model_cfg,
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
        # SigLIP tower with the attention-pool head (global_pool 'map', erf GELU), odd batch.
        "fam_siglip_map": lambda d: case_family(d, "vit_base_patch16_siglip_224", 213, batch=3, **TINY),
        # SigLIP 2 tower: map head, tanh-GELU from the architecture name (not in model_args),
        # qkv_bias=False (the head's q / kv too), head dim 24 (D 96, 4 heads), 5x5 grid.
        "fam_siglip2_map_tanh": lambda d: case_family(d, "vit_so400m_patch16_siglip_256", 214, img=40,
                                                      qkv_bias=False, **dict(TINY, embed_dim=96)),
        # Registers + map: the head attends over the patch rows only (prefix rows skipped).
        "fam_reg4_map": lambda d: case_family(d, "vit_so150m_patch16_reg4_map_256", 215, batch=3, **TINY),
        # The head with 2 latent rows (pooled output: row 0).
        "fam_map_latent2": lambda d: case_map_latent2(d, 216),
        # DINOv2 giant's SwiGLU MLP (timm SwiGLUPacked: fc1 [2I, D], silu(first half) * second half,
        # I = 88: fc1 176 wide), LayerScale, from the architecture name.
        "fam_swiglu_dinov2": lambda d: case_family(d, "vit_giant_patch14_dinov2", 218, batch=3,
                                                   **dict(TINY, mlp_ratio=2.75)),
        # The giant with 4 registers (no_embed_class) and the SwiGLU MLP.
        "fam_swiglu_reg4": lambda d: case_family(d, "vit_giant_patch14_reg4_dinov2", 219, **TINY),
        # AIMv2 (aimv2_*): RmsNorm everywhere (eps 1e-5) and on the patch embeddings, timm SwiGLU
        # (separate fc1_g / fc1_x), no proj / MLP biases, no qkv bias, no class token, avg pool.
        "fam_aimv2": lambda d: case_family(d, "aimv2_large_patch14_224", 222, batch=3, **TINY),
        # An image size that is not a multiple of the patch (vit_so400m_patch14_siglip_*_384: 384 px at
        # patch 14): 62 px at patch 14, a 4x4 grid over the first 56 px, the rest unread by the conv.
        "fam_patch_floor": lambda d: case_family(d, "vit_so400m_patch14_siglip_gap_384", 220, img=62,
                                                 **dict(TINY, patch_size=14)),
        # ResPostBlock (vit_base_patch16_rpn_224): each block's norm after its branch,
        # x + norm1(attn(x)), x + norm2(mlp(x)); no class token, avg pool, no qkv bias.
        "fam_respost": lambda d: case_family(d, "vit_base_patch16_rpn_224", 225, batch=3, **TINY),
        # pool_include_prefix (test_vit3): the attention-pool head over every token, the register
        # row too (no class token, 1 register, LayerScale).
        "fam_prefix_map": lambda d: case_family(d, "test_vit3", 226, **TINY),
        # pool_include_prefix with avg pooling: cls + 2 registers averaged with the patch rows.
        "fam_prefix_avg": lambda d: case_family(d, v, 227, batch=3, reg_tokens=2, global_pool="avg",
                                                pool_include_prefix=True, **TINY),
        # transformers' SiglipVisionModel: head dim 24, 5x5 grid, gelu_pytorch_tanh, eps 1e-6.
        "hf_siglip_vision": lambda d: case_hf_siglip(d, 217, hidden_size=96, intermediate_size=160,
                                                     num_hidden_layers=2, num_attention_heads=4,
                                                     image_size=40, patch_size=8),
        # At another size: transformers' interpolate_pos_encoding (bicubic, no antialias) 5x5 -> 7x7.
        "hf_siglip_vision_56": lambda d: case_hf_siglip(d, 221, batch=2, run_img=56, hidden_size=64,
                                                        intermediate_size=128, num_hidden_layers=2,
                                                        num_attention_heads=4, image_size=40, patch_size=8),
        # transformers' Aimv2VisionModel (apple/aimv2-*): RMSNorm (eps 1e-5) on the patch embeddings,
        # in every block and at the end, SwiGLU (gate_proj / up_proj / down_proj), no biases, no
        # class token, the attention-pool head with the raw cls_token as its query.
        "hf_aimv2_vision": lambda d: case_hf_aimv2(d, 223, hidden_size=64, intermediate_size=88,
                                                   num_hidden_layers=2, num_attention_heads=4,
                                                   image_size=32, patch_size=8),
        # With qkv_bias (q / k / v, out_proj and the head's k / v) and mlp_bias, head dim 24,
        # eps 1e-6 and no head (use_head=False: pooled as the mean of the tokens).
        "hf_aimv2_vision_bias": lambda d: case_hf_aimv2(d, 224, batch=2, hidden_size=96, intermediate_size=128,
                                                        num_hidden_layers=2, num_attention_heads=4,
                                                        image_size=40, patch_size=8, qkv_bias=True,
                                                        mlp_bias=True, rms_norm_eps=1e-6, use_head=False),
        # open_clip's own layout (visual.* beside a text tower), as published to the hub: OpenAI's
        # shape (QuickGELU, ln_pre, token pooling, ln_post over every token), and a LAION-style
        # variant (GELU, LayerScale, no ln_pre, avg pooling with ln_post on the pooled row).
        "oc_openai": lambda d: openclip_case(d, 231, 3, True),
        "oc_avg_ls": lambda d: openclip_case(d, 232, 2, False, ls_init_value=0.1, no_ln_pre=True, pool_type="avg",
                                             final_ln_after_pool=True),
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
