#!/usr/bin/env python3
"""int8 accuracy of vit-infer beside OpenVINO + NNCF INT8 (docs/ACCURACY.md makes its tables with this).

  demo    models/demo (tools/train_demo.py): top-1 on its 300 held-out images, fp32 vs int8 (static,
          calibrated on 32 validation images of train_demo's generator, never held out; dynamic;
          naive per-tensor without smoothing) beside NNCF INT8 (ModelType.TRANSFORMER, the same 32
          images through timm's eval transform) of the same timm model.
  towers  random-initialised timm towers (DINOv2-S/14 with registers, CLIP B/16, SigLIP B/16 with
          its attention-pool head, ViT-S/16) with injected outlier channels: --outliers LayerNorm
          gamma channels of every block's norm1 / norm2 scaled by x20..x50, as trained ViTs grow
          them. Embedding cosine (pre-logits, the pooled features) against timm fp32 over --images
          random normalised images, calibrated on --images others: ours (static, dynamic, naive)
          and NNCF's.

Runs in a venv with torch, timm, openvino, nncf (the golden venv); our engine through the CLI:

    /work/.venv-golden/bin/python tools/int8_accuracy.py --cli build/vit-infer --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
TOWERS = [  # (name, timm architecture, extra create_model kwargs)
    ("DINOv2-S/14 + 4 registers", "vit_small_patch14_reg4_dinov2", {"img_size": 224}),
    ("CLIP B/16 (quick-GELU-free timm tower)", "vit_base_patch16_clip_224", {}),
    ("SigLIP B/16 (map head)", "vit_base_patch16_siglip_224", {}),
    ("ViT-S/16", "vit_small_patch16_224", {}),
]


def log(m):
    print(f"[int8-accuracy] {m}", file=sys.stderr, flush=True)


def cli(args, *a):
    r = subprocess.run([args.cli, *map(str, a)], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"vit-infer {' '.join(map(str, a))}: {r.stderr[-1500:]}")
    return r


def ours(args, model_dir, inputs, precision, cal=None, env=None, out="embeddings"):
    """Our engine's embeddings (or logits) of `inputs` (a .npy path or a directory)."""
    with tempfile.TemporaryDirectory() as t:
        f = Path(t) / "o.npy"
        cmd = [args.cli, "classify", "--model", str(model_dir), "--precision", precision, "-t", str(args.threads),
               f"--{out}-out", str(f), "--no-progress", "-b", "8", str(inputs)]
        if cal is not None:
            cmd[cmd.index("--precision"):cmd.index("--precision")] = ["--int8-calibration", cal]
        r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **(env or {})))
        if r.returncode:
            raise RuntimeError(r.stderr[-1500:])
        return np.load(f)


