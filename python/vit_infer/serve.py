"""vit_infer.serve: a Ray Serve application over the module (one Model + Session per replica).

    python -m vit_infer serve --model models/demo --port 8000     # a local Ray + this app
    serve run python/serve_config.yaml                             # or: serve run vit_infer.serve:app_builder model=...

HTTP (FastAPI ingress):
  Open Inference Protocol v2 (KServe v2 / Triton; vit_infer/v2.py), the model named ``name``
  (default: the model folder's base name):
  GET  /v2                          server metadata (extensions binary_tensor_data, classification)
  GET  /v2/health/live, /v2/health/ready
  GET  /v2/models/{name}[/versions/1], .../ready
  POST /v2/models/{name}[/versions/1]/infer
       inputs: pixel_values FP32 [B, 3, H, W] (normalised) or image BYTES [B] (encoded JPEG / PNG,
       preprocessed here with the model's own pipeline, as vit-infer classify does)
       outputs: logits [B, classes], embeddings [B, E], features [B, T, D]; parameters.classification
       K on one gives Triton's top-K strings; default outputs: logits (when the model has a head) and
       embeddings. JSON tensors or the binary tensor extension. Errors: {"error": message} with 400
       (bad tensor, datatype, shape, unknown input / output), 404 (unknown model), 413 (body too large).
  gRPC: GRPCInferenceService (ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata,
  ModelInfer) through Serve's gRPC proxy (grpc_options.grpc_servicer_functions = GRPC_SERVICER):
  the same inputs and outputs as messages, errors as INVALID_ARGUMENT / NOT_FOUND with the message.
  POST /classify?top_k=5   body: an image (JPEG / PNG bytes) or a .npy float32 array [3, H, W] /
                           [1, 3, H, W] (already normalised) -> {"topk": [{"index", "label", "prob"}, ...]}
  POST /embed              same bodies -> {"embedding": [...], "dim": D}
  GET  /healthz            200 {"status": "ok"} while the replica's session runs
  GET  /readyz             200 with the model's configuration once the replica has loaded it

Requests are decoded and checked one by one, then queued into dynamic batches (``@serve.batch``:
``max_batch_size`` requests, ``batch_wait_timeout_s``) whose rows run as one engine call (in chunks
of ``max_batch_size`` rows), off the event loop (the module releases the GIL). A bad body gets its
4xx with the message before it joins a batch; should the engine still refuse a batch, its requests
are re-run one by one so that only the bad one fails. Replica resources (``num_cpus`` /
``num_gpus``), replica count and ``max_ongoing_requests`` are deployment options: set them in the
Serve YAML (serve_config.yaml), through ``app_builder``'s arguments or ``python -m vit_infer serve``.
"""

import asyncio
import io
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
import ray
from ray import serve

import vit_infer
from vit_infer import v2

api = FastAPI(title="vit-infer", description="Vision Transformer classification and embeddings")

_NPY_MAGIC = b"\x93NUMPY"
#: Errors that a request's own bytes cause: they become HTTP 400.
_INPUT_ERRORS = (vit_infer.FormatError, vit_infer.UnsupportedError, vit_infer.InvalidArgumentError, ValueError,
                 TypeError)
#: The outputs the v2 route serves, and those it returns when the request names none.
V2_OUTPUTS = ("logits", "embeddings", "features")
#: What Serve's gRPC proxy registers (grpc_options.grpc_servicer_functions) to serve GRPCInferenceService.
GRPC_SERVICER = "vit_infer._grpc.grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server"


@dataclass
class _Item:
    """One request's input, checked: decoded RGB8 images [h, w, 3] or a normalised float32 [b, 3, H, W]
    array, and the outputs it wants."""

    pixels: Optional[List[np.ndarray]] = None
    array: Optional[np.ndarray] = None
    outputs: Tuple[str, ...] = ("logits", "embeddings")

    @property
    def rows(self) -> int:
        return len(self.pixels) if self.pixels is not None else int(self.array.shape[0])


def _default_threads() -> int:
    """The CPUs Ray gave this replica (num_cpus), so that replicas sharing a node do not oversubscribe."""
    try:
        n = ray.get_runtime_context().get_assigned_resources().get("CPU", 0)
        return max(1, int(n)) if n else 0
    except Exception:  # outside a Ray worker
        return 0


