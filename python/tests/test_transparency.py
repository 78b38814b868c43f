"""Transparent images reach every entry point as the model's framework reads them: an HF model whose
processor has do_convert_rgb (CLIP here) composites transparency onto white (transformers'
convert_to_rgb), which the model-agnostic vit_infer.decode_image (Pillow's convert("RGB"), timm)
does not. Checked for PIL images with transparency given to Session.run_images, for the Ray Serve
app's legacy and v2 request parsing (the replica's own methods, without a cluster) and for the
`embed` job's actor (its embed(), without Ray Data). Each path must give the composited pixels'
answer and not the alpha-dropped one (the two differ on these images, which the test asserts)."""
from __future__ import annotations

import base64
import json
import pathlib
import shutil

import numpy as np
import pytest

import vit_infer

from conftest import ROOT

PIL = pytest.importorskip("PIL.Image")

CLIP = ROOT / "tests" / "data" / "golden_families" / "hf_clip" / "model"
# tools/make_hf_processor_fixtures.py's sources: RGBA, a palette with a tRNS chunk, LA (grey + alpha),
# RGB and grey with a tRNS colour key; each has transparent pixels.
SOURCES = ["rgba_45x31.png", "pal_trns_45x31.png", "la_45x31.png", "rgb_trns_45x31.png", "gray_trns_45x31.png"]
PNGS = [ROOT / "tests" / "data" / "hf_processors" / n for n in SOURCES]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> vit_infer.Model:
    """The hf_clip fixture (a CLIPVisionModel from transformers, 32 px) with the processor config
    transformers' CLIPImageProcessor writes: do_convert_rgb, shortest edge 32, centre crop 32."""
    d = tmp_path_factory.mktemp("clip_rgb")
    for f in CLIP.iterdir():
        shutil.copy(f, d / f.name)
    (d / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": 32},
        "resample": 3, "do_center_crop": True, "crop_size": {"height": 32, "width": 32}, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": True}))
    m = vit_infer.Model(d)
    assert m.info.image_height == 32 and m.info.num_classes == 0
    return m


def _composited(path: pathlib.Path) -> np.ndarray:
    """transformers' convert_to_rgb, as Pillow computes it: RGBA alpha-composited onto white."""
    img = PIL.open(path)
    img = img.convert("RGBA")
    white = PIL.new("RGBA", img.size, (255, 255, 255))
    return np.asarray(PIL.alpha_composite(white, img).convert("RGB"))


@pytest.fixture(scope="module")
def want(clip):
    """Per source: the embeddings of the composited pixels, and of the alpha-dropped ones (which
    must differ, or the checks below could not tell the two rules apart)."""
    s = vit_infer.Session(clip, device="cpu", max_batch=8)
    out = []
    for p in PNGS:
        decoded = clip.decode_image(p.read_bytes(), str(p))
        np.testing.assert_array_equal(decoded, _composited(p))  # the library's rule is Pillow's
        dropped = vit_infer.decode_image(p.read_bytes(), str(p))
        assert (decoded != dropped).any(), f"{p.name}: compositing changes no pixel"
        good, bad = s.run_images([decoded], "embeddings")[0], s.run_images([dropped], "embeddings")[0]
        assert np.abs(good - bad).max() > 1e-3 * np.abs(good).max(), p.name
        out.append((good, bad))
    return s, out


def _close(got: np.ndarray, good: np.ndarray, bad: np.ndarray, what: str) -> None:
    scale = np.abs(good).max()
    assert np.abs(got - good).max() <= 1e-6 * scale, f"{what}: not the composited image's embeddings"
    assert np.abs(got - bad).max() > 1e-3 * scale, f"{what}: the alpha-dropped image's embeddings"


def test_pil_images_with_transparency(clip, want):
    """PIL images as Pillow opens the sources (RGBA, palette + tRNS, LA, RGB and grey + a tRNS
    colour key) and converted to RGBA: composited as transformers does; a PIL image without
    transparency takes the plain path (the same answer as its array)."""
    s, refs = want
    for p, (good, bad) in zip(PNGS, refs):
        img = PIL.open(p)
        img.load()
        assert "A" in img.getbands() or "transparency" in img.info, f"{p.name}: Pillow sees no transparency"
        for form, x in ((img.mode, img), ("RGBA", img.convert("RGBA"))):
            _close(s.run_images([x], "embeddings")[0], good, bad, f"{p.name} as a PIL {form} image")
    opaque = PIL.open(PNGS[0]).convert("RGB")
    np.testing.assert_array_equal(s.run_images([opaque], "embeddings"),
                                  s.run_images([np.asarray(opaque)], "embeddings"))


def test_serve_parses_images_as_the_model_reads_them(clip, want):
    """The replica's /classify-/embed body parsing and its v2 `image` BYTES input: the methods of
    VitDeployment itself on a stand-in replica holding the model (a replica's __init__ needs Ray)."""
    pytest.importorskip("ray")
    from vit_infer import serve as vserve
    cls = vserve.VitDeployment.func_or_class

    class Replica:
        _parse, _checked_array = cls._parse, cls._checked_array
        _v2_parse, _v2_item, _v2_outputs = cls._v2_parse, cls._v2_item, cls._v2_outputs

        def __init__(self, model: vit_infer.Model) -> None:
            i = model.info
            self.model, self._shape, self.max_body_bytes = model, (i.in_chans, i.image_height, i.image_width), 1 << 20

    r = Replica(clip)
    s, refs = want
    for p, (good, bad) in zip(PNGS, refs):
        item = r._parse(p.read_bytes())
        np.testing.assert_array_equal(item.pixels[0], clip.decode_image(p.read_bytes(), "body"))
        item.outputs = ("embeddings",)  # what /embed asks (the model has no classifier)
        _close(vserve.run_items(s, [item])[0]["embeddings"][0], good, bad, f"{p.name} through /embed")
    doc = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(PNGS)],
                       "data": [base64.b64encode(p.read_bytes()).decode() for p in PNGS],
                       "parameters": {"content_type": "base64"}}], "outputs": [{"name": "embeddings"}]}
    _, item, _ = r._v2_parse(json.dumps(doc).encode(), None, None)
    got = vserve.run_items(s, [item])[0]["embeddings"]
    for k, (p, (good, bad)) in enumerate(zip(PNGS, refs)):
        _close(got[k], good, bad, f"{p.name} through v2 infer")


def test_embed_actor_decodes_as_the_model_reads_them(clip, want):
    """`python -m vit_infer embed`'s Ray Data actor (Embedder.embed on encoded bytes)."""
    pytest.importorskip("ray")
    from vit_infer.embed import Embedder
    e = Embedder(clip.path, "cpu", "fp32", 4, 1, None)
    emb, err = e.embed([p.read_bytes() for p in PNGS], [p.name for p in PNGS])
    assert err == [None] * len(PNGS)
    for p, got, (good, bad) in zip(PNGS, emb, want[1]):
        _close(got, good, bad, f"{p.name} through embed")
