"""vit_infer: Vision Transformer inference in Python over libvit, the vit-infer C API.

    import vit_infer
    model = vit_infer.Model("models/demo")
    session = vit_infer.Session(model, device="auto")
    logits = session.run(x)                         # x: float32 [B, 3, H, W] or [3, H, W]
    out = session.run(x, outputs=("logits", "embeddings"))
    top = session.classify(["a.jpg", open("b.png", "rb").read()], top_k=5)

Inputs are read in place (no copy) when they are C-contiguous float32 host arrays reachable through
DLPack (``__dlpack__``: numpy, torch CPU tensors, ...), the buffer protocol or ``__array_interface__``.
Outputs are new numpy arrays. Runs release the GIL; a Session may be shared by threads (runs queue on
its lock, as in the C API; use one Session per thread for parallel throughput). Every library error
is raised as the VitError subclass of its status code, with the library's message.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union, overload

import numpy as np

from . import _vit_infer
from ._errors import (ERRORS, CancelledError, DeviceError, FormatError, InternalError, InvalidArgumentError,
                      IOError, OutOfMemoryError, UnsupportedError, VitError)

_vit_infer._register_errors(dict(ERRORS))

__version__: str = _vit_infer.version()

__all__ = [
    "Model", "Session", "calibrate", "ModelInfo", "Preprocess", "Prediction", "OUTPUTS", "decode_image", "softmax",
    "VitError", "InvalidArgumentError", "IOError", "FormatError", "UnsupportedError", "OutOfMemoryError",
    "DeviceError", "CancelledError", "InternalError",
]

#: The outputs a run can return, in the C API's order (vit_outputs).
OUTPUTS: Tuple[str, ...] = ("logits", "embeddings", "attention", "attention_layers", "features")

# Names of the C API's enum values (vit.h). Which device takes which precision is the library's
# business: every pair is passed through and the library's own error comes back.
_DEVICES = {"cpu": 0, "cuda": 1}
_PRECISIONS: Dict[str, int] = dict(_vit_infer._precisions())  # the library's table (core/precision.h)
_GEMMS = {"auto": 0, "custom": 1, "cublaslt": 2}
_POOLS = {None: 0, "token": 1, "avg": 2}
_POOL_NAMES = {1: "token", 2: "avg"}
_RESIZE_NAMES = {0: "shortest_then_crop", 1: "direct", 2: "shortest_edge_then_crop", 3: "other"}
_INTERP_NAMES = {0: "bicubic", 1: "bilinear", 2: "nearest", 3: "box", 4: "hamming", 5: "lanczos"}

ImageLike = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, Any]
OutputsArg = Union[str, Sequence[str]]


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """The resolved configuration (vit_model_info)."""

    image_height: int
    image_width: int
    patch_size: int
    in_chans: int
    hidden_size: int
    depth: int
    num_heads: int
    head_dim: int
    mlp_size: int
    num_classes: int
    num_tokens: int
    layer_norm_eps: float
    pool: str
    param_count: int
    flops_per_image: float
    embedding_size: int  # the embeddings' width: hidden_size, or the projection's (CLIP image_embeds)


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """How images are prepared for the model (vit_preprocess_info): x * rescale, then (x - mean) / std."""

    resize: str
    interpolation: str
    crop_pct: float
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    rescale: float


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One of the top-k classes of an image."""

    index: int
    label: Optional[str]  # None when the model has no labels
    prob: float


def _choice(kind: str, value: Any, table: Mapping[Any, int]) -> int:
    try:
        return table[value]
    except (KeyError, TypeError):
        names = ", ".join(repr(k) for k in table)
        raise ValueError(f"{kind} {value!r} is not one of {names}") from None