def default_name(model: str) -> str:
    """The model's name in the v2 routes: the model folder's base name (a file: its stem)."""
    p = os.path.normpath(str(model))
    base = os.path.basename(p)
    return base if os.path.isdir(p) else os.path.splitext(base)[0]


def run_items(session: vit_infer.Session, items: List[_Item]) -> List[Union[Dict[str, np.ndarray], Exception]]:
    """Runs checked request inputs: one engine call for the images and one for the arrays among
    `items` (the union of their outputs). Returns per item its {output: rows} arrays, or the
    exception its input caused: when the engine refuses a group, its items are re-run one by one
    so only the bad one fails."""
    out: List[Any] = [None] * len(items)
    groups = {"pixels": [k for k, it in enumerate(items) if it.pixels is not None],
              "array": [k for k, it in enumerate(items) if it.array is not None]}
    for kind, idx in groups.items():
        if not idx:
            continue
        names = tuple(n for n in vit_infer.OUTPUTS if any(n in items[k].outputs for k in idx))
        try:
            if kind == "pixels":
                r = session.run_images([p for k in idx for p in items[k].pixels], names)
            else:
                arrays = [items[k].array for k in idx]
                r = session.run(arrays[0] if len(arrays) == 1 else np.concatenate(arrays), names)
            row = 0
            for k in idx:
                n = items[k].rows
                out[k] = {name: r[name][row:row + n] for name in items[k].outputs}
                row += n
        except _INPUT_ERRORS as e:
            if len(idx) == 1:
                out[idx[0]] = e
            else:
                for k in idx:
                    out[k] = run_items(session, [items[k]])[0]
    return out


def _v2_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@serve.deployment(name="VitDeployment", max_ongoing_requests=64, health_check_period_s=5,
                  ray_actor_options={"num_cpus": 1})
