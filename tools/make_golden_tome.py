#!/usr/bin/env python3
r"""Golden fixtures for token merging (ToMe, Bolya et al., ICLR 2023, "Token Merging: Your ViT But
Faster"): tiny timm ViTs (every parameter re-randomised, saved with timm's save_for_hf and reloaded
with timm's local-dir loader, as tools/make_golden.py does) run in float64 with the paper's
algorithm applied to timm's blocks, under tests/data/golden_tome/<case>/:
  model/            model.safetensors + config.json (timm's own saver)
  input.npy         [B, 3, H, W] f32
  logits.npy        [B, C] f32; embeddings.npy [B, D] f32 (the pooled row the head reads)
  case.json         {"model", "tome": r, "tokens": the schedule, "decision_margin", versions, ...}

The ToMe package (facebookresearch/ToMe) is not on PyPI, so its algorithm is written out below
following the repository's code: tome/merge.py bipartite_soft_matching (metric normalised, A =
tokens ::2, B = 1::2, scores = a @ b^T, protected rows / columns -inf, node_max / node_idx =
scores.max(-1), edge_idx = node_max.argsort(descending), src = edge_idx[:r], unm = edge_idx[r:]
sorted when there is a class token, dst = node_idx[src], merge = cat(unm, scatter_reduce(dst))),
merge_wavg (x * size summed, divided by the summed size), tome/patch/timm.py ToMeBlock (the merge
between x + attn(norm1(x)) and the MLP, r clipped to (T - protected) // 2 per block) and
ToMeAttention (attn + size.log() on every key before the softmax: proportional attention;
metric = k.mean over heads). One generalisation, the engine's: every prefix token (class,
distillation, register tokens) is protected the way ToMe protects the class token (an A row:
no edge) and the distillation token (a B column: takes no merge), and the prefix tokens lead the
output in their order (ToMe's distill-token case: cat(unm[:, :1], dst[:, :1], unm[:, 1:],
dst[:, 1:])); with only a class token, or a class and a distillation token, that is ToMe's code.

Merging is a discrete decision: an engine whose similarities differ from float64's by more than
the gap between two candidates merges another pair. Each case's seed is the first whose smallest
decision gap (the r-th best edge vs the next, each merged row's best partner vs its second, and
without a prefix the order of the unmerged rows, which ToMe keeps) is at least `min_margin`; the
gap is recorded as decision_margin. The small case's gap stays above the 16-bit engines' error.

Usage (the venv of tools/make_golden.py --setup):
  .venv-golden/bin/python tools/make_golden_tome.py [--out tests/data/golden_tome] [--case NAME ...]
"""

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_golden as mg  # noqa: E402  (the shared helpers: randomize, timm_build, timm_save, ...)

REPO = mg.REPO


# --- the paper's algorithm (facebookresearch/ToMe tome/merge.py), float64 -----------------------


