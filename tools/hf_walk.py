#!/usr/bin/env python3
r"""Walks the HuggingFace vision classes vit-infer loads and runs each from images, as a user would.

For each class (ViT, DeiT + WithTeacher, Dinov2 / WithRegisters / ForImageClassification,
CLIPVision (+WithProjection), CLIPModel, SiglipVision, SiglipModel, Aimv2Vision, Siglip2Vision):
  1. builds it with transformers' own class from a small config (random weights, every parameter
     re-randomised: tools/make_golden.py randomize), at the sizes its family publishes where they
     matter (DINOv2: config image_size 518 beside a BitImageProcessor of shortest_edge 256 and a
     224 crop, as facebook/dinov2-* ship), and saves it with save_pretrained together with its
     image processor (the class the family ships, PIL backend, save_pretrained):
     model.safetensors + config.json + preprocessor_config.json;
  2. makes PNG and JPEG photos of odd sizes (and a PNG with transparency);
  3. the reference: each image opened with Pillow, through the saved processor (its PIL backend,
     reloaded from the directory) to pixel_values, then the model in float64 (transformers' own
     forward at the processor's size: DINOv2 interpolates its position table on every forward);
  4. ours: `vit-infer classify` on the image files (CPU, fp32: our decoder and our port of the
     processor) and on the processor's own pixel arrays (.npy), logits and embeddings out;
  5. a match from images is max |ours - ref| <= 1e-4 x max |ref| on the embeddings (and logits)
     with the same top-1 class per image and the same nearest neighbour (cosine, among the
     images) per image; from the pixel arrays <= 1e-6 x max |ref|.
Writes docs/hf_walk.md (one row per class) and the same as JSON.

Usage (the venv of tools/make_golden.py --setup; a built vit-infer):
  .venv-golden/bin/python tools/hf_walk.py [--vit build/vit-infer] [--filter REGEX]
      [--out docs/hf_walk.md] [--json benchmarks/results/hf-walk.json] [--keep DIR]
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_golden as mg  # noqa: E402  (randomize, the venv's torch / transformers)
from make_image_fixtures import natural  # noqa: E402
from walk_common import classify, first_error, fmt_err, rel_err, run_meta, walk_args, write_report  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TOL_IMAGES = 1e-4
TOL_ARRAYS = 1e-6
SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
TEXT_TINY = dict(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 max_position_embeddings=16)
IMAGENET = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


def images(d: Path):
    """PNG and JPEG photos of odd sizes (one PNG with transparency) -> their paths."""
    from PIL import Image
    out = []
    for i, (w, h, fmt) in enumerate([(301, 227, "png"), (180, 260, "png"), (257, 193, "jpg"), (199, 311, "jpg"),
                                     (97, 150, "png"), (640, 427, "jpg")]):
        rgb = natural(w, h, 2500 + i)
        p = d / f"img{i}_{w}x{h}.{fmt}"
        if i == 4:  # transparency: composited onto white by the processors with do_convert_rgb
            a = np.full((h, w), 255, np.uint8)
            a[: h // 3] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
            Image.fromarray(np.dstack([rgb, a]), "RGBA").save(p)
        elif fmt == "png":
            Image.fromarray(rgb).save(p)
        else:
            Image.fromarray(rgb).save(p, quality=90)
        out.append(p)
    return out


def classes():
    """name -> (model class, config factory, processor class name, processor kwargs, head)."""
    import transformers as T

    def deit():
        return T.DeiTConfig(image_size=64, patch_size=16, num_labels=10, **SMALL)

    def dinov2(**kw):  # as published: image_size 518 at patch 14 (37 x 37 table)
        return T.Dinov2Config(image_size=518, patch_size=14, mlp_ratio=2, hidden_size=64, num_hidden_layers=2,
                              num_attention_heads=4, **kw)

    def dinov2_reg(**kw):
        return T.Dinov2WithRegistersConfig(image_size=518, patch_size=14, mlp_ratio=2, hidden_size=64,
                                           num_hidden_layers=2, num_attention_heads=4, num_register_tokens=4, **kw)

    def clip_vision(**kw):
        return T.CLIPVisionConfig(image_size=64, patch_size=16, **SMALL, **kw)

    def siglip_vision():
        return T.SiglipVisionConfig(image_size=64, patch_size=16, **SMALL)

    bit = ("BitImageProcessor", dict(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, **IMAGENET))
    clip = ("CLIPImageProcessor", dict(size={"shortest_edge": 64}, crop_size={"height": 64, "width": 64}))
    siglip = ("SiglipImageProcessor", dict(size={"height": 64, "width": 64}))
    vit = ("ViTImageProcessor", dict(size={"height": 64, "width": 64}))
    deit_p = ("DeiTImageProcessor", dict(size={"height": 73, "width": 73}, crop_size={"height": 64, "width": 64}))
    return {
        "ViTModel": (T.ViTModel, lambda: T.ViTConfig(image_size=64, patch_size=16, **SMALL), *vit, "cls"),
        "ViTForImageClassification": (T.ViTForImageClassification,
                                      lambda: T.ViTConfig(image_size=64, patch_size=16, num_labels=10, **SMALL), *vit,
                                      "vit_cls"),
        "DeiTModel": (T.DeiTModel, deit, *deit_p, "cls"),
        "DeiTForImageClassification": (T.DeiTForImageClassification, deit, *deit_p, "deit_cls"),
        "DeiTForImageClassificationWithTeacher": (T.DeiTForImageClassificationWithTeacher, deit, *deit_p, "deit_teacher"),
        "Dinov2Model": (T.Dinov2Model, dinov2, *bit, "pooler"),
        "Dinov2WithRegistersModel": (T.Dinov2WithRegistersModel, dinov2_reg, *bit, "pooler"),
        "Dinov2ForImageClassification": (T.Dinov2ForImageClassification, lambda: dinov2(num_labels=10), *bit,
                                         "dinov2_cls"),
        "Dinov2WithRegistersForImageClassification": (T.Dinov2WithRegistersForImageClassification,
                                                      lambda: dinov2_reg(num_labels=10), *bit, "dinov2_cls"),
        "CLIPVisionModel": (T.CLIPVisionModel, clip_vision, *clip, "pooler"),
        "CLIPVisionModelWithProjection": (T.CLIPVisionModelWithProjection, lambda: clip_vision(projection_dim=24),
                                          *clip, "image_embeds"),
        "CLIPModel": (T.CLIPModel, lambda: T.CLIPConfig(vision_config=dict(image_size=64, patch_size=16, **SMALL),
                                                        text_config=TEXT_TINY, projection_dim=24), *clip,
                      "image_features"),
        "SiglipVisionModel": (T.SiglipVisionModel, siglip_vision, *siglip, "pooler"),
        "SiglipModel": (T.SiglipModel, lambda: T.SiglipConfig(vision_config=dict(image_size=64, patch_size=16, **SMALL),
                                                              text_config=TEXT_TINY), *siglip, "image_features"),
        "Aimv2VisionModel": (T.Aimv2VisionModel, lambda: T.Aimv2VisionConfig(image_size=64, patch_size=16, **SMALL),
                             *clip, "pooler"),
        "Siglip2VisionModel": (T.Siglip2VisionModel, lambda: T.Siglip2VisionConfig(patch_size=16, num_patches=16,
                                                                                  **SMALL),
                               "Siglip2ImageProcessor", dict(max_num_patches=16, patch_size=16), "naflex"),
    }


def reference(model, head, px):
    """float64 (logits or None, embeddings) of `model` on pixel_values px, as vit-infer defines each
    class's outputs (README: the HF class table)."""
    torch = mg.torch
    m = model.double().eval()
    x = torch.from_numpy(px).double()
    with torch.no_grad():
        if head == "cls":  # bare ViTModel / DeiTModel: the normed cls row (not the tanh pooler)
            return None, m(pixel_values=x).last_hidden_state[:, 0]
        if head == "vit_cls":
            last = m.vit(pixel_values=x).last_hidden_state
            return m(pixel_values=x).logits, last[:, 0]
        if head == "deit_cls":
            last = m.deit(pixel_values=x).last_hidden_state
            return m(pixel_values=x).logits, last[:, 0]
        if head == "deit_teacher":
            last = m.deit(pixel_values=x).last_hidden_state
            return m(pixel_values=x).logits, (last[:, 0] + last[:, 1]) / 2
        if head == "pooler":
            return None, m(pixel_values=x).pooler_output
        if head == "image_embeds":
            return None, m(pixel_values=x).image_embeds
        if head == "image_features":
            return None, m.get_image_features(pixel_values=x).pooler_output
        if head == "dinov2_cls":
            base = m.dinov2 if hasattr(m, "dinov2") else m.dinov2_with_registers
            return m(pixel_values=x).logits, base(pixel_values=x).last_hidden_state[:, 0]
    raise ValueError(head)


