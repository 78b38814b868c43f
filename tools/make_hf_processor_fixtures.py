#!/usr/bin/env python3
r"""vit-infer: fixtures for transformers' image processors, field by field (issue 25), in
tests/data/hf_processors/.

Each case builds one of the processor classes ViT families ship (ViT / DeiT / CLIP (also AIMv2's) /
Bit (DINOv2's) / Siglip ImageProcessor) in its PIL backend (`*ImageProcessorPil`, what
`from_pretrained` gives in transformers 5.x without torchvision, and `backend="pil"`) with the
fields the case sets, saves it with save_pretrained (the preprocessor_config.json a checkpoint
carries: <case>.json), and runs it on a PNG / JPEG file of an odd size opened with Pillow
(`Image.open`, as a user passes it): <case>.f32 is pixel_values[0], raw little-endian float32
[3, H, W]. tests/test_hf_processors.cpp parses the saved JSON exactly as the loader does, decodes
the file with our decoder and must reproduce every value bit for bit.

The same processor in transformers' torchvision backend (`backend="torchvision"`, the default of
`from_pretrained` when torchvision is installed) is run too; case.json records how far it lies
from the PIL one (max |diff|, in 8-bit levels, and the share of values that differ): README.md
states it.

Fields covered: do_resize (false), size as {height, width} / {shortest_edge} /
{shortest_edge, longest_edge} / a legacy int (square or shortest edge per class), resample 0-5,
do_center_crop / crop_size (smaller and larger than the resize: zero padding), do_rescale /
rescale_factor (1/127.5), do_normalize, image_mean / image_std, do_convert_rgb (transparency:
RGBA, LA, 16-bit RGBA, palette tRNS, grey and RGB tRNS colour keys, composited onto white).

Usage (the fixture venv, tools/make_golden.py --setup):
  .venv-golden/bin/python tools/make_hf_processor_fixtures.py
"""
import io
import json
import os
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(REPO, "tests", "data", "hf_processors")
IMAGES = os.path.join(REPO, "tests", "data", "images")
sys.path.insert(0, HERE)
from make_image_fixtures import natural  # noqa: E402  (the same synthetic photo content)

IMAGENET = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


def transparent_sources():
    """PNGs with transparency of odd sizes, written here (the other sources are tests/data/images)."""
    rng = np.random.default_rng(25)
    out = {}
    rgb = natural(45, 31, 251)
    a = rng.integers(0, 256, (31, 45), dtype=np.uint8)
    a[:4] = 0
    a[-4:] = 255
    out["rgba_45x31.png"] = Image.fromarray(np.dstack([rgb, a]), "RGBA")
    la = np.dstack([rgb[..., 1], a])
    out["la_45x31.png"] = Image.fromarray(la, "LA")
    # Palette with a tRNS shorter than the palette (indices past it are opaque).
    p = Image.fromarray(rgb).quantize(colors=32, method=Image.Quantize.MEDIANCUT)
    trns = bytes(int(v) for v in rng.integers(0, 256, 20))
    p.info["transparency"] = trns
    out["pal_trns_45x31.png"] = (p, dict(transparency=trns))
    # Colour keys: grey and RGB tRNS.
    g = rgb[..., 0].copy()
    g[5:9, 5:20] = 77
    out["gray_trns_45x31.png"] = (Image.fromarray(g, "L"), dict(transparency=77))
    c = rgb.copy()
    c[10:14, 3:30] = (12, 200, 34)
    out["rgb_trns_45x31.png"] = (Image.fromarray(c, "RGB"), dict(transparency=(12, 200, 34)))
    return out


def write_sources():
    files = {}
    for name, v in transparent_sources().items():
        im, kw = v if isinstance(v, tuple) else (v, {})
        b = io.BytesIO()
        im.save(b, "PNG", **kw)
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(b.getvalue())
        files[name] = os.path.join("tests", "data", "hf_processors", name)
    return files


