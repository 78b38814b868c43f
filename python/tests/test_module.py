"""The vit_infer module against the C API (ctypes on the same libvit) and the golden fixtures: every
output, input checks, zero-copy input, GIL release, thread sharing, cancel, exceptions, the CLI."""
from __future__ import annotations

import ctypes
import io
import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

import vit_infer
from vit_infer import _vit_infer

from conftest import DEMO, ROOT, SAMPLES, cli_path, golden, golden_final_tokens

GOLDEN_CASES = ["timm_token", "timm_avg", "hf_cls", "jax_npz", "timm_hd24"]


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_every_output_equals_the_c_api(capi, case):
    path, x, want_logits, want_emb = golden(case)
    model = vit_infer.Model(path)
    s = vit_infer.Session(model, device="cpu")
    got = s.run(x, outputs=vit_infer.OUTPUTS)
    ref = capi.run(path, model.info, x)
    for name in vit_infer.OUTPUTS:
        assert got[name].dtype == np.float32
        assert got[name].shape == ref[name].shape, name
        assert np.isfinite(got[name]).all(), name
        assert np.abs(got[name]).max() > 0, name  # a zero result cannot pass
        if name == "features":
            # The first-version caller (NULL session params) has no such field: never written.
            assert np.isnan(ref[name]).all(), "the library wrote past a first-version vit_outputs"
            continue
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    final = golden_final_tokens(case)
    np.testing.assert_allclose(got["features"], final, rtol=0, atol=1e-4 * np.abs(final).max())
    # ... and the framework's numbers (the C++ golden tests' tolerance: 1e-4 x the largest logit).
    np.testing.assert_allclose(got["logits"], want_logits, rtol=0, atol=1e-4 * np.abs(want_logits).max())
    np.testing.assert_allclose(got["embeddings"], want_emb, rtol=0, atol=1e-4 * np.abs(want_emb).max())
    np.testing.assert_allclose(got["attention_layers"].sum(-1), 1.0, atol=1e-5)
    # A single output comes back as the array itself, and equals the same run's.
    np.testing.assert_array_equal(s.run(x), got["logits"])
    np.testing.assert_array_equal(s.run(x, "embeddings"), got["embeddings"])


def test_model_info_labels_preprocess(demo):
    cfg = json.loads((DEMO / "config.json").read_text())
    assert demo.labels == tuple(cfg["label_names"])
    i = demo.info
    assert (i.image_height, i.image_width, i.patch_size) == (64, 64, 8)
    assert (i.hidden_size, i.depth, i.num_heads, i.num_classes) == (96, 4, 3, 10)
    assert i.embedding_size == 96  # no projection: the embeddings are hidden_size wide
    assert i.num_tokens == 65 and i.pool == "token" and i.param_count > 0
    p = demo.preprocess
    assert p.resize == "shortest_then_crop" and p.interpolation == "bicubic"
    assert p.mean == pytest.approx((0.5, 0.5, 0.5)) and p.std == pytest.approx((0.5, 0.5, 0.5))
    assert "96" in demo.describe()
    # Overrides go through: a resampled run size.
    m = vit_infer.Model(DEMO, image_size=96)
    assert (m.info.image_height, m.info.num_tokens) == (96, 145)


def test_batch_over_max_batch_runs_in_chunks(demo, demo_session):
    x = np.random.default_rng(1).standard_normal((19, 3, 64, 64), dtype=np.float32)
    chunked = demo_session.run(x, ("logits", "attention_layers"))  # max_batch 8: 8 + 8 + 3
    assert chunked["attention_layers"].shape == (4, 19, 65, 65)
    # Each chunk is one engine run (the BLAS blocking, hence the last bits, depend on the batch size).
    for lo, hi in ((0, 8), (8, 16), (16, 19)):
        part = demo_session.run(x[lo:hi], ("logits", "attention_layers"))
        np.testing.assert_array_equal(chunked["logits"][lo:hi], part["logits"])
        np.testing.assert_array_equal(chunked["attention_layers"][:, lo:hi], part["attention_layers"])
    whole = vit_infer.Session(demo, device="cpu", max_batch=32).run(x)
    np.testing.assert_allclose(chunked["logits"], whole, rtol=0, atol=1e-5 * np.abs(whole).max())