class Model:
    """A loaded checkpoint: a weights file (.safetensors, .npz) or a directory holding one and its config.json.

    Overrides (None = from the checkpoint): ``arch`` a timm architecture name, ``image_size`` the run
    resolution (position embeddings are resampled), ``num_heads``, ``layer_norm_eps``, ``pool``
    ("token" or "avg"), ``labels_file`` one label per line. A model is immutable and may be shared by
    any number of sessions and threads. Raises IOError / FormatError / UnsupportedError /
    InvalidArgumentError naming the file and the problem.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], arch: Optional[str] = None,
                 image_size: Optional[int] = None, *, num_heads: Optional[int] = None,
                 layer_norm_eps: Optional[float] = None, pool: Optional[str] = None,
                 labels_file: Optional[Union[str, "os.PathLike[str]"]] = None) -> None:
        self.path = os.fspath(path)
        self._m = _vit_infer.Model(self.path, arch or "", int(image_size or 0), int(num_heads or 0),
                                   float(layer_norm_eps or 0.0), _choice("pool", pool, _POOLS),
                                   os.fspath(labels_file) if labels_file else "")
        d = self._m.info()
        d["pool"] = _POOL_NAMES.get(d["pool"], str(d["pool"]))
        self.info: ModelInfo = ModelInfo(**d)
        p = self._m.preprocess()
        p["resize"] = _RESIZE_NAMES.get(p["resize"], str(p["resize"]))
        p["interpolation"] = _INTERP_NAMES.get(p["interpolation"], str(p["interpolation"]))
        self.preprocess: Preprocess = Preprocess(**p)
        #: Class names, one per class, or () when the checkpoint has none.
        self.labels: Tuple[str, ...] = tuple(self._m.labels())
        #: Load warnings (NaN/Inf weights, ...).
        self.warnings: Tuple[str, ...] = tuple(self._m.warnings())

    def decode_image(self, data: Union[bytes, bytearray, memoryview], name: str = "image") -> np.ndarray:
        """Decodes PNG / JPEG bytes to RGB8 ``[h, w, 3]`` uint8 as this model's framework reads an image:
        HF processors with ``do_convert_rgb`` (CLIP, SigLIP, DINOv2, AIMv2) composite transparency onto
        white as transformers' ``convert_to_rgb`` does; others drop it (Pillow's ``convert("RGB")``,
        what ``decode_image`` does). The pixels ``run_images`` takes for this model."""
        return self._m.decode_image(bytes(data), name)

    def describe(self) -> str:
        """The resolved configuration as ``vit-infer info`` prints it."""
        return self._m.describe()

    def label(self, index: int) -> Optional[str]:
        """The label of class ``index``, or None when the model has no labels."""
        return self.labels[index] if 0 <= index < len(self.labels) else None

    def __repr__(self) -> str:
        i = self.info
        return (f"Model({self.path!r}: {i.depth} blocks, hidden {i.hidden_size}, {i.num_heads} heads, "
                f"{i.image_height}x{i.image_width}/{i.patch_size}, {i.num_classes} classes)")


def _as_array(x: Any) -> Any:
    """What the binding reads: the object itself when it speaks DLPack or the buffer protocol,
    numpy's zero-copy view of an ``__array_interface__`` / ``__array__`` object, a float32 copy of a
    nested Python sequence."""
    if isinstance(x, np.ndarray) or hasattr(x, "__dlpack__"):
        return x
    if hasattr(x, "__array_interface__") or hasattr(x, "__array__"):
        return np.asarray(x)
    if isinstance(x, (list, tuple)):
        return np.asarray(x, dtype=np.float32)
    try:
        memoryview(x)
    except TypeError:
        raise TypeError(f"x of type {type(x).__name__} is not an array: pass a float32 array (numpy, an object "
                        "with __dlpack__ / __array_interface__ / the buffer protocol, or nested lists)") from None
    return x


def _flags(outputs: OutputsArg) -> Tuple[List[str], List[bool]]:
    names = [outputs] if isinstance(outputs, str) else list(outputs)
    if not names:
        raise ValueError(f"outputs is empty; ask for one or more of {', '.join(OUTPUTS)}")
    for n in names:
        if n not in OUTPUTS:
            raise ValueError(f"output {n!r} is not one of {', '.join(OUTPUTS)}")
    return names, [o in names for o in OUTPUTS]


def _pack(outputs: OutputsArg, names: List[str], parts: List[Tuple[Any, ...]]) -> Any:
    """Concatenates chunked results (attention_layers is layer-major: batch is its axis 1)."""
    out: Dict[str, np.ndarray] = {}
    for k, n in enumerate(OUTPUTS):
        if n in names:
            arrs = [p[k] for p in parts]
            axis = 1 if n == "attention_layers" else 0
            out[n] = arrs[0] if len(arrs) == 1 else np.concatenate(arrs, axis=axis)
    return out[outputs] if isinstance(outputs, str) else out


def decode_image(data: Union[bytes, bytearray, memoryview], name: str = "image") -> np.ndarray:
    """Decodes PNG / JPEG bytes to RGB8 ``[h, w, 3]`` uint8 exactly as ``vit-infer classify`` does
    (Pillow's ``convert("RGB")`` pixel for pixel). Raises FormatError / UnsupportedError /
    InvalidArgumentError with a message naming ``name``."""
    return _vit_infer.decode_image(bytes(data), name)


def _image_array(img: Any, k: int, model: Any) -> np.ndarray:
    """One image as the binding takes it: uint8 [h, w, 3], C-contiguous; files, bytes and PIL images
    with transparency decoded as the model's framework reads them (vit_model_decode_image: HF
    processors with do_convert_rgb composite transparency onto white, timm drops it)."""
    if isinstance(img, (str, os.PathLike)):
        path = os.fspath(img)
        with open(path, "rb") as f:
            return model.decode_image(f.read(), path)
    if isinstance(img, (bytes, bytearray, memoryview)):
        return model.decode_image(bytes(img), f"images[{k}]")
    if hasattr(img, "convert") and hasattr(img, "mode") and hasattr(img, "size"):  # a PIL image
        if "A" in img.getbands() or img.info.get("transparency") is not None:
            # Through PNG, which keeps the transparency, so that the library applies the model's rule.
            import io
            buf = io.BytesIO()
            img.save(buf, "PNG")
            return model.decode_image(buf.getvalue(), f"images[{k}]")
        img = np.asarray(img.convert("RGB") if img.mode != "RGB" else img)
    a = np.asarray(img)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"images[{k}] is a {a.dtype} array of shape {list(a.shape)}; an image is a file path, "
                         "encoded bytes, a PIL image or a uint8 [height, width, 3] RGB array")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"images[{k}] has shape {list(a.shape)}: no pixels")
    return np.ascontiguousarray(a)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (the probabilities ``classify`` reports)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def calibrate(model: Model, images: Any, out: Optional[Union[str, "os.PathLike[str]"]] = None,
              threads: int = 0, batch: int = 16) -> str:
    """The int8 calibration of ``model`` (vit_calibration_*): ``images`` are a float32 [N, C, H, W] array
    (normalised, at the model's size) or images as ``Session.run_images`` takes them (paths, bytes, PIL
    images, uint8 [h, w, 3] arrays: preprocessed as the model says); their fp32 forward gives every int8
    GEMM input's per-channel range, written as JSON to ``out`` (default: int8_calibration.json next to the
    model, where an int8 Session finds it). Returns the path written."""
    if not isinstance(model, Model):
        raise TypeError(f"model must be a vit_infer.Model, not {type(model).__name__}")
    c = _vit_infer.Calibration(model._m, threads)
    if isinstance(images, np.ndarray) and images.dtype == np.float32:
        arr = np.ascontiguousarray(images)
        for i in range(0, arr.shape[0] if arr.ndim == 4 else 1, batch):
            c.add(arr[i:i + batch] if arr.ndim == 4 else arr)
    else:
        items = Session._image_list(images)
        for i in range(0, len(items), batch):
            c.add_images([_image_array(img, i + k, model._m) for k, img in enumerate(items[i:i + batch])])
    path = os.fspath(out) if out is not None else ""
    c.save(path)
    if path:
        return path
    return os.path.join(os.path.dirname(os.path.abspath(model.path)) if os.path.isfile(model.path)
                        else os.path.abspath(model.path), "int8_calibration.json")


class Session:
    """An engine instance for one model (vit_session).

    ``device``: "cpu", "cuda", or "auto" (CUDA when a CUDA session can be made, else the CPU);
    ``precision``: "fp32", "fp16", "bf16", "int8" (which device supports which is the library's answer: an
    unsupported pair raises UnsupportedError; int8 is the CPU's); ``int8_calibration``: with "int8", the
    calibration file (``calibrate``); None finds int8_calibration.json next to the model, "" uses none
    (activations quantised per token at run time); ``max_batch``: the largest batch one engine run takes
    (bigger inputs run in chunks of it); ``threads``: CPU threads, 0 = all; ``max_image_size``: 0 (runs take
    the model's own size), or the largest side of other input sizes run() takes (multiples of the patch;
    the position embeddings are resampled per size as the model's framework does, each size's graph built
    once); ``tome``: 0, or token merging (ToMe) of that many tokens in every block (faster; the numbers
    change, docs/ACCURACY.md; attention maps and features are then refused); CUDA knobs ``device_id``,
    ``gemm`` ("auto", "custom", "cublaslt"), ``cuda_graphs``, ``allow_tf32``.

    Runs release the GIL. A session may be shared by threads: its runs are serialised by the
    library's lock. ``cancel()`` from any thread stops the run in progress (or the next one), which
    raises CancelledError.
    """

    def __init__(self, model: Model, device: str = "auto", precision: str = "fp32", max_batch: int = 64,
                 threads: int = 0, *, device_id: int = 0, gemm: str = "auto", cuda_graphs: bool = True,
                 allow_tf32: bool = False, max_image_size: int = 0,
                 int8_calibration: Optional[Union[str, "os.PathLike[str]"]] = None, tome: int = 0) -> None:
        if not isinstance(model, Model):
            raise TypeError(f"model must be a vit_infer.Model, not {type(model).__name__}")
        self.model = model
        self.precision = precision
        prec = _choice("precision", precision, _PRECISIONS)
        g = _choice("gemm", gemm, _GEMMS)
        cal = (os.fspath(int8_calibration) if int8_calibration is not None else "", int8_calibration is None)
        if device == "auto" and precision == "int8":
            device = "cpu"  # int8 runs on the CPU only
        if device == "auto":
            try:
                self._s = _vit_infer.Session(model._m, _DEVICES["cuda"], device_id, prec, max_batch, threads, g,
                                             cuda_graphs, allow_tf32, max_image_size, *cal, tome)
                self.device = "cuda"
            except (DeviceError, UnsupportedError):  # no device, or a build without CUDA
                self._s = _vit_infer.Session(model._m, _DEVICES["cpu"], device_id, prec, max_batch, threads, g,
                                             cuda_graphs, allow_tf32, max_image_size, *cal, tome)
                self.device = "cpu"
        else:
            self._s = _vit_infer.Session(model._m, _choice("device", device, _DEVICES), device_id, prec, max_batch,
                                         threads, g, cuda_graphs, allow_tf32, max_image_size, *cal, tome)
            self.device = device
        self.max_batch: int = max_batch
        self.max_image_size: int = max_image_size
        self.tome: int = tome

    def __repr__(self) -> str:
        return f"Session({self.model.path!r}, device={self.device!r}, precision={self.precision!r}, " \
               f"max_batch={self.max_batch})"

    @overload
    def run(self, x: Any, outputs: str = ...) -> np.ndarray: ...
    @overload
    def run(self, x: Any, outputs: Sequence[str]) -> Dict[str, np.ndarray]: ...

    def run(self, x: Any, outputs: OutputsArg = "logits") -> Any:
        """Runs normalised float32 images ``x`` ``[B, C, H, W]`` (or ``[C, H, W]``, a batch of one) at the
        model's size or, with ``max_image_size`` set, at their own H x W (T below is that size's tokens).

        ``outputs``: one name of OUTPUTS (returns that array) or a sequence of them (returns a dict):
        logits ``[B, classes]``, embeddings ``[B, hidden]`` (the pooled features the head reads),
        attention ``[B, heads, T, T]`` (last block), attention_layers ``[depth, B, T, T]`` (every
        block, head-averaged), features ``[B, T, hidden]`` (the final tokens after the final norm,
        timm's forward_features: prefix tokens, then the patches in grid order). ``x`` is read in
        place; a batch over max_batch runs in chunks.
        Wrong dtype -> TypeError, wrong shape or a non-contiguous array -> ValueError.
        """
        names, flags = _flags(outputs)
        a = _as_array(x)
        ndim = getattr(a, "ndim", None)
        shape = getattr(a, "shape", None)
        if ndim == 4 and shape is not None and shape[0] > self.max_batch:
            parts = [self._s.run(a[i:i + self.max_batch], *flags) for i in range(0, shape[0], self.max_batch)]
        else:
            parts = [self._s.run(a, *flags)]
        return _pack(outputs, names, parts)

    @overload
    def run_images(self, images: Any, outputs: str = ...) -> np.ndarray: ...
    @overload
    def run_images(self, images: Any, outputs: Sequence[str]) -> Dict[str, np.ndarray]: ...

    def run_images(self, images: Any, outputs: OutputsArg = "logits") -> Any:
        """Runs raw images with the model's own preprocessing (resize, crop, normalise; Pillow-exact).

        ``images``: one image or a sequence of them; an image is a file path, encoded PNG / JPEG bytes,
        a PIL image, or a uint8 ``[h, w, 3]`` RGB array; sizes may differ. Outputs as in run(), one row
        per image. A bad image raises the error of its kind naming it (its path, or images[k]).
        """
        names, flags = _flags(outputs)
        items = self._image_list(images)
        arrays = [_image_array(img, k, self.model._m) for k, img in enumerate(items)]
        parts = [self._s.run_images(arrays[i:i + self.max_batch], *flags)
                 for i in range(0, len(arrays), self.max_batch)]
        return _pack(outputs, names, parts)

    def classify(self, images: Any, top_k: int = 5) -> List[List[Prediction]]:
        """The ``top_k`` classes of each image (as run_images takes them), most probable first."""
        if top_k < 1:
            raise ValueError(f"top_k {top_k} must be >= 1")
        return self.top_k(self.run_images(images, "logits"), top_k)

    def top_k(self, logits: np.ndarray, top_k: int = 5) -> List[List[Prediction]]:
        """The ``top_k`` classes of each row of ``logits`` with softmax probabilities."""
        probs = softmax(logits)
        k = min(top_k, probs.shape[1])
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [[Prediction(int(c), self.model.label(int(c)), float(row[c])) for c in idx]
                for row, idx in zip(probs, order)]

    def cancel(self) -> None:
        """Stops the run in progress at its next layer boundary (it raises CancelledError); with no run in
        progress, the next run is cancelled at once. Safe from any thread."""
        self._s.cancel()

    @staticmethod
    def _image_list(images: Any) -> List[Any]:
        if isinstance(images, np.ndarray) and images.ndim == 4:  # a batch [N, h, w, 3]
            return list(images)
        if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray)) or \
                hasattr(images, "convert"):
            return [images]
        items = list(images)
        if not items:
            raise ValueError("images is empty; pass at least one image")
        return items