def source_path(files, src):
    return os.path.join(REPO, files[src]) if src in files else os.path.join(IMAGES, src)


def cases():
    """(name, class, kwargs, source). Sizes small: every output at most 64 x 64."""
    return [
        # ViTImageProcessor: bilinear squash to {height, width}; no convert_rgb.
        ("vit_hw", "ViTImageProcessor", dict(size={"height": 40, "width": 48}), "photo_300x200.jpg"),
        ("vit_nearest_up", "ViTImageProcessor", dict(size={"height": 61, "width": 44}, resample=0), "rgb_37x53.png"),
        ("vit_nearest_down", "ViTImageProcessor", dict(size={"height": 37, "width": 51}, resample=0),
         "photo_640x480.jpg"),
        ("vit_lanczos", "ViTImageProcessor", dict(size={"height": 48, "width": 48}, resample=1), "photo_640x480.jpg"),
        ("vit_box", "ViTImageProcessor", dict(size={"height": 45, "width": 33}, resample=4), "photo_300x200.jpg"),
        ("vit_hamming", "ViTImageProcessor", dict(size={"height": 52, "width": 40}, resample=5), "odd_37x53.jpg"),
        ("vit_lanczos_up", "ViTImageProcessor", dict(size={"height": 64, "width": 57}, resample=1), "rgb_37x53.png"),
        # rescale to [-1, 1] by the factor alone (1 / 127.5, minus 1 via the mean): fp64 rescale.
        ("vit_rescale_127", "ViTImageProcessor", dict(size={"height": 32, "width": 32}, rescale_factor=1 / 127.5,
                                                      image_mean=[1.0, 1.0, 1.0], image_std=[1.0, 1.0, 1.0]),
         "photo_300x200.jpg"),
        ("vit_no_rescale_no_norm", "ViTImageProcessor", dict(size={"height": 33, "width": 29}, do_rescale=False,
                                                            do_normalize=False, resample=3), "odd_37x53.jpg"),
        ("vit_legacy_int", "ViTImageProcessor", dict(size=36), "tiny_20x30.png"),
        # DeiTImageProcessor: resize to 256 (here 64) then centre crop 224 (here 56); a crop larger
        # than the resize pads with zeros (odd difference: the extra pixel top / left).
        ("deit_crop", "DeiTImageProcessor", dict(size={"height": 64, "width": 64}, crop_size={"height": 56, "width": 56}),
         "odd_37x53.jpg"),
        ("deit_pad", "DeiTImageProcessor", dict(size={"height": 37, "width": 40}, crop_size={"height": 48, "width": 43}),
         "photo_300x200.jpg"),
        # CLIPImageProcessor (and AIMv2's): shorter side, centre crop, convert_rgb onto white.
        ("clip_rgba", "CLIPImageProcessor", dict(size={"shortest_edge": 40}, crop_size={"height": 40, "width": 40}),
         "rgba_45x31.png"),
        ("clip_longest", "CLIPImageProcessor", dict(size={"shortest_edge": 48, "longest_edge": 56},
                                                    crop_size={"height": 40, "width": 44}), "photo_300x200.jpg"),
        ("clip_legacy_int", "CLIPImageProcessor", dict(size=45, crop_size=39), "odd_37x53.jpg"),
        ("clip_no_resize", "CLIPImageProcessor", dict(do_resize=False, crop_size={"height": 32, "width": 40}),
         "rgb_37x53.png"),
        ("clip_rgba16", "CLIPImageProcessor", dict(size={"shortest_edge": 29}, crop_size={"height": 27, "width": 29}),
         "rgba16_31x23.png"),
        ("clip_no_convert", "CLIPImageProcessor", dict(size={"shortest_edge": 36}, crop_size={"height": 36, "width": 36},
                                                       do_convert_rgb=False), "photo_300x200.jpg"),
        # BitImageProcessor as facebook/dinov2-* publish it (shortest 256, crop 224, ImageNet mean /
        # std), scaled down: 73 -> 64.
        ("bit_dinov2", "BitImageProcessor", dict(size={"shortest_edge": 73}, crop_size={"height": 64, "width": 64},
                                                 **IMAGENET), "photo_640x480.jpg"),
        ("bit_la", "BitImageProcessor", dict(size={"shortest_edge": 48}, crop_size={"height": 40, "width": 40},
                                             **IMAGENET), "la_45x31.png"),
        ("bit_la16", "BitImageProcessor", dict(size={"shortest_edge": 31}, crop_size={"height": 28, "width": 28}),
         "la16_31x23.png"),
        # SiglipImageProcessor: bicubic squash, mean = std = 0.5, convert_rgb.
        ("siglip_pal_trns", "SiglipImageProcessor", dict(size={"height": 48, "width": 48}), "pal_trns_45x31.png"),
        ("siglip_gray_trns", "SiglipImageProcessor", dict(size={"height": 40, "width": 52}), "gray_trns_45x31.png"),
        ("siglip_rgb_trns", "SiglipImageProcessor", dict(size={"height": 36, "width": 36}), "rgb_trns_45x31.png"),
        ("siglip_jpeg", "SiglipImageProcessor", dict(size={"height": 48, "width": 48}), "photo_300x200.jpg"),
    ]


