"""vit_infer.serve: a Ray Serve application over the module (one Model + Session per replica).

    serve run python/vit_infer/serve_config.yaml        # or: serve run vit_infer.serve:app_builder model=...

HTTP (FastAPI ingress):
  POST /classify?top_k=5   body: an image (JPEG / PNG bytes, decoded as vit-infer does) or a .npy
                           float32 array [3, H, W] / [1, 3, H, W] (already normalised)
                           -> {"topk": [{"index", "label", "prob"}, ...]}
  POST /embed              same bodies -> {"embedding": [...], "dim": D}
  GET  /healthz            200 {"status": "ok"} while the replica's session runs
  GET  /readyz             200 with the model's configuration once the replica has loaded it

Requests are decoded and checked one by one, then queued into dynamic batches (``@serve.batch``:
``max_batch_size``, ``batch_wait_timeout_s``) that run as one engine call, off the event loop (the
module releases the GIL). A bad body (not an image, a corrupt one, a wrong dtype or shape, over
``max_body_bytes``) gets HTTP 400 with the message before it joins a batch; should the engine still
refuse a batch, its items are re-run one by one so that only the bad one fails. Replica resources
(``num_cpus`` / ``num_gpus``), replica count and ``max_ongoing_requests`` are deployment options: set
them in the Serve YAML (serve_config.yaml) or through ``app_builder``'s arguments.
"""

import asyncio
import io
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

import numpy as np
from fastapi import FastAPI, HTTPException, Request
import ray
from ray import serve

import vit_infer

api = FastAPI(title="vit-infer", description="Vision Transformer classification and embeddings")

_NPY_MAGIC = b"\x93NUMPY"
#: Errors that a request's own bytes cause: they become HTTP 400.
_INPUT_ERRORS = (vit_infer.FormatError, vit_infer.UnsupportedError, vit_infer.InvalidArgumentError, ValueError,
                 TypeError)


@dataclass
class _Item:
    """One request's input, checked: raw RGB8 pixels [h, w, 3] or a normalised float32 [3, H, W] array."""

    pixels: Optional[np.ndarray] = None
    array: Optional[np.ndarray] = None


def _default_threads() -> int:
    """The CPUs Ray gave this replica (num_cpus), so that replicas sharing a node do not oversubscribe."""
    try:
        n = ray.get_runtime_context().get_assigned_resources().get("CPU", 0)
        return max(1, int(n)) if n else 0
    except Exception:  # outside a Ray worker
        return 0


def run_items(session: vit_infer.Session, items: List[_Item]) -> List[Union[Dict[str, np.ndarray], Exception]]:
    """Runs checked request inputs: one engine call for the images and one for the arrays among
    `items`. Returns per item its {"logits", "embeddings"} rows, or the exception its input caused:
    when the engine refuses a group, its items are re-run one by one so only the bad one fails."""
    out: List[Any] = [None] * len(items)
    groups = {"pixels": [k for k, it in enumerate(items) if it.pixels is not None],
              "array": [k for k, it in enumerate(items) if it.array is not None]}
    for kind, idx in groups.items():
        if not idx:
            continue
        try:
            if kind == "pixels":
                r = session.run_images([items[k].pixels for k in idx], ("logits", "embeddings"))
            else:
                r = session.run(np.stack([items[k].array for k in idx]), ("logits", "embeddings"))
            for j, k in enumerate(idx):
                out[k] = {name: v[j] for name, v in r.items()}
        except _INPUT_ERRORS as e:
            if len(idx) == 1:
                out[idx[0]] = e
            else:
                for k in idx:
                    out[k] = run_items(session, [items[k]])[0]
    return out


@serve.deployment(name="VitDeployment", max_ongoing_requests=64, health_check_period_s=5,
                  ray_actor_options={"num_cpus": 1})
