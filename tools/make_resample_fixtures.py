#!/usr/bin/env python3
"""Writes tests/data/resample/*.npy: random position tables and what timm's
resample_abs_pos_embed (F.interpolate bicubic, antialias=True, align_corners=False)
makes of them, and (hf_* cases) what HF's interpolate_pos_encoding (DeiT / CLIP / DINOv2:
F.interpolate bicubic, size=, align_corners=False, no antialias) makes of them. Layout: <case>_in.npy [1 + gh*gw, D], <case>_out.npy [1 + nh*nw, D], fp32,
row 0 = cls. Run with the tools venv: /work/venv-tools/bin/python tools/make_resample_fixtures.py
"""
import os

import numpy as np
import torch
from timm.layers import resample_abs_pos_embed

CASES = [  # name, (gh, gw), (nh, nw), D
    ("up_4x4_6x6", (4, 4), (6, 6), 8),
    ("up_14x14_24x24", (14, 14), (24, 24), 4),
    ("down_7x7_3x5", (7, 7), (3, 5), 6),
]
HF_CASES = [  # appended after CASES so that the timm cases' random tables stay as they were
    ("hf_up_4x4_6x6", (4, 4), (6, 6), 8),
    ("hf_up_14x14_37x37", (14, 14), (37, 37), 3),  # a DINOv2 224 table run at 518
    ("hf_down_7x7_3x5", (7, 7), (3, 5), 6),
    ("hf_mixed_5x4_2x11", (5, 4), (2, 11), 5),
]


def hf_interpolate(pos, gh, gw, nh, nw):
    """transformers' interpolate_pos_encoding (modeling_dinov2.py, as of 5.x): the cls row kept,
    the patch grid through F.interpolate in float32."""
    cls_pos, patch = pos[:, :1], pos[:, 1:]
    d = pos.shape[-1]
    patch = patch.reshape(1, gh, gw, d).permute(0, 3, 1, 2)
    patch = torch.nn.functional.interpolate(patch.to(torch.float32), size=(nh, nw), mode="bicubic",
                                            align_corners=False)
    return torch.cat((cls_pos, patch.permute(0, 2, 3, 1).reshape(1, -1, d)), dim=1)


def main():
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "resample")
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20240611)
    for name, (gh, gw), (nh, nw), d in CASES + HF_CASES:
        pos = rng.standard_normal((1, 1 + gh * gw, d)).astype(np.float32)
        if name.startswith("hf_"):
            res = hf_interpolate(torch.from_numpy(pos), gh, gw, nh, nw)
        else:
            res = resample_abs_pos_embed(torch.from_numpy(pos), new_size=[nh, nw], old_size=[gh, gw],
                                         num_prefix_tokens=1, interpolation="bicubic", antialias=True)
        res = res.detach().numpy().astype(np.float32)
        assert res.shape == (1, 1 + nh * nw, d)
        np.save(os.path.join(out_dir, f"{name}_in.npy"), pos[0])
        np.save(os.path.join(out_dir, f"{name}_out.npy"), res[0])
        print(f"{name}: {pos.shape} -> {res.shape}")


if __name__ == "__main__":
    main()
