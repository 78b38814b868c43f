#!/usr/bin/env python3
"""Generates the reader fixtures in tests/data/io (run with /work/venv-tools/bin/python).

deflated.npz      np.savez_compressed: float32 / float64 / float16 / big-endian float32 members,
                  plus a large all-zero member so deflate really compresses.
numpy_f32.npy     np.save of a float32 (2, 3) array: encode_npy must match it byte for byte.
fortran.npy       np.save of a Fortran-ordered float32 (3, 4, 5) array (np.asfortranarray): numpy
                  writes fortran_order=True; the values are arange(60) * 0.25 in C order.
fortran.npz       np.savez (stored) with a transposed kernel member 'kernel' = arange(12).reshape(3, 4).T
                  (F-contiguous, so saved in Fortran order) and a C-order member 'c'.
official.safetensors  written by the official safetensors library (F32, F16, BF16, I64).
The values are small dyadic fractions, exact in every dtype used; tests/test_npy.cpp and
tests/test_safetensors.cpp assert them literally.
"""
import os
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "data", "io")


def main():
    os.makedirs(OUT, exist_ok=True)

    weight = (np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5 - 1.0).astype(np.float32)
    bias = np.array([1.5, -2.25, 0.001], dtype=np.float64)
    half = np.array([0.5, -3.0, 65504.0], dtype=np.float16)
    big = np.array([1.0, 2.5], dtype=">f4")
    zeros = np.zeros((64, 64), dtype=np.float32)
    path = os.path.join(OUT, "deflated.npz")
    np.savez_compressed(path, **{"layer/weight": weight, "bias": bias, "half": half,
                                 "big": big, "zeros": zeros})
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            assert info.compress_type == zipfile.ZIP_DEFLATED, info

    np.save(os.path.join(OUT, "numpy_f32.npy"),
            np.array([[1.0, -2.0, 0.25], [4.0, 5.5, -6.0]], dtype=np.float32))

    a = np.asfortranarray((np.arange(60, dtype=np.float32) * 0.25).reshape(3, 4, 5))
    np.save(os.path.join(OUT, "fortran.npy"), a)
    kernel = np.arange(12, dtype=np.float32).reshape(3, 4).T
    assert kernel.flags.f_contiguous and not kernel.flags.c_contiguous
    np.savez(os.path.join(OUT, "fortran.npz"), kernel=kernel, c=np.arange(6, dtype=np.float32))

    import torch
    from safetensors.torch import save_file
    tensors = {
        "a.f32": torch.tensor([[1.0, -2.0], [0.5, 3.25]], dtype=torch.float32),
        "b.f16": torch.tensor([0.5, -1.5, 2048.0], dtype=torch.float16),
        "c.bf16": torch.tensor([1.0, -0.15625, 256.0, 0.0], dtype=torch.bfloat16),
        "d.i64": torch.tensor([7, -8], dtype=torch.int64),
    }
    out = os.path.join(OUT, "official.safetensors")
    save_file(tensors, out, metadata={"format": "pt"})
    os.chmod(out, 0o644)


if __name__ == "__main__":
    main()