def test_three_dim_input_is_a_batch_of_one(demo_session):
    x = np.random.default_rng(2).standard_normal((3, 64, 64), dtype=np.float32)
    np.testing.assert_array_equal(demo_session.run(x), demo_session.run(x[None]))
    assert demo_session.run(x).shape == (1, 10)


# ---- input checks -------------------------------------------------------------------------------

def test_dtype_shape_and_contiguity_errors(demo_session):
    good = np.zeros((2, 3, 64, 64), np.float32)
    with pytest.raises(TypeError, match="float32"):
        demo_session.run(good.astype(np.float64))
    with pytest.raises(TypeError, match="float32"):
        demo_session.run(good.astype(np.float16))
    with pytest.raises(ValueError, match=r"shape \[2, 3, 32, 32\]; the model takes \[B, 3, 64, 64\]"):
        demo_session.run(np.zeros((2, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"shape \[2, 1, 64, 64\]"):
        demo_session.run(np.zeros((2, 1, 64, 64), np.float32))
    with pytest.raises(ValueError, match=r"shape \[64, 64\]"):
        demo_session.run(np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError, match="empty batch"):
        demo_session.run(np.zeros((0, 3, 64, 64), np.float32))
    nhwc = np.zeros((2, 64, 64, 3), np.float32).transpose(0, 3, 1, 2)  # right shape, wrong strides
    with pytest.raises(ValueError, match="not C-contiguous"):
        demo_session.run(nhwc)
    with pytest.raises(ValueError, match="not C-contiguous"):
        demo_session.run(np.zeros((2, 3, 64, 128), np.float32)[..., ::2])
    with pytest.raises(TypeError, match="not an array"):
        demo_session.run(object())
    with pytest.raises(ValueError, match="'probs' is not one of"):
        demo_session.run(good, "probs")
    # Nothing above broke the session.
    assert np.isfinite(demo_session.run(good)).all()


@pytest.mark.parametrize("case", ["dyn_vit", "dyn_hf_dinov2"])
def test_other_input_sizes_match_the_framework(case):
    """max_image_size: run() takes arrays at their own size (tests/data/golden_dynamic: timm
    dynamic_img_size / HF interpolate_pos_encoding in float64), one session for every size."""
    d = ROOT / "tests" / "data" / "golden_dynamic" / case
    meta = json.loads((d / "case.json").read_text())
    model = vit_infer.Model(str(d / "model"))
    s = vit_infer.Session(model, device="cpu", max_batch=2, max_image_size=64)
    for r in meta["runs"]:
        rd = d / "runs" / r["dir"]
        x = np.load(rd / "input.npy")
        got = s.run(x, outputs=("embeddings", "features", "attention"))
        t = r["tokens"]
        assert got["features"].shape == (x.shape[0], t, model.info.hidden_size)
        assert got["attention"].shape == (x.shape[0], model.info.num_heads, t, t)
        for name, f in (("embeddings", "embeddings.npy"), ("features", "features.npy")):
            want = np.load(rd / f)
            np.testing.assert_allclose(got[name], want, rtol=0, atol=1e-4 * np.abs(want).max(), err_msg=name)
        np.testing.assert_allclose(got["attention"].sum(-1), 1.0, atol=1e-5)
    with pytest.raises(vit_infer.InvalidArgumentError, match="not a multiple of the patch size 8"):
        s.run(np.zeros((1, 3, 36, 32), np.float32))
    with pytest.raises(vit_infer.InvalidArgumentError, match="maximum image size 64"):
        s.run(np.zeros((1, 3, 72, 32), np.float32))
    fixed = vit_infer.Session(model, device="cpu")
    with pytest.raises(ValueError, match=r"max_image_size"):
        fixed.run(np.zeros((1, 3, 48, 48), np.float32))


class DLPackOnly:
    """Exposes an array only through the DLPack protocol (as torch / jax / cupy tensors do)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, *args, **kwargs):
        return self._a.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


class ArrayInterfaceOnly:
    """Exposes an array only through numpy's __array_interface__ (no buffer protocol, no DLPack)."""

    def __init__(self, a):
        self._a = a
        self.__array_interface__ = a.__array_interface__


def test_inputs_are_read_in_place(demo, demo_session):
    x = np.random.default_rng(3).standard_normal((2, 3, 64, 64), dtype=np.float32)
    addr = x.__array_interface__["data"][0]
    assert _vit_infer._input_address(demo._m, x) == addr
    assert _vit_infer._input_address(demo._m, DLPackOnly(x)) == addr
    assert _vit_infer._input_address(demo._m, vit_infer._as_array(ArrayInterfaceOnly(x))) == addr
    assert _vit_infer._input_address(demo._m, x[1]) == addr + x[0].nbytes  # a view, not a copy
    want = demo_session.run(x)
    np.testing.assert_array_equal(demo_session.run(DLPackOnly(x)), want)
    np.testing.assert_array_equal(demo_session.run(ArrayInterfaceOnly(x)), want)
    np.testing.assert_array_equal(demo_session.run(memoryview(x)), want)  # the buffer protocol
    np.testing.assert_array_equal(demo_session.run(x.tolist()), want)  # nested lists: a float32 copy
    ro = x.copy()
    ro.flags.writeable = False  # read-only arrays are fine: the engine only reads
    np.testing.assert_array_equal(demo_session.run(ro), want)


class FakeCudaTensor:
    """A DLPack producer whose tensor says it lives on CUDA device 0 (a hand-made DLManagedTensor;
    its data pointer is never dereferenced): the module must refuse it with a message, not read it."""

    class _Device(ctypes.Structure):
        _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]

    class _DType(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]

    class _Tensor(ctypes.Structure):
        pass

    _Tensor._fields_ = [("data", ctypes.c_void_p), ("device", _Device), ("ndim", ctypes.c_int32),
                        ("dtype", _DType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                        ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64),
                        ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]

    def __init__(self, shape):
        self._shape = (ctypes.c_int64 * len(shape))(*shape)
        self._t = self._Tensor(0x1000, self._Device(2, 0), len(shape), self._DType(2, 32, 1), self._shape, None, 0,
                               None, None)  # kDLCUDA, float32, C-contiguous (strides NULL)

    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, *args, **kwargs):
        new = ctypes.pythonapi.PyCapsule_New
        new.restype, new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        return new(ctypes.addressof(self._t), b"dltensor", None)