@serve.ingress(api)
class VitDeployment:
    """A replica: loads the model, makes one Session, and answers /classify, /embed, /healthz, /readyz."""

    def __init__(self, model: str, device: str = "auto", precision: str = "fp32", max_batch_size: int = 16,
                 batch_wait_timeout_s: float = 0.005, batching: bool = True, threads: Optional[int] = None,
                 max_body_bytes: int = 16 << 20, top_k: int = 5) -> None:
        if max_batch_size < 1 or batch_wait_timeout_s < 0 or max_body_bytes < 1 or top_k < 1:
            raise ValueError("max_batch_size, max_body_bytes and top_k must be >= 1, batch_wait_timeout_s >= 0")
        self.model = vit_infer.Model(model)
        self.session = vit_infer.Session(self.model, device=device, precision=precision, max_batch=max_batch_size,
                                         threads=_default_threads() if threads is None else threads)
        self.batching = batching
        self.max_batch_size = max_batch_size
        self.max_body_bytes = max_body_bytes
        self.top_k = top_k
        self._run_batch.set_max_batch_size(max_batch_size)
        self._run_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)
        i = self.model.info
        self._shape = (i.in_chans, i.image_height, i.image_width)

    # ---- the input of one request ----------------------------------------------------------------

    async def _body(self, request: Request) -> bytes:
        """The body, refused past max_body_bytes (by its Content-Length, else while it streams in)."""
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(400, f"body of {declared} bytes exceeds the limit of {limit} bytes")
        chunks, n = [], 0
        async for chunk in request.stream():
            n += len(chunk)
            if n > limit:
                raise HTTPException(400, f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body:
            raise HTTPException(400, "empty body: send JPEG / PNG bytes or a .npy float32 array")
        return body

    def _parse(self, body: bytes) -> _Item:
        if body.startswith(_NPY_MAGIC):
            try:
                a = np.load(io.BytesIO(body), allow_pickle=False)
            except Exception as e:  # numpy's reasons are many: truncated, bad header, object arrays
                raise ValueError(f"body is not a readable .npy array: {e}") from None
            if a.dtype != np.float32:
                raise ValueError(f".npy array is {a.dtype}; send float32 normalised pixels")
            if a.ndim == 4 and a.shape[0] == 1:
                a = a[0]
            if tuple(a.shape) != self._shape:
                want = list(self._shape)
                raise ValueError(f".npy array has shape {list(a.shape)}; the model takes {want} (or [1, *{want}])")
            if not np.isfinite(a).all():
                raise ValueError(".npy array holds NaN or infinite values")
            return _Item(array=np.ascontiguousarray(a))
        return _Item(pixels=vit_infer.decode_image(body, "body"))

    async def _item(self, request: Request) -> _Item:
        body = await self._body(request)
        try:
            return await asyncio.to_thread(self._parse, body)  # decoding releases the GIL
        except _INPUT_ERRORS as e:
            raise HTTPException(400, str(e)) from None

    # ---- running ----------------------------------------------------------------------------------

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _run_batch(self, items: List[_Item]) -> List[Union[Dict[str, np.ndarray], Exception]]:
        return await asyncio.to_thread(run_items, self.session, items)

    async def _answer(self, request: Request) -> Dict[str, np.ndarray]:
        item = await self._item(request)
        if self.batching:
            r = await self._run_batch(item)
        else:
            r = (await asyncio.to_thread(run_items, self.session, [item]))[0]
        if isinstance(r, Exception):
            raise HTTPException(400, str(r))
        return r

    # ---- endpoints --------------------------------------------------------------------------------

    @api.post("/classify")
    async def classify(self, request: Request, top_k: Optional[int] = None) -> Dict[str, Any]:
        k = self.top_k if top_k is None else top_k
        if k < 1:
            raise HTTPException(400, f"top_k {k} must be >= 1")
        if self.model.info.num_classes == 0:
            raise HTTPException(400, "the model has no classifier head; use /embed")
        r = await self._answer(request)
        top = self.session.top_k(r["logits"][None], k)[0]
        return {"topk": [{"index": p.index, "label": p.label, "prob": p.prob} for p in top]}

    @api.post("/embed")
    async def embed(self, request: Request) -> Dict[str, Any]:
        r = await self._answer(request)
        e = r["embeddings"]
        return {"embedding": e.tolist(), "dim": int(e.shape[0])}

    @api.get("/healthz")
    async def healthz(self) -> Dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz(self) -> Dict[str, Any]:
        i = self.model.info
        return {"ready": True, "model": self.model.path, "device": self.session.device,
                "precision": self.session.precision, "image_size": [i.image_height, i.image_width],
                "num_classes": i.num_classes, "hidden_size": i.hidden_size, "batching": self.batching,
                "max_batch_size": self.max_batch_size, "pid": os.getpid(),
                "node_id": ray.get_runtime_context().get_node_id()}

    async def check_health(self) -> None:
        """Serve's periodic replica check: a one-image run must succeed (raises, and Serve replaces
        the replica, when the session no longer runs). Off the event loop: it may wait for a batch."""
        await asyncio.to_thread(self.session.run, np.zeros((1, *self._shape), np.float32), "embeddings")


def app_builder(args: Dict[str, Any]) -> serve.Application:
    """The application for ``serve run vit_infer.serve:app_builder`` / a Serve YAML's ``import_path``:
    ``args`` are VitDeployment's arguments (model, device, precision, max_batch_size,
    batch_wait_timeout_s, batching, threads, max_body_bytes, top_k); ``model`` is required.
    Replica options (num_replicas, ray_actor_options num_cpus / num_gpus, max_ongoing_requests)
    come from the YAML's ``deployments`` section."""
    args = dict(args)
    if "model" not in args:
        raise ValueError("app_builder needs args.model: a weights file or model directory")
    for key, conv in (("max_batch_size", int), ("batch_wait_timeout_s", float), ("max_body_bytes", int),
                      ("top_k", int), ("threads", int)):
        if key in args and args[key] is not None:
            args[key] = conv(args[key])
    if isinstance(args.get("batching"), str):
        args["batching"] = args["batching"].lower() in ("1", "true", "yes", "on")
    return VitDeployment.bind(**args)