def nearest(e):
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    s = e @ e.T
    np.fill_diagonal(s, -np.inf)
    return s.argmax(1)


def walk_one(name, spec, vit, seed, work: Path, imgs):
    import transformers as T
    from PIL import Image
    torch = mg.torch
    cls, make_cfg, proc_name, proc_kw, head = spec
    row = {"class": name, "processor": proc_name + "Pil", "run_size": "", "result": "", "images_err": None,
           "arrays_err": None, "torchvision_err": None, "top1": "", "neighbours": "", "said": "", "message": "", "seconds": 0.0}
    t0 = time.time()
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    mdir = d / "model"
    try:
        torch.manual_seed(seed)
        model = cls(make_cfg())
        mg.randomize(model, seed)
        model.save_pretrained(str(mdir), safe_serialization=True)
        getattr(T, proc_name + "Pil")(**proc_kw).save_pretrained(str(mdir))
        ref_model = cls.from_pretrained(str(mdir)).eval()
        proc = T.AutoImageProcessor.from_pretrained(str(mdir), backend="pil")
    except Exception as e:  # noqa: BLE001  (transformers cannot build / save this class here)
        row["result"] = "transformers failed"
        row["message"] = f"{type(e).__name__}: {first_error(str(e))}"[:300]
        return row
    if head == "naflex":
        px = None
    else:
        def opened(p):
            # A processor without do_convert_rgb (ViT, DeiT) refuses an RGBA image (4 channels);
            # vit-infer takes it as Pillow's convert("RGB"), which is what it is given then.
            im = Image.open(p)
            return im if proc.do_convert_rgb or im.mode == "RGB" else im.convert("RGB")

        px = np.concatenate([np.asarray(proc(images=opened(p), return_tensors="np")["pixel_values"],
                                        dtype=np.float32) for p in imgs])
        # transformers' default backend (torchvision, when installed) on the same images: how far
        # its outputs lie from the PIL backend's, in the same float64 model.
        tv_proc = T.AutoImageProcessor.from_pretrained(str(mdir), backend="torchvision")
        tv_px = np.concatenate([tv_proc(images=opened(p), return_tensors="pt")["pixel_values"].numpy()
                                for p in imgs]).astype(np.float32)
        row["run_size"] = f"{px.shape[2]}x{px.shape[3]}"
        logits, emb = reference(ref_model, head, px)
        logits = None if logits is None else logits.numpy()
        emb = emb.numpy()
        tv_logits, tv_emb = reference(ref_model, head, tv_px)
        row["torchvision_err"] = rel_err(tv_emb.numpy(), emb)
        if logits is not None:
            row["torchvision_err"] = max(row["torchvision_err"], rel_err(tv_logits.numpy(), logits))
        np.save(d / "pixels.npy", px)
    ours_emb, ours_logits, r = classify(vit, mdir, imgs, d, "images", head != "naflex" and logits is not None)
    said = [ln.strip() for ln in r.stderr.splitlines() if "preprocess" in ln or "running at" in ln
            or "interpolat" in ln]
    row["said"] = " / ".join(said).replace(str(d) + "/", "").replace("vit-infer: warning: ", "")[:300]
    if ours_emb is None:
        row["result"] = "refused"
        row["message"] = first_error(r.stderr).replace(str(mdir) + "/", "")[:300]
        row["seconds"] = round(time.time() - t0, 1)
        return row
    if px is None:
        row["result"] = "ran (no reference)"
        row["seconds"] = round(time.time() - t0, 1)
        return row
    a_emb, a_logits, ra = classify(vit, mdir, [d / "pixels.npy"], d, "arrays", logits is not None)
    if a_emb is None:
        row["result"] = "refused (arrays)"
        row["message"] = first_error(ra.stderr)[:300]
        return row
    row["images_err"] = rel_err(ours_emb, emb)
    row["arrays_err"] = rel_err(a_emb, emb)
    if logits is not None:
        row["images_err"] = max(row["images_err"], rel_err(ours_logits, logits))
        row["arrays_err"] = max(row["arrays_err"], rel_err(a_logits, logits))
        same_top1 = int((ours_logits.argmax(1) == logits.argmax(1)).sum())
        row["top1"] = f"{same_top1}/{len(imgs)}"
    else:
        same_top1 = len(imgs)
    same_nn = int((nearest(ours_emb) == nearest(emb)).sum())
    row["neighbours"] = f"{same_nn}/{len(imgs)}"
    ok = (row["images_err"] <= TOL_IMAGES and row["arrays_err"] <= TOL_ARRAYS and same_top1 == len(imgs)
          and same_nn == len(imgs))
    row["result"] = "match" if ok else "MISMATCH"
    row["seconds"] = round(time.time() - t0, 1)
    return row