@serve.ingress(api)
class VitDeployment:
    """A replica: loads the model, makes one Session, and answers the v2 routes, /classify, /embed,
    /healthz and /readyz."""

    def __init__(self, model: str, device: str = "auto", precision: str = "fp32", max_batch_size: int = 16,
                 batch_wait_timeout_s: float = 0.005, batching: bool = True, threads: Optional[int] = None,
                 max_body_bytes: int = 16 << 20, top_k: int = 5, name: Optional[str] = None) -> None:
        if max_batch_size < 1 or batch_wait_timeout_s < 0 or max_body_bytes < 1 or top_k < 1:
            raise ValueError("max_batch_size, max_body_bytes and top_k must be >= 1, batch_wait_timeout_s >= 0")
        self.model = vit_infer.Model(model)
        self.session = vit_infer.Session(self.model, device=device, precision=precision, max_batch=max_batch_size,
                                         threads=_default_threads() if threads is None else threads)
        self.name = name or default_name(model)
        self.batching = batching
        self.max_batch_size = max_batch_size
        self.max_body_bytes = max_body_bytes
        self.top_k = top_k
        self._run_batch.set_max_batch_size(max_batch_size)
        self._run_batch.set_batch_wait_timeout_s(batch_wait_timeout_s)
        i = self.model.info
        self._shape = (i.in_chans, i.image_height, i.image_width)

    # ---- the input of one request ----------------------------------------------------------------

    async def _body(self, request: Request, too_large: int = 400) -> bytes:
        """The body, refused past max_body_bytes (by its Content-Length, else while it streams in)
        with HTTP `too_large` (the legacy routes answer 400, the v2 routes 413)."""
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise HTTPException(too_large, f"body of {declared} bytes exceeds the limit of {limit} bytes")
        chunks, n = [], 0
        async for chunk in request.stream():
            n += len(chunk)
            if n > limit:
                raise HTTPException(too_large, f"body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body:
            raise HTTPException(400, "empty body: send JPEG / PNG bytes or a .npy float32 array"
                                if too_large == 400 else "empty body: send an infer request")
        return body

    def _checked_array(self, a: np.ndarray, what: str) -> np.ndarray:
        """A float32 [b, C, H, W] batch of the model's size with finite values, else ValueError."""
        if a.dtype != np.float32:
            raise ValueError(f"{what} is {a.dtype}; send float32 normalised pixels")
        want = list(self._shape)
        if a.ndim != 4 or tuple(a.shape[1:]) != self._shape or a.shape[0] < 1:
            raise ValueError(f"{what} has shape {list(a.shape)}; the model takes [B, {', '.join(map(str, want))}]")
        if not np.isfinite(a).all():
            raise ValueError(f"{what} holds NaN or infinite values")
        return np.ascontiguousarray(a)

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
            return _Item(array=self._checked_array(a[None], ".npy array"))
        return _Item(pixels=[self.model.decode_image(body, "body")])

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

    async def _run(self, item: _Item) -> Union[Dict[str, np.ndarray], Exception]:
        if self.batching:
            return await self._run_batch(item)
        return (await asyncio.to_thread(run_items, self.session, [item]))[0]

    async def _answer(self, request: Request) -> Dict[str, np.ndarray]:
        r = await self._run(await self._item(request))
        if isinstance(r, Exception):
            raise HTTPException(400, str(r))
        return {k: v[0] for k, v in r.items()}

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
        return {"ready": True, "model": self.model.path, "name": self.name, "device": self.session.device,
                "precision": self.session.precision, "image_size": [i.image_height, i.image_width],
                "num_classes": i.num_classes, "hidden_size": i.hidden_size, "batching": self.batching,
                "max_batch_size": self.max_batch_size, "pid": os.getpid(),
                "node_id": ray.get_runtime_context().get_node_id()}

    # ---- Open Inference Protocol v2 ------------------------------------------------------------

    def _v2_outputs(self) -> Dict[str, List[int]]:
        i = self.model.info
        shapes = {"embeddings": [-1, i.embedding_size], "features": [-1, i.num_tokens, i.hidden_size]}
        if i.num_classes:
            shapes = {"logits": [-1, i.num_classes], **shapes}
        return shapes

    def _v2_unknown(self, model_name: str, version: Optional[str]) -> Optional[str]:
        """None for this replica's model (version absent or "1"), else why not (a 404)."""
        if model_name != self.name:
            return f"unknown model '{model_name}'; this server serves '{self.name}'"
        if version not in (None, "", "1"):
            return f"unknown version '{version}' of model '{model_name}'; it has version '1'"
        return None

    def _v2_model(self, model_name: str, version: Optional[str]) -> Optional[JSONResponse]:
        why = self._v2_unknown(model_name, version)
        return None if why is None else _v2_error(404, why)

    def _v2_metadata(self) -> Dict[str, Any]:
        c, h, w = self._shape
        return {"name": self.name, "versions": ["1"], "platform": "vit-infer",
                "inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": [-1, c, h, w]},
                           {"name": "image", "datatype": "BYTES", "shape": [-1]}],
                "outputs": [{"name": n, "datatype": "FP32", "shape": s} for n, s in self._v2_outputs().items()]}

    @api.get("/v2")
    async def v2_server_metadata(self) -> Dict[str, Any]:
        return {"name": "vit-infer", "version": vit_infer.__version__,
                "extensions": ["binary_tensor_data", "classification"]}

    @api.get("/v2/health/live")
    async def v2_live(self) -> Dict[str, bool]:
        return {"live": True}

    @api.get("/v2/health/ready")
    async def v2_ready(self) -> Dict[str, bool]:
        return {"ready": True}  # a replica receives requests only once its model is loaded

    @api.get("/v2/models/{model_name}")
    @api.get("/v2/models/{model_name}/versions/{version}")
    async def v2_model_metadata(self, model_name: str, version: Optional[str] = None) -> Any:
        bad = self._v2_model(model_name, version)
        return bad if bad is not None else self._v2_metadata()

    @api.get("/v2/models/{model_name}/ready")
    @api.get("/v2/models/{model_name}/versions/{version}/ready")
    async def v2_model_ready(self, model_name: str, version: Optional[str] = None) -> Any:
        bad = self._v2_model(model_name, version)
        return bad if bad is not None else {"name": self.name, "ready": True}

    def _v2_item(self, req: v2.InferRequest) -> Tuple[_Item, List[v2.RequestedOutput]]:
        """The checked input and outputs of an infer request; ProtocolError(400) names the fault."""
        known = self._v2_outputs()
        if req.outputs is None:
            wanted = [v2.RequestedOutput(n) for n in ("logits", "embeddings") if n in known]
        else:
            wanted = req.outputs
            if not wanted:
                raise v2.ProtocolError(400, "'outputs' is empty; name at least one of " + ", ".join(known))
        for o in wanted:
            if o.name not in known:
                why = " (the model has no classifier head)" if o.name == "logits" else ""
                raise v2.ProtocolError(400, f"unknown output '{o.name}'{why}; the model has " + ", ".join(known))
            if o.classification and o.name == "features":
                raise v2.ProtocolError(400, "classification applies to a [B, N] output (logits, embeddings), "
                                            "not features")
        if len(req.inputs) != 1:
            raise v2.ProtocolError(400, f"{len(req.inputs)} inputs; send one: pixel_values (FP32 [B, "
                                        f"{', '.join(map(str, self._shape))}]) or image (BYTES [B])")
        t = req.inputs[0]
        outs = tuple(dict.fromkeys(o.name for o in wanted))
        if t.name == "pixel_values":
            if t.datatype != "FP32":
                raise v2.ProtocolError(400, f"input 'pixel_values' is {t.datatype}; it takes FP32")
            try:
                return _Item(array=self._checked_array(t.data, "input 'pixel_values'"), outputs=outs), wanted
            except ValueError as e:
                raise v2.ProtocolError(400, str(e)) from None
        if t.name == "image":
            if t.datatype != "BYTES":
                raise v2.ProtocolError(400, f"input 'image' is {t.datatype}; it takes BYTES (encoded JPEG / PNG)")
            if len(t.shape) not in (1, 2) or (len(t.shape) == 2 and t.shape[1] != 1) or not t.shape[0]:
                raise v2.ProtocolError(400, f"input 'image' has shape {list(t.shape)}; it takes [B] (or [B, 1])")
            pixels = []
            for k, b in enumerate(t.data):
                try:
                    pixels.append(self.model.decode_image(b, f"image[{k}]"))
                except _INPUT_ERRORS as e:
                    raise v2.ProtocolError(400, str(e)) from None
            return _Item(pixels=pixels, outputs=outs), wanted
        raise v2.ProtocolError(400, f"unknown input '{t.name}'; the model takes pixel_values or image")

    async def _v2_run(self, item: _Item, wanted: List[v2.RequestedOutput]) -> List[Tuple[str, np.ndarray, Optional[bool]]]:
        """Runs a checked v2 input: (name, array, binary) per requested output."""
        r = await self._run(item)
        if isinstance(r, Exception):
            raise v2.ProtocolError(400, str(r))
        outs = []
        for o in wanted:
            a = r[o.name]
            if o.classification:
                a = v2.classification(a, o.classification, self.model.label if o.name == "logits" else lambda c: None)
            outs.append((o.name, a, o.binary))
        return outs

    def _v2_parse(self, body: bytes, header: Optional[str], encoding: Optional[str]):
        body = v2.decompress(body, encoding, self.max_body_bytes)
        req = v2.parse_infer_request(body, header)
        return (req, *self._v2_item(req))

    @api.post("/v2/models/{model_name}/infer")
    @api.post("/v2/models/{model_name}/versions/{version}/infer")
    async def v2_infer(self, model_name: str, request: Request, version: Optional[str] = None) -> Response:
        bad = self._v2_model(model_name, version)
        if bad is not None:
            return bad
        try:
            body = await self._body(request, too_large=413)
        except HTTPException as e:
            return _v2_error(e.status_code, e.detail)
        try:  # parsing and decoding off the event loop (decoding releases the GIL)
            req, item, wanted = await asyncio.to_thread(
                self._v2_parse, body, request.headers.get(v2.HEADER_LENGTH), request.headers.get("content-encoding"))
        except v2.ProtocolError as e:
            return _v2_error(e.status, str(e))
        try:
            outs = await self._v2_run(item, wanted)
        except v2.ProtocolError as e:
            return _v2_error(e.status, str(e))
        payload, json_len = await asyncio.to_thread(v2.encode_response, self.name, req, outs)
        if json_len is None:
            return Response(payload, media_type="application/json")
        return Response(payload, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(json_len)})

    # ---- Open Inference Protocol v2 over gRPC: GRPCInferenceService's RPCs, called by Serve's gRPC
    # proxy by name with the request message (vit_infer/_grpc; `serve --grpc-port`) ----------------

    @staticmethod
    def _grpc_fail(grpc_context: Any, status: int, message: str) -> None:
        """Sets the gRPC status of a v2 error (400 INVALID_ARGUMENT, 404 NOT_FOUND, 413
        RESOURCE_EXHAUSTED) and raises, so that Serve's proxy answers with it."""
        import grpc
        code = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
                413: grpc.StatusCode.RESOURCE_EXHAUSTED}.get(status, grpc.StatusCode.INTERNAL)
        if grpc_context is not None:
            grpc_context.set_code(code)
            grpc_context.set_details(message)
        raise v2.ProtocolError(status, message)

    async def ServerLive(self, request: Any, grpc_context: Any = None) -> Any:  # noqa: N802 (the RPC's name)
        from ._grpc import grpc_predict_v2_pb2 as pb
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, grpc_context: Any = None) -> Any:  # noqa: N802
        from ._grpc import grpc_predict_v2_pb2 as pb
        return pb.ServerReadyResponse(ready=True)

    async def ModelReady(self, request: Any, grpc_context: Any = None) -> Any:  # noqa: N802
        from ._grpc import grpc_predict_v2_pb2 as pb
        why = self._v2_unknown(request.name, request.version)
        if why is not None:
            self._grpc_fail(grpc_context, 404, why)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, grpc_context: Any = None) -> Any:  # noqa: N802
        from ._grpc import grpc_predict_v2_pb2 as pb
        return pb.ServerMetadataResponse(name="vit-infer", version=vit_infer.__version__, extensions=["classification"])

    async def ModelMetadata(self, request: Any, grpc_context: Any = None) -> Any:  # noqa: N802
        from ._grpc import grpc_predict_v2_pb2 as pb
        why = self._v2_unknown(request.name, request.version)
        if why is not None:
            self._grpc_fail(grpc_context, 404, why)
        m = self._v2_metadata()
        t = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(name=m["name"], versions=m["versions"], platform=m["platform"],
                                        inputs=[t(**x) for x in m["inputs"]], outputs=[t(**x) for x in m["outputs"]])

    async def ModelInfer(self, request: Any, grpc_context: Any = None) -> Any:  # noqa: N802
        from ._grpc import grpc_predict_v2_pb2 as pb
        why = self._v2_unknown(request.model_name, request.model_version)
        if why is not None:
            self._grpc_fail(grpc_context, 404, why)
        try:
            req = v2.request_from_grpc(request)
            item, wanted = await asyncio.to_thread(self._v2_item, req)
            return v2.response_to_grpc(pb, self.name, req, await self._v2_run(item, wanted))
        except v2.ProtocolError as e:
            self._grpc_fail(grpc_context, e.status, str(e))

    async def check_health(self) -> None:
        """Serve's periodic replica check: a one-image run must succeed (raises, and Serve replaces
        the replica, when the session no longer runs). Off the event loop: it may wait for a batch."""
        await asyncio.to_thread(self.session.run, np.zeros((1, *self._shape), np.float32), "embeddings")