def test_device_tensors_are_refused_with_a_message(demo_session):
    # The C API's vit_session_run reads host memory; a CUDA tensor would need a device-pointer entry
    # point. Not run on a GPU: this hand-made CUDA DLPack tensor stands in for torch / cupy ones.
    with pytest.raises(TypeError, match=r"device memory \(DLPack device type 2\).*host"):
        demo_session.run(FakeCudaTensor((1, 3, 64, 64)))


def test_torch_cpu_tensor_is_read_in_place(demo, demo_session):
    torch = pytest.importorskip("torch")  # not in the test venv (its PyPI wheel pulls CUDA libraries)
    t = torch.randn(2, 3, 64, 64)
    assert _vit_infer._input_address(demo._m, t) == t.data_ptr()
    np.testing.assert_array_equal(demo_session.run(t), demo_session.run(t.numpy()))


# ---- raw images -----------------------------------------------------------------------------------

def test_run_images_equals_the_c_api_for_every_image_form(capi, demo, demo_session):
    paths = [str(p) for p in SAMPLES]
    pixels = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    decoded = [vit_infer.decode_image(open(p, "rb").read(), p) for p in paths]
    for p, a, b in zip(paths, pixels, decoded):
        if p.endswith(".png"):  # PNG decoding is lossless: ours equals Pillow's exactly
            np.testing.assert_array_equal(a, b, err_msg=p)
        assert a.shape == b.shape
    ref = capi.run_images(DEMO, demo.info, decoded)
    got = demo_session.run_images(paths, ("logits", "embeddings"))
    np.testing.assert_array_equal(got["logits"], ref["logits"])
    np.testing.assert_array_equal(got["embeddings"], ref["embeddings"])
    from_bytes = demo_session.run_images([open(p, "rb").read() for p in paths])
    from_arrays = demo_session.run_images(np.stack(decoded) if len({d.shape for d in decoded}) == 1 else decoded)
    from_pil = demo_session.run_images([Image.fromarray(d) for d in decoded])
    for other in (from_bytes, from_arrays, from_pil):
        np.testing.assert_array_equal(other, ref["logits"])
    # Pillow's own decode of the PNGs gives the same answers as ours, in a batch of the same images
    # (not a subset of the batch above: oneDNN's AVX2 sgemm rounds differently at other row counts,
    # 195 rows vs 260 differ by ~5e-7, so only equal batches are bit-equal).
    pngs = [i for i, p in enumerate(paths) if p.endswith(".png")]
    np.testing.assert_array_equal(demo_session.run_images([pixels[i] for i in pngs]),
                                  capi.run_images(DEMO, demo.info, [decoded[i] for i in pngs])["logits"])
    # A non-RGB PIL image is converted, as Pillow's convert("RGB") would.
    gray = Image.fromarray(decoded[0]).convert("L")
    np.testing.assert_array_equal(demo_session.run_images(gray), demo_session.run_images(gray.convert("RGB")))


