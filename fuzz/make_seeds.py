#!/usr/bin/env python3
# vit-infer fuzzing: (re)generates the seed corpora under fuzz/corpus/<target>/ from the test
# fixtures (tests/data/io, golden config.json files, small images) plus tiny synthetic files
# (safetensors headers, npy variants, D=8 timm / HF / JAX checkpoints). Needs numpy;
# run with /work/venv-tools/bin/python. Seeds are named seed_*; files libFuzzer adds
# (SHA1 names) are left alone.
import io, json, os, shutil, struct, sys, zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
rng = np.random.default_rng(0)


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed_" + name)).write_bytes(data)


def st_bytes(tensors, dtype="F32", metadata=None):
    """safetensors file bytes; tensors: name -> float32 ndarray."""
    np_dt = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}[dtype]
    hdr, blobs, off = {}, [], 0
    if metadata:
        hdr["__metadata__"] = metadata
    for n in sorted(tensors):
        b = np.ascontiguousarray(tensors[n], dtype=np_dt).tobytes()
        hdr[n] = {"dtype": dtype, "shape": list(tensors[n].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def npy_bytes(a, version=None):
    f = io.BytesIO()
    if version is None:
        np.save(f, a)
    else:
        np.lib.format.write_array(f, a, version=version)
    return f.getvalue()


def npz_bytes(arrays, compressed=False):
    f = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(f, **arrays)
    return f.getvalue()


def r(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def tiny_timm(D=8, I=16, P=4, C=3, grid=2, depth=1, avg=False):
    t = {"cls_token": r(1, 1, D), "pos_embed": r(1, grid * grid + 1, D),
         "patch_embed.proj.weight": r(D, 3, P, P), "patch_embed.proj.bias": r(D)}
    for i in range(depth):
        b = f"blocks.{i}."
        for k, s in [("norm1.weight", (D,)), ("norm1.bias", (D,)), ("attn.qkv.weight", (3 * D, D)),
                     ("attn.qkv.bias", (3 * D,)), ("attn.proj.weight", (D, D)), ("attn.proj.bias", (D,)),
                     ("norm2.weight", (D,)), ("norm2.bias", (D,)), ("mlp.fc1.weight", (I, D)),
                     ("mlp.fc1.bias", (I,)), ("mlp.fc2.weight", (D, I)), ("mlp.fc2.bias", (D,))]:
            t[b + k] = r(*s)
    n = "fc_norm" if avg else "norm"
    t[n + ".weight"], t[n + ".bias"] = r(D), r(D)
    t["head.weight"], t["head.bias"] = r(C, D), r(C)
    return t


def tiny_hf(D=8, I=16, P=4, C=3, grid=2, prefix="vit."):
    p = prefix
    t = {p + "embeddings.cls_token": r(1, 1, D), p + "embeddings.position_embeddings": r(1, grid * grid + 1, D),
         p + "embeddings.patch_embeddings.projection.weight": r(D, 3, P, P),
         p + "embeddings.patch_embeddings.projection.bias": r(D)}
    b = p + "encoder.layer.0."
    for q in ("query", "key", "value"):
        t[b + f"attention.attention.{q}.weight"], t[b + f"attention.attention.{q}.bias"] = r(D, D), r(D)
    t[b + "attention.output.dense.weight"], t[b + "attention.output.dense.bias"] = r(D, D), r(D)
    for k in ("layernorm_before", "layernorm_after"):
        t[b + k + ".weight"], t[b + k + ".bias"] = r(D), r(D)
    t[b + "intermediate.dense.weight"], t[b + "intermediate.dense.bias"] = r(I, D), r(I)
    t[b + "output.dense.weight"], t[b + "output.dense.bias"] = r(D, I), r(D)
    t[p + "layernorm.weight"], t[p + "layernorm.bias"] = r(D), r(D)
    if prefix:
        t["classifier.weight"], t["classifier.bias"] = r(C, D), r(C)
    return t


def tiny_jax(D=8, H=2, I=16, P=4, C=3, grid=2):
    hd = D // H
    t = {"embedding/kernel": r(P, P, 3, D), "embedding/bias": r(D), "cls": r(1, 1, D),
         "Transformer/posembed_input/pos_embedding": r(1, grid * grid + 1, D)}
    b = "Transformer/encoderblock_0/"
    a = b + "MultiHeadDotProductAttention_1/"
    t[b + "LayerNorm_0/scale"], t[b + "LayerNorm_0/bias"] = r(D), r(D)
    for q in ("query", "key", "value"):
        t[a + q + "/kernel"], t[a + q + "/bias"] = r(D, H, hd), r(H, hd)
    t[a + "out/kernel"], t[a + "out/bias"] = r(H, hd, D), r(D)
    t[b + "LayerNorm_2/scale"], t[b + "LayerNorm_2/bias"] = r(D), r(D)
    t[b + "MlpBlock_3/Dense_0/kernel"], t[b + "MlpBlock_3/Dense_0/bias"] = r(D, I), r(I)
    t[b + "MlpBlock_3/Dense_1/kernel"], t[b + "MlpBlock_3/Dense_1/bias"] = r(I, D), r(D)
    t["Transformer/encoder_norm/scale"], t["Transformer/encoder_norm/bias"] = r(D), r(D)
    t["head/kernel"], t["head/bias"] = r(D, C), r(C)
    return t


def main():
    for t in ["fuzz_safetensors_header", "fuzz_safetensors_file", "fuzz_npy", "fuzz_npz",
              "fuzz_config_json", "fuzz_load_model", "fuzz_image"]:
        for f in (CORPUS / t).glob("seed_*") if (CORPUS / t).exists() else []:
            f.unlink()
    io_dir = ROOT / "tests" / "data" / "io"

    # safetensors: whole files and bare headers.
    small = {"a": r(2, 3), "b": r(4), "s": np.array(1.5, dtype=np.float32), "e": np.zeros((0, 3), np.float32)}
    files = {
        "official.safetensors": (io_dir / "official.safetensors").read_bytes(),
        "f32.safetensors": st_bytes(small, metadata={"format": "pt"}),
        "f16.safetensors": st_bytes({"w": r(3, 2)}, "F16"),
        "f64.safetensors": st_bytes({"w": r(2, 2)}, "F64"),
        "empty.safetensors": st_bytes({}),
    }
    bf = np.frombuffer(r(4).tobytes(), dtype="<u2")[1::2].copy().tobytes()
    files["bf16.safetensors"] = (lambda h: struct.pack("<Q", len(h)) + h + bf)(
        b'{"x":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}')
    files["i64.safetensors"] = (lambda h: struct.pack("<Q", len(h)) + h + bytes(16))(
        b'{"i":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}')
    for n, b in files.items():
        put("fuzz_safetensors_file", n, b)
        hlen = struct.unpack("<Q", b[:8])[0]
        put("fuzz_safetensors_header", n.replace(".safetensors", ".json"), b[8:8 + hlen])

    # npy.
    put("fuzz_npy", "numpy_f32.npy", (io_dir / "numpy_f32.npy").read_bytes())
    put("fuzz_npy", "f2.npy", npy_bytes(r(3, 2).astype(np.float16)))
    put("fuzz_npy", "f8.npy", npy_bytes(r(2, 2).astype(np.float64)))
    put("fuzz_npy", "be_f4.npy", npy_bytes(r(5).astype(">f4")))
    put("fuzz_npy", "scalar.npy", npy_bytes(np.float32(2.5)))
    put("fuzz_npy", "empty.npy", npy_bytes(np.zeros((0, 4), np.float32)))
    put("fuzz_npy", "v2.npy", npy_bytes(r(2, 1, 2), version=(2, 0)))
    put("fuzz_npy", "v3.npy", npy_bytes(r(3), version=(3, 0)))
    put("fuzz_npy", "fortran.npy", npy_bytes(np.asfortranarray(r(2, 3))))
    put("fuzz_npy", "i4.npy", npy_bytes(np.arange(4, dtype=np.int32)))

    # npz.
    put("fuzz_npz", "deflated.npz", (io_dir / "deflated.npz").read_bytes())
    put("fuzz_npz", "stored.npz", npz_bytes({"a": r(2, 2), "b": r(3).astype(np.float16)}))
    put("fuzz_npz", "compressed.npz", npz_bytes({"x": r(4, 2), "y/z": r(1)}, compressed=True))
    put("fuzz_npz", "empty.npz", npz_bytes({}))

    # config.json: every golden config plus HF preprocessor-style and minimal ones.
    seen = set()
    for p in sorted((ROOT / "tests" / "data" / "golden").glob("*/model/*.json")):
        b = p.read_bytes()
        if b not in seen:
            seen.add(b)
            put("fuzz_config_json", p.parent.parent.name + "_" + p.name, b)
    put("fuzz_config_json", "hf_preprocessor.json", json.dumps({
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "ViTImageProcessor", "image_std": [0.5, 0.5, 0.5], "resample": 2,
        "rescale_factor": 0.00392156862745098, "size": {"height": 8, "width": 8},
        "model_type": "vit", "hidden_size": 8, "num_attention_heads": 2}).encode())
    put("fuzz_config_json", "timm_min.json", b'{"architecture":"vit_tiny_patch4_8","num_classes":3,'
        b'"model_args":{"embed_dim":8,"num_heads":2,"img_size":8,"patch_size":4},'
        b'"pretrained_cfg":{"input_size":[3,8,8],"label_names":["a","b","c"]}}')

    # load_model: tiny checkpoints of every layout (D 8, 2 heads, patch 4 at 8x8).
    put("fuzz_load_model", "timm.safetensors", st_bytes(tiny_timm()))
    put("fuzz_load_model", "timm_avg.safetensors", st_bytes(tiny_timm(avg=True)))
    put("fuzz_load_model", "timm_f16.safetensors", st_bytes(tiny_timm(grid=3), "F16"))
    put("fuzz_load_model", "hf_cls.safetensors", st_bytes(tiny_hf()))
    put("fuzz_load_model", "hf_bare.safetensors", st_bytes(tiny_hf(prefix="")))
    put("fuzz_load_model", "jax.npz", npz_bytes(tiny_jax()))

    # images: the small decoder fixtures (valid, truncated, odd modes).
    for p in sorted((ROOT / "tests" / "data" / "images").iterdir()):
        if p.suffix in (".png", ".jpg") and 0 < p.stat().st_size <= 9000:
            put("fuzz_image", p.name, p.read_bytes())

    total = sum(f.stat().st_size for f in CORPUS.rglob("*") if f.is_file())
    print(f"seeds written; corpus total {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
