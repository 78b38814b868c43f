#!/usr/bin/env python3
"""Writes tests/data/resample/*.npy: random position tables and what timm's
resample_abs_pos_embed (F.interpolate bicubic, antialias=True, align_corners=False)
makes of them. Layout: <case>_in.npy [1 + gh*gw, D], <case>_out.npy [1 + nh*nw, D], fp32,
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


def main():
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "resample")
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20240611)
    for name, (gh, gw), (nh, nw), d in CASES:
        pos = rng.standard_normal((1, 1 + gh * gw, d)).astype(np.float32)
        res = resample_abs_pos_embed(torch.from_numpy(pos), new_size=[nh, nw], old_size=[gh, gw],
                                     num_prefix_tokens=1, interpolation="bicubic", antialias=True)
        res = res.detach().numpy().astype(np.float32)
        assert res.shape == (1, 1 + nh * nw, d)
        np.save(os.path.join(out_dir, f"{name}_in.npy"), pos[0])
        np.save(os.path.join(out_dir, f"{name}_out.npy"), res[0])
        print(f"{name}: {pos.shape} -> {res.shape}")


if __name__ == "__main__":
    main()
