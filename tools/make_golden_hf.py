#!/usr/bin/env python3
r"""Golden fixtures for the HuggingFace layouts of the ViT families (issue 12): DeiT (plain and
WithTeacher), CLIP vision towers (with and without the visual projection, quick-GELU and erf
GELU), DINOv2 (plain and with registers). Each model is built with transformers' own class from a
tiny config (hidden 64, 2 layers, 4 heads, 4x4 grid), every parameter re-randomised
(make_golden.randomize), saved with save_pretrained (safetensors + config.json), reloaded with
from_pretrained (every tensor checked restored) and run in float64; the case layout is
tools/make_golden.py's (write_case), under tests/data/golden_families/<case>/, which
tests/test_golden.cpp runs as the families' set.

What each case records as `embeddings` (the engine's embeddings output for that class):
  DeiTForImageClassificationWithTeacher  (last_hidden[:, 0] + last_hidden[:, 1]) / 2 (both heads' input)
  DeiTForImageClassification / DeiTModel last_hidden[:, 0] (after the final layernorm; no tanh pooler)
  CLIPVisionModel                        pooler_output = post_layernorm(last_hidden[:, 0])
  CLIPVisionModelWithProjection          image_embeds = visual_projection(pooler_output)
  Dinov2Model / Dinov2WithRegistersModel pooler_output = layernorm(last_hidden)[:, 0]
  Dinov2(WithRegisters)ForImageClassification  the same cls row; logits = classifier(concat(cls, mean of
                                         the patch rows after the registers))
`activations.npz` "final" is HF's last_hidden_state (for CLIP: before post_layernorm).

A module of tools/make_golden_families.py, which writes these cases with the timm ones:
  .venv-golden/bin/python tools/make_golden_families.py [--case hf_clip ...]
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_golden as mg  # noqa: E402  (the shared helpers: randomize, write_case, generate, ...)

REPO = mg.REPO

# The HF spelling of make_golden_families.TINY: D 64, depth 2, 4 heads, patch 8 at 32 px (4x4).
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)
# A text tower as small as the image one (a whole CLIPModel / SiglipModel carries it; the engine
# does not read it).
TEXT_TINY = dict(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 max_position_embeddings=16)
LABELS = ["tench", "goldfish", "white shark", "tiger shark", "hammerhead", "cock", "hen"]


def labelled(n):
    return dict(num_labels=n, id2label={i: l for i, l in enumerate(LABELS[:n])},
                label2id={l: i for i, l in enumerate(LABELS[:n])})


def hf_case(d, cls, config, seed, batch, head, run_img=None, **fwd):
    """Builds cls(config), re-randomises it, saves / reloads it, runs `head(model, x, **fwd)` in
    float64 -> (logits or None, embeddings, last_hidden_state) and writes the case. run_img: an
    input size other than the config's (the engine gets it as the image_size override; HF
    resamples the table with interpolate_pos_encoding: DINOv2 always, the others when fwd says)."""
    torch = mg.torch
    torch.manual_seed(seed)
    model = cls(config)
    mg.randomize(model, seed)
    model.save_pretrained(str(d / "model"), safe_serialization=True)
    ref = cls.from_pretrained(str(d / "model")).float().eval()
    # from_pretrained silently re-initialises keys it cannot match: insist on a full restore.
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref.state_dict()[k]), f"{d.name}: {k} not restored by from_pretrained"
    img = run_img or getattr(config, "image_size", None) or config.vision_config.image_size
    x = mg.make_input((batch, 3, img, img), seed + 1)
    m = ref.double().eval()
    with torch.no_grad():
        logits, emb, last = head(m, torch.from_numpy(x).double(), **fwd)
    cfg = json.loads((d / "model" / "config.json").read_text())
    mg.write_case(d, "model", x, None if logits is None else mg._np32(logits), mg._np32(emb),
                  {"final": mg._np32(last)}, {"image_size": run_img} if run_img else {},
                  f"transformers {mg.transformers.__version__}",
                  {"hf_class": cls.__name__, "model_type": cfg["model_type"],
                   "layer_norm_eps": cfg.get("layer_norm_eps"), "generator": "tools/make_golden_hf.py"})


def deit_teacher(m, x, **fwd):
    out = m(pixel_values=x, **fwd)
    last = m.deit(pixel_values=x, **fwd).last_hidden_state
    both = (m.cls_classifier(last[:, 0]) + m.distillation_classifier(last[:, 1])) / 2
    assert mg.torch.allclose(both, out.logits, rtol=0, atol=1e-12), "deit: logits are not the mean of both heads"
    return out.logits, (last[:, 0] + last[:, 1]) / 2, last


def cls_classifier(m, x, **fwd):
    """ViT / DeiTForImageClassification: the classifier on the layernormed cls row."""
    out = m(pixel_values=x, **fwd)
    last = (m.vit if hasattr(m, "vit") else m.deit)(pixel_values=x, **fwd).last_hidden_state
    assert mg.torch.allclose(m.classifier(last[:, 0]), out.logits, rtol=0, atol=1e-12)
    return out.logits, last[:, 0], last


def bare_cls_row(m, x):
    """DeiTModel: the layernormed cls row (the tanh pooler is not used, as for ViTModel)."""
    last = m(pixel_values=x).last_hidden_state
    return None, last[:, 0], last


def clip_pooled(m, x, **fwd):
    out = m(pixel_values=x, **fwd)
    tower = getattr(m, "vision_model", m)  # the post_layernorm module, wherever this version keeps it
    if not hasattr(tower, "post_layernorm"):
        tower = tower.vision_model
    # HF CLIP's order: last_hidden is not normed; the pooled cls row is.
    assert mg.torch.equal(tower.post_layernorm(out.last_hidden_state[:, 0]), out.pooler_output)
    return None, out.pooler_output, out.last_hidden_state


def clip_projected(m, x, **fwd):
    out = m(pixel_values=x, **fwd)
    return None, out.image_embeds, out.last_hidden_state


def image_features(m, x):
    """A whole CLIPModel / SiglipModel: get_image_features (CLIP: pooler_output = visual_projection of
    the post-layernormed cls row, image_embeds; SigLIP: the attention-pool head) and the image
    tower's last_hidden_state."""
    out = m.get_image_features(pixel_values=x)
    return None, out.pooler_output, out.last_hidden_state