def nncf_model(model, calib):
    import nncf
    import openvino as ov

    om = ov.convert_model(model, example_input=torch.from_numpy(calib[:1]))
    qm = nncf.quantize(om, nncf.Dataset([calib[i:i + 1] for i in range(len(calib))]),
                       model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calib))
    compiled = ov.Core().compile_model(qm, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda x: np.concatenate([compiled(x[i:i + 1])[0] for i in range(len(x))])


def cosine(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def demo(args, tmp):
    import timm
    from safetensors.torch import load_file

    sys.path.insert(0, str(ROOT / "tools"))
    import train_demo as td

    d = ROOT / "models" / "demo"
    cfg = json.loads((d / "config.json").read_text())
    model = timm.create_model(cfg["architecture"], pretrained=False, **cfg["model_args"]).eval()
    model.load_state_dict(load_file(str(d / "model.safetensors")))
    tf, _ = td.eval_transform(model)  # the demo model's own eval transform (64 px)
    truth = {Path(e["file"]).name: e["label"] for e in json.loads((d / "heldout" / "timm_predictions.json").read_text())["entries"]}
    files = sorted((d / "heldout").glob("*.png"))
    # 32 validation images (train_demo's validation split seed, never held out) for every calibration.
    cal_dir = tmp / "demo_calib"
    cal_dir.mkdir()
    labels = td.balanced_labels(td.SEED_VAL, 32)
    for i, lab in enumerate(labels):
        td.render(td.SEED_VAL, i, int(lab)).save(cal_dir / f"val_{i:03d}.png")
    from PIL import Image

    calib = np.stack([tf(Image.open(p).convert("RGB")).numpy() for p in sorted(cal_dir.glob("*.png"))])
    x = np.stack([tf(Image.open(p).convert("RGB")).numpy() for p in files])
    y = np.array([truth[p.name] for p in files])
    cal_file = tmp / "demo_int8_calibration.json"
    cli(args, "calibrate", "--model", d, "--images", cal_dir, "--out", cal_file, "--no-progress")
    rows = {}
    with torch.inference_mode():
        rows["timm fp32 (PyTorch)"] = model(torch.from_numpy(x)).numpy()
    rows["vit-infer fp32"] = ours(args, d, d / "heldout", "fp32", out="logits")
    rows["vit-infer int8 static (SmoothQuant + fp32 outlier channels)"] = ours(args, d, d / "heldout", "int8", str(cal_file), out="logits")
    rows["vit-infer int8 dynamic (per token, no calibration)"] = ours(args, d, d / "heldout", "int8", "none", out="logits")
    rows["vit-infer int8 naive (per tensor, no smoothing)"] = ours(args, d, d / "heldout", "int8", str(cal_file),
                                                                  {"VIT_INT8_NO_SMOOTHING": "1"}, out="logits")
    rows["OpenVINO + NNCF INT8 (transformer preset)"] = nncf_model(model, calib)(x)
    ref = rows["timm fp32 (PyTorch)"]
    return {k: {"top1": float(np.mean(v.argmax(1) == y)), "agree_with_fp32": float(np.mean(v.argmax(1) == ref.argmax(1))),
                "n": int(len(y))} for k, v in rows.items()}


def towers(args, tmp):
    import timm
    from timm.models._hub import save_for_hf

    rng = np.random.default_rng(7)
    x = (rng.standard_normal((args.images, 3, 224, 224)) * 1.0).astype(np.float32)
    calib = (rng.standard_normal((args.images, 3, 224, 224)) * 1.0).astype(np.float32)
    np.save(tmp / "x.npy", x)
    np.save(tmp / "calib.npy", calib)
    out = {}
    for name, arch, kw in TOWERS:
        log(name)
        torch.manual_seed(0)
        model = timm.create_model(arch, pretrained=False, num_classes=0, **kw).eval()
        g = torch.Generator().manual_seed(1)
        D = model.embed_dim
        with torch.no_grad():
            for blk in model.blocks:
                for norm in (blk.norm1, blk.norm2):
                    ch = torch.randperm(D, generator=g)[: args.outliers]
                    norm.weight[ch] *= 20 + 30 * torch.rand(len(ch), generator=g)
        d = tmp / arch
        save_for_hf(model, d, safe_serialization=True)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        cal_file = tmp / f"{arch}_cal.json"
        cli(args, "calibrate", "--model", d, "--images", tmp / "calib.npy", "--out", cal_file, "--no-progress",
            "-t", args.threads)
        r = {"vit-infer fp32": cosine(ours(args, d, tmp / "x.npy", "fp32"), ref),
             "vit-infer int8 static": cosine(ours(args, d, tmp / "x.npy", "int8", str(cal_file)), ref),
             "vit-infer int8 dynamic": cosine(ours(args, d, tmp / "x.npy", "int8", "none"), ref),
             "vit-infer int8 naive per-tensor": cosine(ours(args, d, tmp / "x.npy", "int8", str(cal_file),
                                                            {"VIT_INT8_NO_SMOOTHING": "1"}), ref)}
        try:
            r["OpenVINO + NNCF INT8"] = cosine(nncf_model(model, calib)(x), ref)
        except Exception as e:  # noqa: BLE001
            r["OpenVINO + NNCF INT8"] = f"failed: {str(e)[:200]}"
        out[name] = r
        log(json.dumps(r))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", default=str(ROOT / "build" / "vit-infer"))
    p.add_argument("--json", default=None)
    p.add_argument("--what", default="demo,towers")
    p.add_argument("--images", type=int, default=8, help="tower evaluation (and calibration) images")
    p.add_argument("--outliers", type=int, default=3, help="outlier channels per LayerNorm")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    res = {"cpu": next((l.split(":")[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
           "loadavg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        if "demo" in args.what:
            res["demo"] = demo(args, tmp)
            log(json.dumps(res["demo"], indent=1))
        if "towers" in args.what:
            res["towers"] = towers(args, tmp)
    res["loadavg_end"] = os.getloadavg()
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
