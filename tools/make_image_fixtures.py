#!/usr/bin/env python3
"""vit-infer: generate the image decoding / preprocessing fixtures in tests/data/images.

Run with the tools venv:  /work/venv-tools/bin/python tools/make_image_fixtures.py
Writes small test images (PNG in every colour type / bit depth, JPEG baseline, progressive,
grey, CMYK), broken files, and the references the C++ tests compare against:
  *.rgb   Pillow's Image.open(f).convert("RGB") pixels, raw uint8 [h, w, 3]
  *.u8    resized / cropped uint8 images [h, w, 3]
  *.f32   preprocessed model inputs, raw little-endian float32 [3, H, W]
and manifest.json describing every case. Deterministic (fixed seeds).
"""
import io
import json
import math
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "images")


def natural(w, h, seed):
    """Natural-ish RGB content: gradients, soft noise, a few hard-edged shapes. [h, w, 3] u8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([255 * x / max(w - 1, 1), 255 * y / max(h - 1, 1),
                    127 + 100 * np.sin((x + 2 * y) / max(w, h) * 6.0)], -1)
    img += rng.normal(0, 18, (h, w, 3))
    for _ in range(6):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.05, 0.3) * min(w, h)
        col = rng.uniform(0, 255, 3)
        if rng.random() < 0.5:
            m = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        else:
            m = (abs(x - cx) < r) & (abs(y - cy) < 0.6 * r)
        img[m] = 0.3 * img[m] + 0.7 * col
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ---- hand-written PNG encoder (for what Pillow cannot write: 16-bit RGB/RGBA/LA, Adam7) ----
def _chunk(typ, data):
    return struct.pack(">I", len(data)) + typ + data + struct.pack(">I", zlib.crc32(typ + data) & 0xffffffff)


def png_bytes(samples, bit_depth, color_type, interlace=False, plte=None, ihdr_wh=None):
    """samples: [h, w, c] array of sample values (uint8 or uint16); big-endian packing."""
    h, w = samples.shape[:2]
    dt = ">u2" if bit_depth == 16 else "u1"

    def rows_of(sub):
        out = b""
        for row in sub:
            out += b"\x00" + row.astype(dt).tobytes()
        return out

    if not interlace:
        raw = rows_of(samples)
    else:
        raw = b""
        for xs, ys, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
                               (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
            sub = samples[ys::dy, xs::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += rows_of(sub)
    iw, ih = ihdr_wh if ihdr_wh else (w, h)
    out = b"\x89PNG\r\n\x1a\n"
    out += _chunk(b"IHDR", struct.pack(">IIBBBBB", iw, ih, bit_depth, color_type, 0, 0, 1 if interlace else 0))
    if plte is not None:
        out += _chunk(b"PLTE", plte)
    out += _chunk(b"IDAT", zlib.compress(raw, 9))
    out += _chunk(b"IEND", b"")
    return out


def fnv1a64(b):
    h = 0xcbf29ce484222325
    arr = np.frombuffer(b, np.uint8)
    for v in arr.tolist():
        h = ((h ^ v) * 0x100000001b3) & 0xffffffffffffffff
    return h


def pil_rgb(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return np.asarray(im.convert("RGB")), im.mode


class Writer:
    def __init__(self):
        self.manifest = {"decode": [], "resize": [], "timm": [], "hf": [], "broken": []}
        self.rgb = {}  # file -> Pillow-decoded RGB

    def put(self, name, data):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)

    def image(self, name, data, store_ref=True):
        """store_ref False: keep only an FNV-1a 64 hash of the decoded pixels (size budget)."""
        self.put(name, data)
        rgb, mode = pil_rgb(data)
        self.rgb[name] = rgb
        entry = {"file": name, "w": rgb.shape[1], "h": rgb.shape[0], "pillow_mode": mode,
                 "fnv1a64": f"{fnv1a64(np.ascontiguousarray(rgb).tobytes()):016x}"}
        if store_ref:
            entry["ref"] = name.replace(".", "_") + ".rgb"
            self.put(entry["ref"], np.ascontiguousarray(rgb).tobytes())
        self.manifest["decode"].append(entry)


def jpeg(arr_or_im, **kw):
    im = arr_or_im if isinstance(arr_or_im, Image.Image) else Image.fromarray(arr_or_im)
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    return b.getvalue()


def png(im, **kw):
    b = io.BytesIO()
    im.save(b, "PNG", **kw)
    return b.getvalue()


def hf_crop_cases(W):
    """HF CLIPImageProcessor / BitImageProcessor (DINOv2), their Pillow backends: shorter side to
    size.shortest_edge (bicubic), centre crop to crop_size with offsets (side - crop) // 2 (odd
    differences: a floor, not torchvision's round), x/255, mean / std. Manifest "hf_crop"."""
    from transformers import BitImageProcessorPil, CLIPImageProcessorPil
    W.manifest["hf_crop"] = []

    def case(cls, src, edge, crop, **kw):
        proc = cls(size={"shortest_edge": edge}, crop_size={"height": crop[0], "width": crop[1]}, **kw)
        im = Image.fromarray(W.rgb[src])
        t = np.asarray(proc(images=im, return_tensors="np")["pixel_values"])[0]
        assert t.shape == (3, crop[0], crop[1]), t.shape
        tag = f"hfcrop_{cls.__name__}_{src.replace('.', '_')}_{edge}_{crop[0]}x{crop[1]}"
        W.put(tag + ".f32", np.ascontiguousarray(t).astype("<f4").tobytes())
        W.manifest["hf_crop"].append({"src": src, "shortest_edge": edge, "input_h": crop[0], "input_w": crop[1],
                                      "interpolation": "bicubic", "mean": [float(v) for v in proc.image_mean],
                                      "std": [float(v) for v in proc.image_std], "f32": tag + ".f32",
                                      "processor": cls.__name__})

    imagenet = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    case(CLIPImageProcessorPil, "photo_300x200.jpg", 64, (64, 64))  # landscape: 96x64, crop 16 px off each side
    case(CLIPImageProcessorPil, "rgb_37x53.png", 48, (48, 48))  # portrait upscale, 48x68: odd offset 10
    case(BitImageProcessorPil, "photo_640x480.jpg", 73, (64, 64), **imagenet)  # DINOv2: 73 -> 64, odd offsets
    case(BitImageProcessorPil, "odd_37x53.jpg", 57, (48, 40), **imagenet)  # non-square crop


