"""vit_infer.v2: the Open Inference Protocol (KServe v2, as Triton, OpenVINO Model Server, KServe and
MLServer speak it) over HTTP, for the Serve app (serve.py): parsing an infer request's JSON tensors
and Triton's binary tensor extension, and writing the response the same two ways.

Request body: a JSON object, or (binary tensor extension) a JSON object of
``Inference-Header-Content-Length`` bytes followed by the raw tensors of the inputs whose
``parameters.binary_data_size`` is set, in input order. Raw tensors are little-endian, row-major;
a BYTES element is a 4-byte little-endian length then its bytes. Response outputs are written as
binary when their request output says ``parameters.binary_data: true``, else when the request's
``parameters.binary_data_output`` is true, else as JSON ``data``. ``parameters.classification: K``
on a requested output turns it into Triton's classification output: BYTES ``[B, K]`` of
``"<value>:<index>[:<label>]"`` for the K largest values of each row, largest first.

Everything here is pure (no Ray, no engine): errors are ProtocolError carrying the HTTP status.
"""
from __future__ import annotations

import base64
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

HEADER_LENGTH = "inference-header-content-length"

#: Open Inference Protocol datatypes as numpy dtypes (little-endian, as the binary extension says).
DTYPES: Dict[str, Any] = {
    "BOOL": np.dtype("?"), "UINT8": np.dtype("u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"), "INT8": np.dtype("i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BYTES": None,
}


class ProtocolError(Exception):
    """A request the protocol refuses: ``status`` is the HTTP status (400, 404, 413), str() the message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    def __reduce__(self):  # Ray carries it between processes (a gRPC error raised in a replica)
        return (ProtocolError, (self.status, str(self)))


@dataclass
class InputTensor:
    """One request input: numeric data as a numpy array of its shape, BYTES as a list of bytes."""

    name: str
    datatype: str
    shape: Tuple[int, ...]
    data: Any
    parameters: Dict[str, Any] = field(default_factory=dict)


@dataclass
class RequestedOutput:
    name: str
    binary: Optional[bool] = None  # None: the request's binary_data_output decides
    classification: int = 0


@dataclass
class InferRequest:
    id: Optional[str]
    inputs: List[InputTensor]
    outputs: Optional[List[RequestedOutput]]  # None: the model's default outputs
    binary_output: bool = False
    parameters: Dict[str, Any] = field(default_factory=dict)


def decompress(body: bytes, encoding: Optional[str], limit: int) -> bytes:
    """The body after its Content-Encoding (gzip or deflate, as tritonclient compresses requests),
    refused with 413 once it inflates past ``limit`` bytes."""
    if not encoding or encoding.lower() == "identity":
        return body
    enc = encoding.lower()
    if enc not in ("gzip", "deflate"):
        raise ProtocolError(400, f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
    d = zlib.decompressobj(wbits=31 if enc == "gzip" else 15)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as e:
        raise ProtocolError(400, f"body is not valid {enc} data: {e}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise ProtocolError(413, f"body inflates past the limit of {limit} bytes")
    return out


def _params(obj: Dict[str, Any], where: str) -> Dict[str, Any]:
    p = obj.get("parameters", {})
    if p is None:
        return {}
    if not isinstance(p, dict):
        raise ProtocolError(400, f"{where}.parameters must be an object")
    return p


def _shape(obj: Dict[str, Any], where: str) -> Tuple[int, ...]:
    s = obj.get("shape")
    if not isinstance(s, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in s):
        raise ProtocolError(400, f"{where}.shape must be a list of non-negative integers, not {s!r}")
    return tuple(s)


def _split_bytes(raw: memoryview, count: int, where: str) -> List[bytes]:
    """BYTES elements of the binary extension: each a uint32 little-endian length, then its bytes."""
    out, off = [], 0
    while off < len(raw):
        if off + 4 > len(raw):
            raise ProtocolError(400, f"{where}: BYTES data ends inside an element's 4-byte length")
        (n,) = struct.unpack_from("<I", raw, off)
        off += 4
        if off + n > len(raw):
            raise ProtocolError(400, f"{where}: BYTES element {len(out)} of {n} bytes runs past the data")
        out.append(bytes(raw[off:off + n]))
        off += n
    if len(out) != count:
        raise ProtocolError(400, f"{where}: {len(out)} BYTES elements for shape of {count} elements")
    return out


def _json_bytes(data: Any, count: int, base64_strings: bool, where: str) -> List[bytes]:
    flat: List[Any] = []

    def walk(x: Any) -> None:
        if isinstance(x, list):
            for y in x:
                walk(y)
        else:
            flat.append(x)

    walk(data)
    if len(flat) != count:
        raise ProtocolError(400, f"{where}: {len(flat)} elements in data for a shape of {count} elements")
    out = []
    for k, s in enumerate(flat):
        if not isinstance(s, str):
            raise ProtocolError(400, f"{where}: BYTES data element {k} is a {type(s).__name__}, not a string")
        if base64_strings:
            try:
                out.append(base64.b64decode(s, validate=True))
            except ValueError:
                raise ProtocolError(400, f"{where}: BYTES data element {k} is not base64") from None
        else:
            out.append(s.encode("utf-8"))
    return out


def parse_infer_request(body: bytes, header_length: Optional[str] = None) -> InferRequest:
    """Parses an infer request body (JSON, or JSON + binary tensors when ``header_length``, the
    Inference-Header-Content-Length header, is given). Raises ProtocolError(400) naming the fault."""
    view = memoryview(body)
    if header_length is not None:
        if not header_length.strip().isdigit() or int(header_length) > len(body):
            raise ProtocolError(400, f"Inference-Header-Content-Length {header_length!r} is not a length within "
                                     f"the body of {len(body)} bytes")
        jlen = int(header_length)
    else:
        jlen = len(body)
    try:
        doc = json.loads(bytes(view[:jlen]))
    except (ValueError, UnicodeDecodeError) as e:
        raise ProtocolError(400, f"request header is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ProtocolError(400, "the request must be a JSON object")
    inputs_doc = doc.get("inputs")
    if not isinstance(inputs_doc, list) or not inputs_doc:
        raise ProtocolError(400, "the request has no 'inputs' (a non-empty list of tensors)")
    binary, off = view[jlen:], 0
    inputs = []
    for i, t in enumerate(inputs_doc):
        where = f"inputs[{i}]"
        if not isinstance(t, dict):
            raise ProtocolError(400, f"{where} must be an object")
        name, dt = t.get("name"), t.get("datatype")
        if not isinstance(name, str):
            raise ProtocolError(400, f"{where}.name must be a string")
        where = f"input '{name}'"
        if dt not in DTYPES:
            raise ProtocolError(400, f"{where}: datatype {dt!r} is not an Open Inference Protocol datatype")
        shape = _shape(t, where)
        params = _params(t, where)
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        size = params.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ProtocolError(400, f"{where}: binary_data_size must be a non-negative integer")
            if "data" in t:
                raise ProtocolError(400, f"{where} has both 'data' and binary_data_size")
            if off + size > len(binary):
                raise ProtocolError(400, f"{where}: binary_data_size {size} runs past the body's "
                                         f"{len(binary)} bytes of binary data")
            raw = binary[off:off + size]
            off += size
            if dt == "BYTES":
                data: Any = _split_bytes(raw, count, where)
            else:
                want = count * DTYPES[dt].itemsize
                if size != want:
                    raise ProtocolError(400, f"{where}: binary_data_size {size} for {dt} of shape {list(shape)} "
                                             f"({want} bytes)")
                data = np.frombuffer(raw, DTYPES[dt]).reshape(shape).copy()  # own, aligned memory
        else:
            if "data" not in t:
                raise ProtocolError(400, f"{where} has neither 'data' nor parameters.binary_data_size")
            if dt == "BYTES":
                data = _json_bytes(t["data"], count, params.get("content_type") == "base64", where)
            elif dt == "FP16":
                raise ProtocolError(400, f"{where}: FP16 has no JSON form; send it as binary data")
            else:
                try:
                    a = np.asarray(t["data"], dtype=np.float64 if dt.startswith("FP") else None)
                except (ValueError, TypeError):
                    raise ProtocolError(400, f"{where}: data is not a (nested) list of numbers") from None
                if a.dtype == object or a.size != count or (a.size and not np.issubdtype(a.dtype, np.number)
                                                            and a.dtype != np.bool_):
                    raise ProtocolError(400, f"{where}: data holds {a.size} elements for shape {list(shape)} "
                                             f"({count} elements)")
                data = a.astype(DTYPES[dt]).reshape(shape)
        inputs.append(InputTensor(name, dt, shape, data, params))
    if off != len(binary):
        raise ProtocolError(400, f"{len(binary) - off} bytes of binary data after the inputs' binary_data_size")
    req_params = _params(doc, "request")
    outputs = None
    if doc.get("outputs") is not None:
        if not isinstance(doc["outputs"], list):
            raise ProtocolError(400, "'outputs' must be a list")
        outputs = []
        for k, o in enumerate(doc["outputs"]):
            if not isinstance(o, dict) or not isinstance(o.get("name"), str):
                raise ProtocolError(400, f"outputs[{k}] must be an object with a name")
            p = _params(o, f"output '{o['name']}'")
            cls = p.get("classification", 0)
            if not isinstance(cls, int) or isinstance(cls, bool) or cls < 0:
                raise ProtocolError(400, f"output '{o['name']}': classification must be a non-negative integer")
            b = p.get("binary_data")
            outputs.append(RequestedOutput(o["name"], None if b is None else bool(b), cls))
    rid = doc.get("id")
    return InferRequest(None if rid is None else str(rid), inputs, outputs,
                        bool(req_params.get("binary_data_output", False)), req_params)


def classification(values: np.ndarray, k: int, label: Callable[[int], Optional[str]]) -> np.ndarray:
    """Triton's classification output of ``values`` [B, N]: BYTES [B, min(k, N)] of
    "<value>:<index>[:<label>]", largest value first (ties: the lower index first)."""
    k = min(k, values.shape[1])
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    out = np.empty((values.shape[0], k), dtype=object)
    for b, row in enumerate(order):
        for j, c in enumerate(row):
            lab = label(int(c))
            s = f"{float(values[b, c]):f}:{int(c)}" + ("" if lab is None else f":{lab}")
            out[b, j] = s.encode("utf-8")
    return out


def _bytes_blob(a: np.ndarray) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in a.reshape(-1))


def encode_response(model_name: str, request: InferRequest, outputs: Sequence[Tuple[str, np.ndarray, Optional[bool]]],
                    version: str = "1") -> Tuple[bytes, Optional[int]]:
    """The response body for ``outputs`` (name, array, binary or None for the request's default):
    returns (body, JSON length) where the length is None when no output is binary."""
    outs, blobs = [], []
    for name, a, binary in outputs:
        binary = request.binary_output if binary is None else binary
        dt = "BYTES" if a.dtype == object else next(k for k, v in DTYPES.items() if v == a.dtype)
        o: Dict[str, Any] = {"name": name, "datatype": dt, "shape": list(a.shape)}
        if binary:
            blob = _bytes_blob(a) if dt == "BYTES" else np.ascontiguousarray(a, DTYPES[dt]).tobytes()
            o["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif dt == "BYTES":
            o["data"] = [e.decode("utf-8") for e in a.reshape(-1)]
        else:
            o["data"] = a.reshape(-1).tolist()  # float32 -> the exact float64 value: the bits survive
        outs.append(o)
    doc: Dict[str, Any] = {"model_name": model_name, "model_version": version, "outputs": outs}
    if request.id is not None:
        doc["id"] = request.id
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return head, None
    return b"".join([head] + blobs), len(head)


# ---- gRPC (GRPCInferenceService, vit_infer/_grpc): the same request and response as messages ----

#: The InferTensorContents field of each datatype (the typed-contents form of a gRPC tensor).
_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
             "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
             "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
             "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def _param(p: Any) -> Any:
    which = p.WhichOneof("parameter_choice")
    return None if which is None else getattr(p, which)


def request_from_grpc(msg: Any) -> InferRequest:
    """An InferRequest from a ModelInferRequest message: tensors from raw_input_contents (one per
    input, as tritonclient.grpc and kserve send them) or from their typed contents."""
    raw = list(msg.raw_input_contents)
    if raw and len(raw) != len(msg.inputs):
        raise ProtocolError(400, f"{len(raw)} raw_input_contents for {len(msg.inputs)} inputs")
    if not msg.inputs:
        raise ProtocolError(400, "the request has no inputs")
    inputs = []
    for i, t in enumerate(msg.inputs):
        where = f"input '{t.name}'"
        if t.datatype not in DTYPES:
            raise ProtocolError(400, f"{where}: datatype {t.datatype!r} is not an Open Inference Protocol datatype")
        shape = tuple(t.shape)
        if any(d < 0 for d in shape):
            raise ProtocolError(400, f"{where}: shape {list(shape)} has a negative dimension")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if raw:
            blob = raw[i]
            if t.datatype == "BYTES":
                data: Any = _split_bytes(memoryview(blob), count, where)
            else:
                want = count * DTYPES[t.datatype].itemsize
                if len(blob) != want:
                    raise ProtocolError(400, f"{where}: {len(blob)} raw bytes for {t.datatype} of shape "
                                             f"{list(shape)} ({want} bytes)")
                data = np.frombuffer(blob, DTYPES[t.datatype]).reshape(shape).copy()
        else:
            if t.datatype == "FP16":
                raise ProtocolError(400, f"{where}: FP16 has no typed contents; send raw_input_contents")
            values = getattr(t.contents, _CONTENTS[t.datatype])
            if len(values) != count:
                raise ProtocolError(400, f"{where}: {len(values)} elements in contents for shape {list(shape)} "
                                         f"({count} elements)")
            data = list(values) if t.datatype == "BYTES" else np.asarray(values, DTYPES[t.datatype]).reshape(shape)
        inputs.append(InputTensor(t.name, t.datatype, shape, data, {k: _param(v) for k, v in t.parameters.items()}))
    outputs = None
    if msg.outputs:
        outputs = []
        for o in msg.outputs:
            cls = _param(o.parameters["classification"]) if "classification" in o.parameters else 0
            if not isinstance(cls, int) or isinstance(cls, bool) or cls < 0:
                raise ProtocolError(400, f"output '{o.name}': classification must be a non-negative integer")
            outputs.append(RequestedOutput(o.name, None, cls))
    return InferRequest(msg.id or None, inputs, outputs, False, {k: _param(v) for k, v in msg.parameters.items()})


def response_to_grpc(pb: Any, model_name: str, request: InferRequest,
                     outputs: Sequence[Tuple[str, np.ndarray, Optional[bool]]], version: str = "1") -> Any:
    """A ModelInferResponse (module `pb`) carrying every output in raw_output_contents."""
    r = pb.ModelInferResponse(model_name=model_name, model_version=version, id=request.id or "")
    for name, a, _ in outputs:
        dt = "BYTES" if a.dtype == object else next(k for k, v in DTYPES.items() if v == a.dtype)
        r.outputs.add(name=name, datatype=dt, shape=list(a.shape))
        r.raw_output_contents.append(_bytes_blob(a) if dt == "BYTES" else np.ascontiguousarray(a).tobytes())
    return r
