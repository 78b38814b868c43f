#!/usr/bin/env python3
r"""What token merging (ToMe, `vit-infer classify --tome R`) does to the numbers, through the shipped
program: the demo model's held-out top-1 (models/demo/heldout: 300 PNGs with their labels,
tools/train_demo.py) at several r, its agreement with r = 0 and the mean probability of the r = 0
class; and, for the tower fixtures (random-initialised DINOv2 / CLIP / SigLIP towers of
tests/data/golden_families), the cosine between each image's embedding with and without merging.
Prints the markdown tables of docs/ACCURACY.md and writes the numbers as JSON.

Usage:
  python3 tools/tome_accuracy.py [--cli build/vit-infer] [--precision fp32,int8] [--json OUT.json]
(int8 without a calibration file next to the model runs with dynamic per-token activation scales.)
Needs numpy (the project's .venv has it).
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "models" / "demo"
TOWERS = ["fam_dinov2_reg4", "hf_dinov2_reg", "fam_clip", "hf_clip", "fam_siglip_map", "hf_siglip_vision"]


def classify(cli, model, inputs, tome, precision, out_flag, tmp):
    out = Path(tmp) / f"out_{tome}.npy"
    cmd = [str(cli), "classify", "--model", str(model), "--precision", precision, "--tome", str(tome),
           "--no-progress", "-b", "32", out_flag, str(out)] + [str(i) for i in inputs]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return np.load(out)


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def tokens(n, prefix, depth, r):
    t = [n]
    for _ in range(depth):
        t.append(t[-1] - min(r, max(0, t[-1] - prefix) // 2))
    return t


def demo_rows(cli, precision, rs, tmp):
    doc = json.loads((DEMO / "heldout" / "timm_predictions.json").read_text())
    entries = doc["entries"]
    files = [DEMO / "heldout" / e["file"] for e in entries]
    labels = np.array([e["label"] for e in entries])
    lst = Path(tmp) / "heldout.txt"
    lst.write_text("".join(f"{f}\n" for f in files))
    cfg = json.loads((DEMO / "config.json").read_text())["model_args"]
    n = (cfg["img_size"][0] // cfg["patch_size"]) * (cfg["img_size"][1] // cfg["patch_size"]) + 1
    base = None
    rows = []
    for r in rs:
        logits = classify(cli, DEMO, [f"@{lst}"], r, precision, "--logits-out", tmp)
        pred = logits.argmax(axis=1)
        if base is None:
            base = pred
        p = softmax(logits)
        rows.append({"r": r, "tokens": tokens(n, 1, cfg["depth"], r), "top1": float((pred == labels).mean()),
                     "agree_r0": float((pred == base).mean()),
                     "p_r0_class": float(p[np.arange(len(base)), base].mean()), "images": len(files)})
    return rows


def tower_rows(cli, precision, rs, tmp):
    out = []
    for name in TOWERS:
        d = REPO / "tests" / "data" / "golden_families" / name
        case = json.loads((d / "case.json").read_text())
        model = d / case["model"]
        x = d / "input.npy"
        ref = None
        for r in rs:
            try:
                emb = classify(cli, model, [x], r, precision, "--embeddings-out", tmp)
            except subprocess.CalledProcessError as e:  # r past this model's limit
                if b"outside 0.." in e.stderr:
                    continue
                raise
            if ref is None:
                ref = emb
                continue
            cos = (emb * ref).sum(1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1))
            out.append({"tower": name, "r": r, "images": int(len(cos)), "cos_mean": float(cos.mean()),
                        "cos_min": float(cos.min())})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", type=Path, default=REPO / "build" / "vit-infer")
    ap.add_argument("--precision", default="fp32,int8", help="comma-separated; the towers run the first")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    precisions = args.precision.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        demo = {p: demo_rows(args.cli, p, [0, 2, 4, 8, 12, 16, 24, 32], tmp) for p in precisions}
        towers = tower_rows(args.cli, precisions[0], [0, 1, 2, 4, 8], tmp)
    first = demo[precisions[0]]
    print(f"demo model ({first[0]['images']} held-out images; top-1, and agreement with the same precision at r = 0):\n")
    print("| r | tokens per block | " + " | ".join(f"{p} top-1 | {p} agrees with r=0" for p in precisions) + " |")
    print("|---|---|" + "---|---|" * len(precisions))
    for i, row in enumerate(first):
        cells = " | ".join(f"{100 * demo[p][i]['top1']:.2f} % | {100 * demo[p][i]['agree_r0']:.2f} %" for p in precisions)
        print(f"| {row['r']} | {' > '.join(map(str, row['tokens']))} | {cells} |")
    print(f"\ntowers (embedding cosine vs r = 0, {precisions[0]}):\n")
    print("| tower | r | images | cosine mean | cosine min |")
    print("|---|---|---|---|---|")
    for row in towers:
        print(f"| {row['tower']} | {row['r']} | {row['images']} | {row['cos_mean']:.6f} | {row['cos_min']:.6f} |")
    if args.json:
        args.json.write_text(json.dumps({"precisions": precisions, "demo": demo, "towers": towers,
                                         "towers_precision": precisions[0]}, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
