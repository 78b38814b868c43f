"""Shared fixtures of the Python tests: repository paths, the demo and golden models, and a
reference path into the C API through ctypes (the same libvit the module loads, called directly)."""
from __future__ import annotations

import ctypes
import json
import os
import pathlib
import shutil

# Ray on Linux resolves "127.0.0.1" to the machine's outward address; off, every Ray address (GCS,
# raylets, workers, Serve's proxy) stays on loopback. Read when ray is first imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# The serving tests run one proxy (on the head) for two nodes; Serve's proxy would otherwise send
# every request to the replica on its own node. Inherited by the raylets and so by the proxy actor.
os.environ.setdefault("RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import vit_infer  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEMO = ROOT / "models" / "demo"
GOLDEN = ROOT / "tests" / "data" / "golden"
SAMPLES = sorted((DEMO / "samples").glob("sample_*"))


def cli_path() -> pathlib.Path | None:
    """The vit-infer program of the build the tests run beside ($VIT_INFER_CLI, else build/)."""
    env = os.environ.get("VIT_INFER_CLI")
    if env:
        return pathlib.Path(env)
    p = ROOT / os.environ.get("VIT_BUILD_DIR", "build") / "vit-infer"
    return p if p.exists() else (pathlib.Path(shutil.which("vit-infer")) if shutil.which("vit-infer") else None)


class _Outputs(ctypes.Structure):
    # vit_outputs (include/vit/vit.h): five float pointers, in this order (features: version 2).
    _fields_ = [("logits", ctypes.c_void_p), ("embeddings", ctypes.c_void_p), ("attention", ctypes.c_void_p),
                ("attention_layers", ctypes.c_void_p), ("features", ctypes.c_void_p)]


class _Image(ctypes.Structure):
    # vit_image: const uint8_t* rgb; int width, height.
    _fields_ = [("rgb", ctypes.c_void_p), ("width", ctypes.c_int), ("height", ctypes.c_int)]


class CApi:
    """The C API called directly through ctypes on the libvit the module loads: the reference the
    module's answers must equal bit for bit. Default load and session params (passed as NULL),
    i.e. the CPU engine in fp32 with max_batch 64. NULL session params are a first-version caller:
    its vit_outputs has no `features` field, so the library must never touch that pointer (the
    buffer passed there stays NaN)."""

    def __init__(self) -> None:
        libdir = pathlib.Path(vit_infer.__file__).parent
        self.lib = lib = ctypes.CDLL(str(next(libdir.glob("libvit.so*"))))
        lib.vit_model_load.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.vit_model_load.restype = ctypes.c_void_p
        lib.vit_session_create.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
        lib.vit_session_create.restype = ctypes.c_void_p
        lib.vit_session_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_Outputs)]
        lib.vit_session_run.restype = ctypes.c_void_p
        lib.vit_session_run_images.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Image), ctypes.c_int,
                                               ctypes.POINTER(_Outputs)]
        lib.vit_session_run_images.restype = ctypes.c_void_p
        lib.vit_status_get_message.argtypes = [ctypes.c_void_p]
        lib.vit_status_get_message.restype = ctypes.c_char_p
        lib.vit_session_free.argtypes = [ctypes.c_void_p]
        lib.vit_model_free.argtypes = [ctypes.c_void_p]

    def _check(self, st: int | None) -> None:
        if st:
            raise AssertionError(self.lib.vit_status_get_message(st).decode())

    def _run(self, path: str, info: vit_infer.ModelInfo, batch: int, call) -> dict[str, np.ndarray]:
        m, s = ctypes.c_void_p(), ctypes.c_void_p()
        self._check(self.lib.vit_model_load(str(path).encode(), None, ctypes.byref(m)))
        try:
            self._check(self.lib.vit_session_create(m, None, ctypes.byref(s)))
            T = info.num_tokens
            out = {"logits": np.full((batch, info.num_classes), np.nan, np.float32),
                   "embeddings": np.full((batch, info.embedding_size), np.nan, np.float32),
                   "attention": np.full((batch, info.num_heads, T, T), np.nan, np.float32),
                   "attention_layers": np.full((info.depth, batch, T, T), np.nan, np.float32),
                   "features": np.full((batch, T, info.hidden_size), np.nan, np.float32)}
            o = _Outputs(*(a.ctypes.data for a in out.values()))
            self._check(call(s, o))
            return out
        finally:
            self.lib.vit_session_free(s)
            self.lib.vit_model_free(m)

    def run(self, path, info, x: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self._run(path, info, x.shape[0],
                         lambda s, o: self.lib.vit_session_run(s, x.ctypes.data, x.shape[0], ctypes.byref(o)))

    def run_images(self, path, info, images: list[np.ndarray]) -> dict[str, np.ndarray]:
        arr = (_Image * len(images))(*(_Image(a.ctypes.data, a.shape[1], a.shape[0]) for a in images))
        return self._run(path, info, len(images),
                         lambda s, o: self.lib.vit_session_run_images(s, arr, len(images), ctypes.byref(o)))


@pytest.fixture(scope="session")
def capi() -> CApi:
    return CApi()


@pytest.fixture(scope="session")
def demo() -> vit_infer.Model:
    return vit_infer.Model(DEMO)


@pytest.fixture(scope="session")
def demo_session(demo) -> vit_infer.Session:
    return vit_infer.Session(demo, device="cpu", max_batch=8, threads=2)


def golden(name: str) -> tuple[pathlib.Path, np.ndarray, np.ndarray, np.ndarray]:
    """(model dir, input [B,3,H,W], framework logits, framework embeddings) of a golden fixture."""
    d = GOLDEN / name
    case = json.loads((d / "case.json").read_text())
    assert not case["overrides"], f"{name} needs load overrides"
    return (d / case["model"], np.load(d / "input.npy"), np.load(d / "logits.npy"), np.load(d / "embeddings.npy"))


def golden_final_tokens(name: str) -> np.ndarray:
    """The framework's final tokens [B, T, D] of a golden fixture (timm forward_features, HF
    last_hidden_state): what the `features` output must equal."""
    return np.load(GOLDEN / name / "activations.npz")["final"]