def run(cls_name, kw, path, backend):
    import transformers as T
    cls = getattr(T, cls_name + ("Pil" if backend == "pil" else ""))
    proc = cls(**kw)
    im = Image.open(path)
    out = proc(images=im, return_tensors="np" if backend == "pil" else "pt")["pixel_values"]
    return proc, np.asarray(out[0], dtype=np.float32)


def main():
    import PIL
    import torch
    import torchvision
    import transformers
    os.makedirs(OUT, exist_ok=True)
    files = write_sources()
    meta = {"generator": "tools/make_hf_processor_fixtures.py",
            "versions": {"transformers": transformers.__version__, "Pillow": PIL.__version__,
                         "torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__},
            "cases": []}
    for name, cls_name, kw, src in cases():
        path = source_path(files, src)
        proc, px = run(cls_name, kw, path, "pil")
        with tempfile.TemporaryDirectory() as d:
            proc.save_pretrained(d)
            with open(os.path.join(d, "preprocessor_config.json")) as f:
                saved = json.load(f)
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(saved, f, indent=2, sort_keys=True)
        with open(os.path.join(OUT, name + ".f32"), "wb") as f:
            f.write(np.ascontiguousarray(px).astype("<f4").tobytes())
        entry = {"name": name, "processor": cls_name + "Pil", "fields": kw, "source": os.path.relpath(path, REPO),
                 "config": name + ".json", "f32": name + ".f32", "shape": list(px.shape)}
        try:
            _, tv = run(cls_name, kw, path, "torchvision")
        except Exception as e:  # e.g. resample BOX: torch's interpolate has no such mode
            entry["torchvision"] = {"error": f"{type(e).__name__}: {str(e)[:160]}"}
            print(f"{name:24s} {cls_name:22s} {str(px.shape):14s} torchvision: {type(e).__name__}")
        else:
            assert tv.shape == px.shape, (name, tv.shape, px.shape)
            d = np.abs(tv.astype(np.float64) - px)
            level = 1.0 / 255.0 / float(np.min(proc.image_std)) if proc.do_normalize else 1.0 / 255.0
            if not proc.do_rescale:
                level *= 255.0
            entry["torchvision"] = {"max_abs": float(d.max()), "max_levels": float(d.max() / level),
                                    "frac_differ": float((d > 1e-6).mean())}
            print(f"{name:24s} {cls_name:22s} {str(px.shape):14s} torchvision max {d.max() / level:.2f} levels, "
                  f"{(d > 1e-6).mean() * 100:.1f} % differ")
        meta["cases"].append(entry)
    with open(os.path.join(OUT, "case.json"), "w") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