def dinov2_pooled(m, x):
    out = m(pixel_values=x)
    assert mg.torch.equal(out.pooler_output, out.last_hidden_state[:, 0])
    return None, out.pooler_output, out.last_hidden_state


def dinov2_classifier(m, x):
    """Dinov2(WithRegisters)ForImageClassification: classifier(concat(cls, mean of the patch rows)),
    the patch rows after the registers; embeddings = the cls row (the base model's pooler_output)."""
    out = m(pixel_values=x)
    base = m.dinov2 if hasattr(m, "dinov2") else m.dinov2_with_registers
    last = base(pixel_values=x).last_hidden_state
    first = 1 + getattr(m.config, "num_register_tokens", 0)
    want = m.classifier(mg.torch.cat([last[:, 0], last[:, first:].mean(dim=1)], dim=1))
    assert mg.torch.allclose(want, out.logits, rtol=0, atol=1e-12), "dinov2: classifier input is not cls + patch mean"
    return out.logits, last[:, 0], last


def all_cases():
    from transformers import (CLIPConfig, CLIPModel, SiglipConfig, SiglipModel)
    from transformers import (CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection, DeiTConfig,
                              DeiTForImageClassification, DeiTForImageClassificationWithTeacher, DeiTModel,
                              Dinov2Config, Dinov2ForImageClassification, Dinov2Model, Dinov2WithRegistersConfig,
                              Dinov2WithRegistersForImageClassification, Dinov2WithRegistersModel)

    def deit(n=0, **kw):
        return DeiTConfig(intermediate_size=128, **TINY, **(labelled(n) if n else {}), **kw)

    return {
        # cls + distillation token, both heads: output = their mean; odd batch.
        "hf_deit_teacher": lambda d: hf_case(d, DeiTForImageClassificationWithTeacher, deit(7), 301, 3, deit_teacher),
        # the distillation token attends, the classifier reads the cls row only.
        "hf_deit_cls": lambda d: hf_case(d, DeiTForImageClassification, deit(5), 302, 1, cls_classifier),
        # bare DeiTModel (+ its unused tanh pooler), head dim 24 (D 96, 4 heads).
        "hf_deit_bare": lambda d: hf_case(d, DeiTModel, DeiTConfig(intermediate_size=144, **{**TINY, "hidden_size": 96}),
                                          303, 2, bare_cls_row),
        # OpenAI CLIP tower (quick-GELU, eps 1e-5 by default): pre_layrnorm, no patch bias,
        # post_layernorm on the pooled cls row only.
        "hf_clip": lambda d: hf_case(d, CLIPVisionModel, CLIPVisionConfig(intermediate_size=128, **TINY), 304, 3,
                                     clip_pooled),
        # With the visual projection (embeddings = image_embeds, 24 wide), erf GELU, eps 1e-6.
        "hf_clip_proj": lambda d: hf_case(d, CLIPVisionModelWithProjection,
                                          CLIPVisionConfig(intermediate_size=128, projection_dim=24, hidden_act="gelu",
                                                           layer_norm_eps=1e-6, **TINY), 305, 2, clip_projected),
        # DINOv2: LayerScale (layer_scale{1,2}.lambda1), mask_token (unused), eps 1e-6.
        "hf_dinov2": lambda d: hf_case(d, Dinov2Model, Dinov2Config(mlp_ratio=2, **TINY), 306, 3, dinov2_pooled),
        # DINOv2 with 4 registers: the table has the cls row but no register rows.
        "hf_dinov2_reg": lambda d: hf_case(d, Dinov2WithRegistersModel,
                                           Dinov2WithRegistersConfig(mlp_ratio=2, num_register_tokens=4, **TINY), 307, 2,
                                           dinov2_pooled),
        # The classifiers over concat(cls, mean of the patch rows) (the registers skipped).
        "hf_dinov2_cls": lambda d: hf_case(d, Dinov2ForImageClassification,
                                           Dinov2Config(mlp_ratio=2, **TINY, **labelled(5)), 312, 3, dinov2_classifier),
        "hf_dinov2_reg_cls": lambda d: hf_case(d, Dinov2WithRegistersForImageClassification,
                                               Dinov2WithRegistersConfig(mlp_ratio=2, num_register_tokens=4, **TINY,
                                                                         **labelled(7)), 313, 1, dinov2_classifier),
        # Other run sizes: HF's interpolate_pos_encoding (bicubic, no antialias), which DINOv2
        # always applies and DeiT / CLIP apply when asked. 4x4 -> 6x6, 7x7 (odd), 3x3 (down).
        "hf_dinov2_48": lambda d: hf_case(d, Dinov2Model, Dinov2Config(mlp_ratio=2, **TINY), 308, 2, dinov2_pooled,
                                          run_img=48),
        "hf_dinov2_reg_24": lambda d: hf_case(d, Dinov2WithRegistersModel,
                                              Dinov2WithRegistersConfig(mlp_ratio=2, num_register_tokens=2, **TINY), 309,
                                              3, dinov2_pooled, run_img=24),
        "hf_clip_proj_56": lambda d: hf_case(d, CLIPVisionModelWithProjection,
                                             CLIPVisionConfig(intermediate_size=128, projection_dim=24, **TINY), 310, 1,
                                             clip_projected, run_img=56, interpolate_pos_encoding=True),
        # DINOv2 giant's SwiGLU FFN (use_swiglu_ffn: mlp.weights_in [2I, D], silu(first half) *
        # second half, I = 88 from mlp_ratio 2), odd batch.
        "hf_dinov2_swiglu": lambda d: hf_case(d, Dinov2Model, Dinov2Config(mlp_ratio=2, use_swiglu_ffn=True, **TINY), 314,
                                              3, dinov2_pooled),
        # Whole dual-tower checkpoints (the way openai/clip-* and google/siglip-* are published):
        # the image tower runs, the text tower is not read.
        "hf_clip_model": lambda d: hf_case(d, CLIPModel,
                                           CLIPConfig(vision_config=dict(intermediate_size=128, **TINY),
                                                      text_config=TEXT_TINY, projection_dim=24), 315, 3, image_features),
        "hf_siglip_model": lambda d: hf_case(d, SiglipModel,
                                             SiglipConfig(vision_config=dict(intermediate_size=128, **TINY),
                                                          text_config=TEXT_TINY), 316, 2, image_features),
        "hf_deit_teacher_48": lambda d: hf_case(d, DeiTForImageClassificationWithTeacher, deit(7), 311, 2,
                                                deit_teacher, run_img=48, interpolate_pos_encoding=True),
    }