def update_hf_crop():
    """Adds the hf_crop cases to the committed fixtures (sources decoded from the files there)."""
    W = Writer()
    with open(os.path.join(OUT, "manifest.json")) as f:
        W.manifest = json.load(f)
    for e in W.manifest["decode"]:
        with open(os.path.join(OUT, e["file"]), "rb") as f:
            W.rgb[e["file"]] = pil_rgb(f.read())[0]
    hf_crop_cases(W)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(W.manifest, f, indent=1)


def main():
    if "--only-hf-crop" in sys.argv:
        return update_hf_crop()
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    W = Writer()
    rng = np.random.default_rng(1234)

    # ---- PNG, every colour type / depth Pillow reads ----------------------------------------
    a = natural(37, 53, 1)
    W.image("rgb_37x53.png", png(Image.fromarray(a)))
    rgba = np.dstack([natural(53, 37, 2), rng.integers(0, 256, (37, 53), dtype=np.uint8)])
    W.image("rgba_53x37.png", png(Image.fromarray(rgba, "RGBA")))
    pal = Image.fromarray(natural(64, 48, 3)).quantize(200)
    W.image("pal_64x48.png", png(pal, transparency=5))  # tRNS present, ignored by convert
    pal4 = Image.fromarray(natural(33, 21, 4)).quantize(16)
    W.image("pal4_33x21.png", png(pal4, bits=4))
    # Palette shorter than the indices used: Pillow reads missing entries as black.
    idx = rng.integers(0, 8, (19, 23, 1), dtype=np.uint8)
    W.image("palshort_23x19.png", png_bytes(idx, 8, 3, plte=bytes(rng.integers(0, 256, 12, dtype=np.uint8))))
    g = natural(45, 31, 5)[..., 1]
    W.image("gray_45x31.png", png(Image.fromarray(g, "L")))
    W.image("gray1_29x17.png", png(Image.fromarray(g[:17, :29] > 128)))
    g2 = rng.integers(0, 4, (13, 27, 1), dtype=np.uint8)
    W.image("gray2_27x13.png", png_bytes(g2, 2, 0))
    la = np.dstack([natural(40, 30, 6)[..., 0], rng.integers(0, 256, (30, 40), dtype=np.uint8)])
    W.image("la_40x30.png", png(Image.fromarray(la, "LA")))
    s16 = rng.integers(0, 65536, (23, 31, 4), dtype=np.uint16)
    W.image("rgb16_31x23.png", png_bytes(s16[..., :3], 16, 2))
    W.image("rgba16_31x23.png", png_bytes(s16, 16, 6))
    W.image("la16_31x23.png", png_bytes(s16[..., :2], 16, 4))
    # 16-bit grey: Pillow's I;16 -> RGB clips at 255; mix small and large values.
    g16 = np.where(rng.random((23, 31)) < 0.5, rng.integers(0, 256, (23, 31)), rng.integers(0, 65536, (23, 31)))
    W.image("gray16_31x23.png", png_bytes(g16.astype(np.uint16)[..., None], 16, 0))
    W.image("interlaced_41x29.png", png_bytes(natural(41, 29, 7), 8, 2, interlace=True))
    W.image("interlaced16_19x11.png", png_bytes(s16[:11, :19], 16, 6, interlace=True))

    # ---- JPEG ---------------------------------------------------------------------------------
    W.image("photo_300x200.jpg", jpeg(natural(300, 200, 8), quality=90))  # 4:2:0 baseline
    W.image("odd_37x53.jpg", jpeg(a, quality=85))
    W.image("prog444_64x48.jpg", jpeg(natural(64, 48, 9), quality=95, progressive=True, subsampling=0))
    W.image("h422_50x30.jpg", jpeg(natural(50, 30, 10), quality=80, subsampling=1))
    W.image("gray_120x80.jpg", jpeg(Image.fromarray(natural(120, 80, 11)[..., 2], "L"), quality=90))
    cmyk = Image.fromarray(natural(96, 64, 12)).convert("CMYK")
    W.image("cmyk_96x64.jpg", jpeg(cmyk, quality=90))
    big = natural(640, 480, 13)
    W.image("photo_640x480.jpg", jpeg(big, quality=75), store_ref=False)
    small = natural(20, 30, 14)
    W.image("tiny_20x30.png", png(Image.fromarray(small)))

    # ---- Pillow resize references -------------------------------------------------------------
    filt = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}

    def resize_case(src, w, h, f):
        im = Image.fromarray(W.rgb[src])
        out = np.asarray(im.resize((w, h), filt[f]))
        ref = f"resize_{src.replace('.', '_')}_{w}x{h}_{f}.u8"
        W.put(ref, out.tobytes())
        W.manifest["resize"].append({"src": src, "w": w, "h": h, "filter": f, "ref": ref})

    for f in ("bilinear", "bicubic"):
        resize_case("rgb_37x53.png", 64, 64, f)
        resize_case("photo_300x200.jpg", 96, 64, f)
        resize_case("photo_640x480.jpg", 64, 48, f)
        resize_case("rgb_37x53.png", 37, 80, f)  # vertical pass only
        resize_case("rgb_37x53.png", 13, 53, f)  # horizontal pass only
    resize_case("photo_640x480.jpg", 96, 96, "bicubic")
    resize_case("photo_640x480.jpg", 7, 5, "bicubic")  # very wide kernels
    resize_case("tiny_20x30.png", 224, 224, "bicubic")
    resize_case("rgb_37x53.png", 37, 53, "bicubic")  # identity (copy)

    # ---- timm eval transforms -----------------------------------------------------------------
    import timm
    import torch
    from timm.data import create_transform, resolve_data_config

    base = timm.models.get_pretrained_cfg("vit_base_patch16_224.augreg2_in21k_ft_in1k").to_dict()

    def timm_case(src, input_size=None, **over):
        pc = dict(base)
        if input_size:
            pc["input_size"] = (3,) + tuple(input_size)
        pc.update(over)
        cfg = resolve_data_config({}, pretrained_cfg=pc)
        tf = create_transform(**cfg)
        im = Image.fromarray(W.rgb[src])
        t = tf(im).numpy().astype(np.float32)
        mid = im
        for step in tf.transforms[:-2]:  # everything before ToTensor + Normalize
            mid = step(mid)
        u8 = np.asarray(mid)
        tag = f"timm_{src.replace('.', '_')}_{cfg['input_size'][1]}x{cfg['input_size'][2]}_{len(W.manifest['timm'])}"
        W.put(tag + ".u8", np.ascontiguousarray(u8).tobytes())
        W.put(tag + ".f32", np.ascontiguousarray(t).astype("<f4").tobytes())
        W.manifest["timm"].append({
            "src": src, "input_h": cfg["input_size"][1], "input_w": cfg["input_size"][2],
            "crop_pct": cfg["crop_pct"], "interpolation": cfg["interpolation"],
            "mean": list(cfg["mean"]), "std": list(cfg["std"]),
            "u8": tag + ".u8", "u8_h": u8.shape[0], "u8_w": u8.shape[1], "f32": tag + ".f32",
            "transform": repr(tf).replace("\n", " ")})

    timm_case("photo_640x480.jpg")  # the real 224 pipeline: 640x480 -> 331x248 -> 224
    timm_case("photo_300x200.jpg", (96, 96))
    timm_case("rgb_37x53.png", (96, 96))  # upscaling, portrait
    timm_case("tiny_20x30.png", (64, 64), interpolation="bilinear")
    timm_case("photo_300x200.jpg", (64, 96))  # non-square: timm ResizeKeepRatio
    timm_case("odd_37x53.jpg", (64, 64), crop_pct=1.25)  # crop larger than resize: zero pad
    timm_case("photo_640x480.jpg", (96, 96), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    timm_case("cmyk_96x64.jpg", (64, 64), crop_pct=0.875)

    # ---- HF ViTImageProcessor ------------------------------------------------------------------
    from transformers import ViTImageProcessor
    try:
        from transformers import ViTImageProcessorPil
    except ImportError:
        ViTImageProcessorPil = None

    def hf_case(src, size, backend):
        cls = ViTImageProcessorPil if backend == "pil" else ViTImageProcessor
        proc = cls(size={"height": size, "width": size})
        im = Image.fromarray(W.rgb[src])
        t = np.asarray(proc(images=im, return_tensors="np" if backend == "pil" else "pt")["pixel_values"])[0]
        tag = f"hf_{backend}_{src.replace('.', '_')}_{size}"
        W.put(tag + ".f32", np.ascontiguousarray(t).astype("<f4").tobytes())
        W.manifest["hf"].append({"src": src, "size": size, "backend": backend, "f32": tag + ".f32",
                                 "interpolation": "bilinear", "mean": list(proc.image_mean),
                                 "std": list(proc.image_std), "processor": cls.__name__})

    if ViTImageProcessorPil is not None:
        hf_case("photo_300x200.jpg", 96, "pil")
        hf_case("rgb_37x53.png", 64, "pil")
        hf_case("photo_640x480.jpg", 64, "pil")
    hf_case("photo_300x200.jpg", 64, "torchvision")
    hf_case("rgb_37x53.png", 64, "torchvision")

    hf_crop_cases(W)

    # ---- broken files -------------------------------------------------------------------------
    def broken(name, data, code):
        W.put(name, data)
        try:
            pil_rgb(data)
            pillow = "ok"
        except Exception as e:  # noqa: BLE001 - record what Pillow says
            pillow = f"{type(e).__name__}: {e}"[:120]
        W.manifest["broken"].append({"file": name, "code": code, "pillow": pillow})

    rgbpng = open(os.path.join(OUT, "rgb_37x53.png"), "rb").read()
    photo = open(os.path.join(OUT, "photo_300x200.jpg"), "rb").read()
    broken("trunc.png", rgbpng[: len(rgbpng) * 6 // 10], "format")
    broken("trunc_header.png", rgbpng[:20], "format")
    broken("trunc.jpg", photo[: len(photo) // 2], "format")
    broken("trunc_header.jpg", photo[:40], "format")
    badcrc = bytearray(rgbpng)
    i = badcrc.find(b"IDAT")
    badcrc[i + 4 + 10] ^= 0x55  # corrupt the zlib stream (CRC then mismatches)
    broken("badcrc.png", bytes(badcrc), "format")
    # A valid PNG header declaring 100000 x 100000 (a 30 GB RGB image): refused from IHDR.
    broken("bomb.png", png_bytes(np.zeros((1, 1, 3), np.uint8), 8, 2, ihdr_wh=(100000, 100000)), "invalid_argument")
    broken("zero_width.png", png_bytes(np.zeros((1, 1, 3), np.uint8), 8, 2, ihdr_wh=(0, 7)), "invalid_argument")

    def patch_sof(data, w, h):
        b = bytearray(data)
        for m in (b"\xff\xc0", b"\xff\xc2"):
            i = b.find(m)
            if i >= 0:
                b[i + 5:i + 7] = struct.pack(">H", h)
                b[i + 7:i + 9] = struct.pack(">H", w)
                return bytes(b)
        raise RuntimeError("no SOF")

    broken("bomb.jpg", patch_sof(photo, 60000, 60000), "invalid_argument")
    broken("zero_width.jpg", patch_sof(photo, 0, 200), "invalid_argument")
    broken("random.bin", bytes(rng.integers(0, 256, 1000, dtype=np.uint8)), "format")
    broken("empty.png", b"", "format")
    broken("soi_garbage.jpg", b"\xff\xd8\xff\xe0" + bytes(rng.integers(0, 256, 500, dtype=np.uint8)), "format")
    broken("fake.gif", b"GIF89a" + bytes(40), "unsupported")

    W.manifest["versions"] = {"pillow": Image.__version__, "timm": timm.__version__, "torch": torch.__version__,
                              "numpy": np.__version__}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(W.manifest, f, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total / 1e6:.2f} MB to {os.path.normpath(OUT)}")
    for b in W.manifest["broken"]:
        print(f"  {b['file']:18s} expect {b['code']:16s} pillow: {b['pillow']}")


if __name__ == "__main__":
    sys.exit(main())