def write_table(rows, meta, args):
    intro = (
        f"Made by `tools/hf_walk.py` ({meta['when']}, transformers {meta['transformers']}, torch {meta['torch']}, "
        f"Pillow {meta['pillow']}, vit-infer at {meta['commit']}, {meta['cpu']}). Each class is built by transformers "
        "(random weights, 2 layers, D 64), saved with save_pretrained beside the image processor its family ships "
        "(PIL backend, save_pretrained), and run on six photos of odd sizes (PNG 301x227, 180x260, 97x150 with "
        "transparency; JPEG 257x193, 199x311, 640x427). Reference: each image through the saved processor "
        "(`AutoImageProcessor.from_pretrained(dir, backend=\"pil\")`) and the model in float64. Ours: "
        "`vit-infer classify` (CPU fp32) on the image files, and on the processor's own pixel arrays (.npy). "
        f"A match: images <= {TOL_IMAGES:g} and arrays <= {TOL_ARRAYS:g} of max |ref| (embeddings and logits), "
        "the same top-1 class and the same nearest neighbour (cosine, among the six) for every image. "
        "'torchvision backend vs PIL': transformers' own outputs with the processor's torchvision backend (what "
        "`from_pretrained` picks when torchvision is installed) against its PIL backend, same float64 model, same "
        "scale. The processors without do_convert_rgb (ViT, DeiT) get the transparent PNG as Pillow's "
        "convert(\"RGB\") (transformers refuses 4 channels there).")
    columns = ["class", "processor", "run size", "result", "from images", "from arrays", "top-1 same",
               "neighbour same", "torchvision backend vs PIL", "what vit-infer said", "message"]
    write_report(rows, meta, args.out, args.json, "transformers' vision classes through vit-infer, from images", intro,
                 columns, lambda r: [f"`{r['class']}`", r["processor"], r["run_size"], r["result"],
                                     fmt_err(r["images_err"]), fmt_err(r["arrays_err"]), r["top1"], r["neighbours"],
                                     fmt_err(r["torchvision_err"]), r["said"], r["message"]])


def main():
    ap = walk_args(__doc__.split("\n")[0], "hf_walk.md", "hf-walk.json", 2500)
    args = ap.parse_args()
    mg._imports()
    import PIL
    import transformers
    meta = run_meta(transformers=transformers.__version__, torch=mg.torch.__version__, pillow=PIL.__version__)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hf-walk-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        imgs = images(work)
        for i, (name, spec) in enumerate(classes().items()):
            if args.filter and not re.search(args.filter, name):
                continue
            row = walk_one(name, spec, args.vit, args.seed + i, work, imgs)
            rows.append(row)
            print(f"{name}: {row['result']} images {fmt_err(row['images_err'])} arrays {fmt_err(row['arrays_err'])} "
                  f"top1 {row['top1']} nn {row['neighbours']} | {row['said'][:100]} | {row['message'][:150]}",
                  flush=True)
    write_table(rows, meta, args)
    return 1 if any(r["result"] == "MISMATCH" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