def app_builder(args: Dict[str, Any]) -> serve.Application:
    """The application for ``serve run vit_infer.serve:app_builder`` / a Serve YAML's ``import_path``:
    ``args`` are VitDeployment's arguments (model, device, precision, max_batch_size,
    batch_wait_timeout_s, batching, threads, max_body_bytes, top_k, name); ``model`` is required.
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


def main(argv: Sequence[str]) -> int:
    """``python -m vit_infer serve``: a local Ray (or ``--address``'s cluster), the app on HOST:PORT,
    a line on stderr saying where it listens, and a clean stop on SIGINT / SIGTERM (exit 0)."""
    import argparse
    import signal
    import sys
    import threading

    from .__main__ import default_model

    dm = default_model()
    ap = argparse.ArgumentParser(prog="python -m vit_infer serve",
                                 description="Serve a model over HTTP (Open Inference Protocol v2, /classify, /embed) "
                                             "on a local Ray Serve.")
    ap.add_argument("--model", default=dm, required=dm is None,
                    help="weights file or directory (default: $VIT_INFER_MODEL, else ./models/demo)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--grpc-port", type=int, default=None,
                    help="also serve the Open Inference Protocol's GRPCInferenceService on this port (Serve's "
                         "gRPC proxy)")
    ap.add_argument("--name", default=None, help="the model's name in /v2/models/NAME (default: the folder's name)")
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--replica-cpus", type=float, default=None,
                    help="CPUs per replica (default: the machine's CPUs / replicas, at least 1); the engine "
                         "runs that many threads")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--precision", default="fp32", help="fp32, fp16 or bf16")
    ap.add_argument("--gpus-per-replica", type=float, default=0)
    ap.add_argument("--max-batch-size", type=int, default=16)
    ap.add_argument("--batch-wait-timeout-s", type=float, default=0.005)
    ap.add_argument("--no-batching", action="store_true", help="run each request alone")
    ap.add_argument("--max-body-bytes", type=int, default=16 << 20)
    ap.add_argument("--max-ongoing-requests", type=int, default=64)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--address", default=None, help="an existing Ray cluster (default: start a local one)")
    ap.add_argument("--verbose", action="store_true", help="forward the replicas' logs to this terminal")
    a = ap.parse_args(argv)
    if a.replicas < 1 or not 0 < a.port < 65536:
        ap.error("--replicas must be >= 1 and --port within 1..65535")
    model = os.path.abspath(a.model)
    try:
        info = vit_infer.Model(model).info  # a bad model is an error here, not a replica restart loop
    except (vit_infer.VitError, ValueError, TypeError) as e:
        print(f"vit_infer serve: {e}", file=sys.stderr)
        return 2
    name = a.name or default_name(model)
    cpus = a.replica_cpus or max(1.0, float((os.cpu_count() or 1) // a.replicas))

    stop = threading.Event()
    received: List[int] = []

    def on_signal(signum, _frame) -> None:
        received.append(signum)
        stop.set()

    ray.init(address=a.address, include_dashboard=False, log_to_driver=a.verbose,
             **({} if a.address else {"num_cpus": max(os.cpu_count() or 1, int(np.ceil(cpus * a.replicas)))}))
    try:
        grpc_opts = {} if a.grpc_port is None else {"grpc_options": {"port": a.grpc_port,
                                                                "grpc_servicer_functions": [GRPC_SERVICER]}}
        serve.start(proxy_location="HeadOnly", http_options={"host": a.host, "port": a.port}, **grpc_opts)
        app = VitDeployment.options(num_replicas=a.replicas, max_ongoing_requests=a.max_ongoing_requests,
                                    ray_actor_options={"num_cpus": cpus, "num_gpus": a.gpus_per_replica}).bind(
            model=model, device=a.device, precision=a.precision, max_batch_size=a.max_batch_size,
            batch_wait_timeout_s=a.batch_wait_timeout_s, batching=not a.no_batching, max_body_bytes=a.max_body_bytes,
            top_k=a.top_k, name=name)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        serve.run(app, name="vit", route_prefix="/", blocking=False)
        if not stop.is_set():
            url = f"http://{a.host}:{a.port}"
            print(f"vit_infer serve: '{name}' ({info.image_height}px, {a.replicas} replica(s) x {cpus:g} CPU, "
                  f"{a.precision}, batching {'off' if a.no_batching else 'on'}) listening on {url}: "
                  f"{url}/v2/models/{name}/infer (Open Inference Protocol v2), {url}/classify, {url}/embed"
                  + ("" if a.grpc_port is None else f"; gRPC GRPCInferenceService on port {a.grpc_port}")
                  + "; Ctrl-C stops", file=sys.stderr, flush=True)
        while not stop.wait(0.5):
            pass
        print(f"vit_infer serve: {signal.Signals(received[0]).name} received, stopping", file=sys.stderr, flush=True)
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    print("vit_infer serve: stopped", file=sys.stderr, flush=True)
    return 0