def bipartite_soft_matching(metric, r, protected, margins):
    """tome/merge.py bipartite_soft_matching with `protected` leading tokens (see the header);
    returns merge(x, mode) and appends this block's smallest decision gap to `margins`."""
    torch = mg.torch
    t = metric.shape[1]
    r = min(r, (t - protected) // 2)
    if r <= 0:
        return None, 0
    pa, pb = (protected + 1) // 2, protected // 2
    with torch.no_grad():
        metric = metric / metric.norm(dim=-1, keepdim=True)
        a, b = metric[..., ::2, :], metric[..., 1::2, :]
        scores = a @ b.transpose(-1, -2)
        scores[..., :pa, :] = -math.inf  # class token (and every A-side prefix token): no edge
        scores[..., :, :pb] = -math.inf  # distillation token (every B-side prefix token): no merge in
        node_max, node_idx = scores.max(dim=-1)
        edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]
        unm_idx = edge_idx[..., r:, :]
        src_idx = edge_idx[..., :r, :]
        dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)
        if protected > 0:
            unm_idx = unm_idx.sort(dim=1)[0]
        # How far each decision is from a tie (for the seed choice; not part of ToMe).
        srt = node_max.sort(dim=-1, descending=True)[0]
        gap = (srt[:, r - 1] - srt[:, r]) if srt.shape[1] > r and math.isfinite(srt[:, r].min().item()) else None
        top2 = scores.topk(2, dim=-1)[0]
        row_gap = (top2[..., 0] - top2[..., 1]).gather(-1, src_idx[..., 0])
        m = row_gap.min()
        if gap is not None:
            m = min(m, gap.min())
        if protected == 0:  # ToMe keeps the unmerged rows in edge order: that order is a decision too
            fin = srt[:, r:]
            if fin.shape[1] > 1:
                m = min(m, (fin[:, :-1] - fin[:, 1:]).min())
        margins.append(float(m))

    def merge(x, mode="mean"):
        src, dst = x[..., ::2, :], x[..., 1::2, :]
        n, t1, c = src.shape
        unm = src.gather(dim=-2, index=unm_idx.expand(n, t1 - r, c))
        src = src.gather(dim=-2, index=src_idx.expand(n, r, c))
        dst = dst.scatter_reduce(-2, dst_idx.expand(n, r, c), src, reduce=mode)
        lead = []
        for i in range(protected):  # the prefix tokens in their order: A0, B0, A1, B1, ...
            lead.append(unm[:, i // 2: i // 2 + 1] if i % 2 == 0 else dst[:, i // 2: i // 2 + 1])
        return torch.cat(lead + [unm[:, pa:], dst[:, pb:]], dim=1)

    return merge, r


def merge_wavg(merge, x, size):
    """tome/merge.py merge_wavg."""
    torch = mg.torch
    if size is None:
        size = torch.ones_like(x[..., 0, None])
    x = merge(x * size, mode="sum")
    size = merge(size, mode="sum")
    return x / size, size


def tome_attention(attn, x, size):
    """tome/patch/timm.py ToMeAttention.forward on timm's Attention (explicit softmax, float64)."""
    B, N, C = x.shape
    qkv = attn.qkv(x).reshape(B, N, 3, attn.num_heads, C // attn.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    s = (q @ k.transpose(-2, -1)) * attn.scale
    if size is not None:  # proportional attention
        s = s + size.log()[:, None, None, :, 0]
    x = (s.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, C)
    x = attn.norm(x) if hasattr(attn, "norm") else x
    return attn.proj(x), k.mean(1)


def tome_forward(model, x, r):
    """timm VisionTransformer.forward with ToMe's timm patch (ToMeBlock / ToMeAttention, r per
    block, prop_attn=True) in float64. Returns logits, embeddings (forward_head's pre_logits), the
    token count entering each block and after the last, and the smallest decision gap."""
    torch = mg.torch
    m = model.double().eval()
    protected = m.num_prefix_tokens
    margins, tokens = [], []
    with torch.no_grad():
        h = m.patch_embed(torch.from_numpy(x).double())
        h = m._pos_embed(h)
        h = m.norm_pre(h)
        size = None
        for blk in m.blocks:
            tokens.append(h.shape[1])
            a, metric = tome_attention(blk.attn, blk.norm1(h), size)
            h = h + blk.ls1(a)
            merge, rr = bipartite_soft_matching(metric, r, protected, margins)
            if rr > 0:
                h, size = merge_wavg(merge, h, size)
            h = h + blk.ls2(blk.mlp(blk.norm2(h)))
        tokens.append(h.shape[1])
        feats = m.norm(h)
        emb = m.forward_head(feats, pre_logits=True)
        logits = m.forward_head(feats)
    return logits, emb, tokens, min(margins) if margins else math.inf


def plain_check(model, x):
    """The ToMe forward at r = 0 must be timm's own forward (same code path, no merges)."""
    torch = mg.torch
    logits, _, _, _ = tome_forward(model, x, 0)
    with torch.no_grad():
        ref = model.double().eval()(torch.from_numpy(x).double())
    assert torch.allclose(logits, ref, rtol=0, atol=1e-10), "tome_forward(r=0) differs from timm's forward"


def case_tome(d, arch, r, batch, img, min_margin, seed0, **kw):
    """The first seed from seed0 whose decisions are at least min_margin from a tie."""
    for seed in range(seed0, seed0 + 200):
        model = mg.timm_build(arch, seed, img_size=img, **kw)
        x = mg.make_input((batch, 3, img, img), seed + 1)
        logits, emb, tokens, margin = tome_forward(model, x, r)
        try:
            mg.check_margin(mg._np32(logits), d.name)
        except AssertionError:
            continue
        if margin >= min_margin:
            break
    else:
        raise SystemExit(f"{d.name}: no seed in {seed0}..{seed0 + 199} with decision margin >= {min_margin}")
    plain_check(model, x)
    mg.timm_save(model.float(), d)
    ref = mg.timm_reload(d)
    logits, emb, tokens, margin = tome_forward(ref, x, r)
    lg = mg._np32(logits)
    mg.check_margin(lg, d.name)
    mg.np.save(d / "input.npy", x.astype(mg.np.float32))
    mg.np.save(d / "logits.npy", lg)
    mg.np.save(d / "embeddings.npy", mg._np32(emb))
    cfg = json.loads((d / "model" / "config.json").read_text())
    meta = {
        "model": "model",
        "tome": r,
        "tokens": tokens,
        "prefix_tokens": int(ref.num_prefix_tokens),
        "decision_margin": margin,
        "seed": seed,
        "framework": f"timm {mg.timm.__version__}",
        "architecture": cfg["architecture"],
        "model_args": cfg.get("model_args", {}),
        "algorithm": "facebookresearch/ToMe tome/merge.py + tome/patch/timm.py (prop_attn), float64",
        "generator": "tools/make_golden_tome.py",
        "versions": mg.versions(),
    }
    (d / "case.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"{d.name}: seed {seed}, tokens {tokens}, decision margin {margin:.3g}")


def all_cases():
    return {
        # ViT-B/16's 197 tokens (D 64, 3 blocks): r 16 per block, decisions 1e-4 from a tie at least
        # (fp32 engines: similarities ~1e-6 from float64's).
        "tome_vit_197": lambda d: case_tome(d, "vit_base_patch16_224", 16, 2, 224, 1e-4, 300, embed_dim=64, depth=3,
                                            num_heads=2, mlp_ratio=2.0, num_classes=10),
        # r 98 = (197 - 1) / 2: block 0 merges half, block 1 is clipped to (99 - 1) / 2 = 49.
        "tome_clip": lambda d: case_tome(d, "vit_base_patch16_224", 98, 1, 224, 1e-4, 400, embed_dim=48, depth=2,
                                         num_heads=2, mlp_ratio=2.0, num_classes=10),
        # DeiT distilled (class + distillation token protected), 65 patch tokens + 2.
        "tome_deit_dist": lambda d: case_tome(d, "deit_tiny_distilled_patch16_224", 12, 2, 64, 1e-4, 500,
                                              patch_size=8, embed_dim=48, depth=2, num_heads=3, mlp_ratio=2.0,
                                              num_classes=10),
        # Registers (class + 4 register tokens protected), LayerScale, avg pooling over the merged rows.
        "tome_reg4_gap": lambda d: case_tome(d, "vit_base_patch16_reg4_gap_256", 9, 2, 64, 1e-4, 600,
                                             patch_size=8, embed_dim=48, depth=2, num_heads=2, mlp_ratio=2.0,
                                             num_classes=10, init_values=0.1),
        # No class token, no prefix (ToMe keeps its unmerged rows in edge order).
        "tome_noprefix": lambda d: case_tome(d, "vit_base_patch16_224", 10, 2, 64, 1e-4, 700, patch_size=8,
                                             embed_dim=48, depth=2, num_heads=2, mlp_ratio=2.0, num_classes=10,
                                             class_token=False, global_pool="avg"),
        # The 16-bit engines' case: 17 tokens, decisions far from a tie (4e-2: bf16's error in a
        # similarity is ~1e-2), run by the fast CPU bf16 engine and the emulated CUDA engine.
        "tome_small": lambda d: case_tome(d, "vit_base_patch16_224", 4, 2, 32, 4e-2, 800, patch_size=8,
                                          embed_dim=48, depth=2, num_heads=2, mlp_ratio=2.0, num_classes=10),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "golden_tome")
    ap.add_argument("--case", action="append")
    args = ap.parse_args()
    mg._imports()
    cases = all_cases()
    for name in args.case or sorted(cases):
        d = args.out / name
        if d.exists():
            import shutil
            shutil.rmtree(d)
        (d / "model").mkdir(parents=True)
        cases[name](d)


if __name__ == "__main__":
    main()