def test_classify_matches_the_expected_demo_answers(demo_session):
    expected = {e["file"]: e for e in json.loads((DEMO / "samples" / "expected.json").read_text())}
    preds = demo_session.classify([str(p) for p in SAMPLES], top_k=5)
    assert len(preds) == len(SAMPLES)
    for p, top in zip(SAMPLES, preds):
        e = expected[p.name]
        assert [t.index for t in top] == e["top5"], p.name
        assert top[0].label == e["pred_name"]
        assert top[0].prob == pytest.approx(e["prob"], abs=1e-5)
        assert all(a.prob >= b.prob for a, b in zip(top, top[1:]))


def test_bad_images_raise_naming_the_image(demo_session):
    png = open(SAMPLES[0], "rb").read()
    with pytest.raises(vit_infer.FormatError, match=r"images\[1\]"):
        demo_session.run_images([png, png[: len(png) // 2]])
    with pytest.raises(vit_infer.FormatError, match="not an image|unrecognised|empty"):
        demo_session.run_images([b"this is not an image"])
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="GIF")
    with pytest.raises(vit_infer.UnsupportedError, match="GIF"):
        demo_session.run_images([buf.getvalue()])
    with pytest.raises(ValueError, match=r"images\[0\] is a float32 array of shape \[8, 8, 3\]"):
        demo_session.run_images([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match=r"shape \[8, 8\]"):
        demo_session.run_images([np.zeros((8, 8), np.uint8)])
    with pytest.raises(ValueError, match="no pixels"):
        demo_session.run_images([np.zeros((0, 8, 3), np.uint8)])
    with pytest.raises(OSError, match="nonexistent.png"):
        demo_session.run_images(["/nonexistent.png"])
    with pytest.raises(ValueError, match="empty"):
        demo_session.run_images([])
    assert demo_session.classify(png, top_k=1)[0][0].label == "green square"


# ---- GIL, threads, cancel ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def slow():
    """A ViT with 197 tokens (golden timm_197) and a batch that takes a while on the CPU: 128 images,
    one call (~0.15 s on a quiet 2-vCPU machine; 32 took 0.04 s, too short for the cancel test's
    30 ms head start)."""
    path, x, _, _ = golden("timm_197")
    s = vit_infer.Session(vit_infer.Model(path), device="cpu", max_batch=128, threads=1)
    return s, np.ascontiguousarray(np.tile(x, (64, 1, 1, 1)))


def test_the_gil_is_released_during_a_run(slow):
    s, x = slow
    span = {}

    def worker():
        # Runs back to back for at least 0.2 s, however fast this machine runs one batch (a quiet
        # CI machine did a batch of 32 in 0.04 s): long enough to tell a held GIL from a released one.
        span["t0"] = time.perf_counter()
        while time.perf_counter() - span["t0"] < 0.2:
            s.run(x)
        span["t1"] = time.perf_counter()

    ticks = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    try:
        t = threading.Thread(target=worker)
        t.start()
        while t.is_alive():
            ticks.append(time.perf_counter())  # runs only while this thread holds the GIL
            time.sleep(0.001)
        t.join()
    finally:
        sys.setswitchinterval(old)
    duration = span["t1"] - span["t0"]
    inside = [u for u in ticks if span["t0"] < u < span["t1"]]
    assert duration > 0.05, f"the run took {duration:.3f} s: too short to tell"
    # Held GIL: no tick could land inside the run. Released: one every ~1 ms (ask for 1 in 10 ms).
    assert len(inside) >= duration / 0.01, f"{len(inside)} ticks in a {duration:.3f} s run"


def test_threads_share_a_session_exactly(demo):
    s = vit_infer.Session(demo, device="cpu", max_batch=4, threads=1)
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((3, 3, 64, 64), dtype=np.float32) for _ in range(6)]
    want = [s.run(x, ("logits", "embeddings")) for x in xs]
    got: dict[tuple[int, int], dict] = {}
    errors = []

    def worker(k):
        try:
            for r in range(5):
                i = (k + r) % len(xs)
                got[(k, r)] = (i, s.run(xs[i], ("logits", "embeddings")))
        except Exception as e:  # reported below: an assert in a thread would be lost
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(got) == 20
    for i, r in got.values():
        np.testing.assert_array_equal(r["logits"], want[i]["logits"])
        np.testing.assert_array_equal(r["embeddings"], want[i]["embeddings"])


def test_cancel_before_a_run_cancels_exactly_that_run(demo_session):
    x = np.zeros((1, 3, 64, 64), np.float32)
    want = demo_session.run(x)
    demo_session.cancel()
    with pytest.raises(vit_infer.CancelledError, match="cancelled"):
        demo_session.run(x)
    np.testing.assert_array_equal(demo_session.run(x), want)  # the next run is not affected


def test_cancel_from_another_thread_stops_a_run(slow):
    s, x = slow
    outcomes = []
    for _ in range(5):
        result = {}

        def worker():
            try:
                s.run(x)
                result["r"] = "completed"
            except vit_infer.CancelledError as e:
                result["r"] = "cancelled"
                result["msg"] = str(e)

        t = threading.Thread(target=worker)
        t.start()
        time.sleep(0.03)
        s.cancel()
        t.join()
        outcomes.append(result["r"])
        if result["r"] == "cancelled":
            assert "cancel" in result["msg"]
            break
    assert "cancelled" in outcomes, outcomes
    assert np.isfinite(s.run(x[:1])).all()  # the session works after a cancelled run


# ---- errors -------------------------------------------------------------------------------------

def test_the_package_ships_type_stubs():
    import pathlib
    pkg = pathlib.Path(vit_infer.__file__).parent
    assert (pkg / "py.typed").exists()
    stub = (pkg / "_vit_infer.pyi").read_text()
    for name in ("class Model", "class Session", "def run(", "def run_images(", "def cancel(", "def decode_image("):
        assert name in stub, name
    assert vit_infer.Session.run.__doc__ and vit_infer.Model.__doc__ and vit_infer.Session.classify.__doc__


def test_one_exception_class_per_status_code():
    assert sorted(vit_infer.ERRORS) == list(range(1, 9))
    for code, cls in vit_infer.ERRORS.items():
        assert issubclass(cls, vit_infer.VitError) and cls.code == code
        assert cls.code_name == _vit_infer.status_code_name(code)
    assert issubclass(vit_infer.InvalidArgumentError, ValueError)
    assert issubclass(vit_infer.IOError, OSError)
    assert issubclass(vit_infer.OutOfMemoryError, MemoryError)


def test_library_errors_carry_their_message(tmp_path, demo):
    with pytest.raises(vit_infer.IOError, match="does-not-exist") as e:
        vit_infer.Model(tmp_path / "does-not-exist.safetensors")
    assert e.value.code == 2
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{notjson")
    with pytest.raises(vit_infer.FormatError, match="bad.safetensors"):
        vit_infer.Model(bad)
    with pytest.raises(vit_infer.InvalidArgumentError, match="max_batch 0 must be >= 1"):
        vit_infer.Session(demo, device="cpu", max_batch=0)
    with pytest.raises(vit_infer.InvalidArgumentError, match="num_threads -1"):
        vit_infer.Session(demo, device="cpu", threads=-1)
    with pytest.raises(ValueError, match="precision 'fp8' is not one of"):
        vit_infer.Session(demo, device="cpu", precision="fp8")
    with pytest.raises(ValueError, match="device 'tpu' is not one of"):
        vit_infer.Session(demo, device="tpu")
    try:
        vit_infer.Session(demo, device="cuda")
    except (vit_infer.DeviceError, vit_infer.UnsupportedError) as err:  # no GPU / a CPU-only build
        assert "CUDA" in str(err)
    # "auto" falls back to the CPU where no CUDA session can be made.
    assert vit_infer.Session(demo, device="auto").device in ("cpu", "cuda")


def test_token_merging_session(demo):
    x = np.random.default_rng(5).standard_normal((3, 3, 64, 64)).astype(np.float32)
    plain = vit_infer.Session(demo, device="cpu", threads=2).run(x)
    s = vit_infer.Session(demo, device="cpu", threads=2, tome=8)
    assert s.tome == 8
    merged = s.run(x)
    assert merged.shape == plain.shape and np.isfinite(merged).all()
    assert np.abs(merged - plain).max() > 1e-3  # the blocks ran on merged tokens
    with pytest.raises(vit_infer.UnsupportedError, match="features output is not defined with token merging"):
        s.run(x, outputs="features")
    # 64 patches + the class token: at most 32 merged per block.
    with pytest.raises(vit_infer.InvalidArgumentError, match="tome 33 is outside 0..32"):
        vit_infer.Session(demo, device="cpu", tome=33)


# ---- python -m vit_infer classify ----------------------------------------------------------------

def test_python_m_classify_prints_what_the_program_prints(tmp_path):
    x = golden("timm_token")[1]
    np.save(tmp_path / "batch.npy", x)
    inputs = [str(p) for p in SAMPLES] + [str(tmp_path / "batch.npy"), str(tmp_path / "missing.png")]
    model = str(golden("timm_token")[0])
    py = subprocess.run([sys.executable, "-m", "vit_infer", "classify", "--model", str(DEMO), "--json", "--top-k",
                         "3", *inputs[:-2]], capture_output=True, text=True, cwd=ROOT)
    assert py.returncode == 0, py.stderr
    rows = [json.loads(line) for line in py.stdout.splitlines()]
    assert [r["file"] for r in rows] == inputs[:-2]
    npy = subprocess.run([sys.executable, "-m", "vit_infer", "classify", "--model", model, inputs[-2], inputs[-1]],
                         capture_output=True, text=True, cwd=ROOT)
    assert npy.returncode == 1  # the missing file fails, the array is classified
    assert "missing.png" in npy.stderr
    table = [line.split("\t") for line in npy.stdout.splitlines()]
    assert table[0] == ["input", "row", "rank", "class", "prob", "label"] and len(table) == 1 + 3 * 5
    cli = cli_path()
    if cli is None:
        pytest.skip("no vit-infer program beside this build to compare with")
    ref = subprocess.run([str(cli), "classify", "--model", str(DEMO), "--json", "--top-k", "3", *inputs[:-2]],
                         capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    for a, b in zip(rows, (json.loads(line) for line in ref.stdout.splitlines())):
        assert a["file"] == b["file"]
        assert [t["index"] for t in a["topk"]] == [t["index"] for t in b["topk"]]
        assert [t["label"] for t in a["topk"]] == [t["label"] for t in b["topk"]]
        assert [t["prob"] for t in a["topk"]] == pytest.approx([t["prob"] for t in b["topk"]], abs=1e-6)
    # A directory: the same files, in the same order (expected.json is skipped).
    d = subprocess.run([sys.executable, "-m", "vit_infer", "classify", "--model", str(DEMO), "--json",
                        str(DEMO / "samples")], capture_output=True, text=True, cwd=ROOT)
    ref_d = subprocess.run([str(cli), "classify", "--model", str(DEMO), "--json", str(DEMO / "samples")],
                           capture_output=True, text=True)
    assert d.returncode == 0 and ref_d.returncode == 0, d.stderr + ref_d.stderr
    assert [json.loads(x)["file"] for x in d.stdout.splitlines()] == \
        [json.loads(x)["file"] for x in ref_d.stdout.splitlines()]
    ref = subprocess.run([str(cli), "classify", "--model", model, inputs[-2]], capture_output=True, text=True)
    ref_table = [line.split("\t") for line in ref.stdout.splitlines()[1:]]
    assert [r[:4] + r[5:] for r in table[1:]] == [r[:4] + r[5:] for r in ref_table]  # label "-": none
    assert [float(r[4]) for r in table[1:]] == pytest.approx([float(r[4]) for r in ref_table], abs=2e-6)
