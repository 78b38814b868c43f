"""The Open Inference Protocol v2 routes of ``python -m vit_infer serve``, started by the command as a user
would start it (a local Ray, two replicas), against the real clients from PyPI, unchanged:
tritonclient[http] (binary tensors on and off) and kserve's InferenceRESTClient over HTTP,
kserve's InferenceGRPCClient and tritonclient.grpc over gRPC (GRPCInferenceService). Answers are compared
with ``vit-infer classify`` on the same inputs: logits, embeddings and features bit for bit in fp32
(requests are sent one at a time, so each engine run holds exactly that request's rows, as the
program's one run of the same batch does; test_module.py shows the last bits depend on the batch).
Bad requests get their status and ``{"error": ...}``, and the server goes on serving. The last test
stops the server with SIGTERM and expects a clean exit."""
from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

import vit_infer

from conftest import DEMO, SAMPLES, cli_path

import kserve  # noqa: E402  (the real clients: python/requirements.txt)
import tritonclient.http as tc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

MAX_BODY = 4 << 20  # the JSON form of 5 images x 3 x 64 x 64 is ~1.2 MB
NAME = "demo"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python -m vit_infer serve` in a subprocess; yields (host:port, Popen, log path, host:grpc port)."""
    port, gport = _free_port(), _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "wb") as f:
        p = subprocess.Popen([sys.executable, "-m", "vit_infer", "serve", "--model", str(DEMO), "--port", str(port),
                              "--replicas", "2", "--max-batch-size", "8", "--max-body-bytes", str(MAX_BODY),
                              "--grpc-port", str(gport)],
                             stdout=f, stderr=subprocess.STDOUT, cwd=tmp_path_factory.getbasetemp())
    try:
        deadline = time.monotonic() + 180
        while True:
            if p.poll() is not None:
                pytest.fail(f"the server exited with {p.returncode}:\n{log.read_text()}")
            if "listening on" in log.read_text():
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not come up in 180 s:\n{log.read_text()}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", p, log, f"127.0.0.1:{gport}"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def triton(server):
    c = tc.InferenceServerClient(url=server[0], network_timeout=60)
    yield c
    c.close()


@pytest.fixture(scope="module")
def cli_ref(tmp_path_factory):
    """`vit-infer classify` (the C program) on a float32 batch and on the sample images, saving every
    output: (x [5, 3, 64, 64], {output: rows} of x, {output: rows} of the sample files)."""
    cli = cli_path()
    if cli is None:
        pytest.skip("vit-infer (the program) is not built: set VIT_INFER_CLI or VIT_BUILD_DIR")
    d = tmp_path_factory.mktemp("cli")
    x = np.random.default_rng(27).standard_normal((5, 3, 64, 64), dtype=np.float32)
    np.save(d / "x.npy", x)
    refs = []
    for inputs, tag in (([str(d / "x.npy")], "x"), ([str(p) for p in SAMPLES], "img")):
        outs = {n: d / f"{tag}_{n}.npy" for n in ("logits", "embeddings", "features")}
        # One thread, as each replica runs (num_cpus 1 of two); one run of the whole batch.
        subprocess.run([str(cli), "classify", "--model", str(DEMO), "--device", "cpu", "--threads", "1",
                        "--batch", "64", "--no-progress", *[a for n, f in outs.items() for a in (f"--{n}-out", str(f))],
                        *inputs], check=True, capture_output=True)
        refs.append({n: np.load(f) for n, f in outs.items()})
    return x, refs[0], refs[1]


def _triton_infer(client, x: np.ndarray, binary: bool, outputs=("logits", "embeddings", "features")):
    inp = tc.InferInput("pixel_values", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    outs = [tc.InferRequestedOutput(n, binary_data=binary) for n in outputs]
    return client.infer(NAME, [inp], outputs=outs)


def _images() -> np.ndarray:
    return np.array([p.read_bytes() for p in SAMPLES], dtype=np.object_)


def test_metadata_and_health_with_tritonclient(triton, server):
    assert triton.is_server_live() and triton.is_server_ready() and triton.is_model_ready(NAME)
    assert not triton.is_model_ready("nope")
    meta = triton.get_server_metadata()
    assert meta["name"] == "vit-infer" and {"binary_tensor_data", "classification"} <= set(meta["extensions"])
    m = triton.get_model_metadata(NAME)
    assert m["name"] == NAME and m["versions"] == ["1"]
    assert {i["name"]: (i["datatype"], i["shape"]) for i in m["inputs"]} == {
        "pixel_values": ("FP32", [-1, 3, 64, 64]), "image": ("BYTES", [-1])}
    assert {o["name"]: o["shape"] for o in m["outputs"]} == {
        "logits": [-1, 10], "embeddings": [-1, 96], "features": [-1, 65, 96]}
    with pytest.raises(InferenceServerException) as e:
        triton.get_model_metadata("nope")
    assert e.value.status() == "404" and "unknown model 'nope'" in e.value.message()
    r = httpx.get(f"http://{server[0]}/v2/models/{NAME}/versions/1/ready")
    assert r.status_code == 200 and r.json() == {"name": NAME, "ready": True}


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_pixel_values_equal_the_cli_bit_for_bit(triton, cli_ref, binary):
    x, want, _ = cli_ref
    r = _triton_infer(triton, x, binary)
    for n in ("logits", "embeddings", "features"):
        got = r.as_numpy(n)
        assert got.dtype == np.float32 and got.shape == want[n].shape, n
        np.testing.assert_array_equal(got, want[n], err_msg=n)
    assert r.get_output("logits")["parameters" if binary else "data"]  # the form asked for came back
    assert ("parameters" in r.get_output("logits")) == binary
    # No outputs named: tritonclient asks binary_data_output; the default outputs are logits and embeddings.
    inp = tc.InferInput("pixel_values", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    r = triton.infer(NAME, [inp], request_id="req-7")
    assert r.get_response()["id"] == "req-7"
    assert [o["name"] for o in r.get_response()["outputs"]] == ["logits", "embeddings"]
    np.testing.assert_array_equal(r.as_numpy("logits"), want["logits"])


def test_tritonclient_image_bytes_equal_vit_infer_classify(triton, cli_ref):
    _, _, want = cli_ref
    inp = tc.InferInput("image", [len(SAMPLES)], "BYTES")
    inp.set_data_from_numpy(_images(), binary_data=True)
    outs = [tc.InferRequestedOutput("logits"), tc.InferRequestedOutput("embeddings", binary_data=False),
            tc.InferRequestedOutput("logits", class_count=3)]
    r = triton.infer(NAME, [inp], outputs=outs[:2])
    np.testing.assert_array_equal(r.as_numpy("logits"), want["logits"])
    np.testing.assert_array_equal(r.as_numpy("embeddings"), want["embeddings"])
    # Triton's classification extension: "<value>:<index>:<label>", largest first.
    r = triton.infer(NAME, [inp], outputs=[outs[2]])
    top = r.as_numpy("logits")
    assert top.shape == (len(SAMPLES), 3) and top.dtype == np.object_
    labels = vit_infer.Model(DEMO).labels
    for row, logits in zip(top, want["logits"]):
        order = np.argsort(-logits, kind="stable")[:3]
        assert [e.decode() for e in row] == [f"{logits[c]:f}:{c}:{labels[c]}" for c in order]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_kserve_rest_client_equals_the_cli(server, cli_ref, binary):
    x, want, want_img = cli_ref
    base = f"http://{server[0]}"

    async def go():
        client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", retries=0))
        try:
            assert await client.is_server_live(base) and await client.is_server_ready(base)
            assert await client.is_model_ready(base, NAME)
            inp = kserve.InferInput("pixel_values", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary)
            outs = [kserve.protocol.infer_type.RequestedOutput(n, {"binary_data": binary})
                    for n in ("logits", "features")]
            res = await client.infer(base, kserve.InferRequest(NAME, [inp], request_outputs=outs), model_name=NAME)
            img = kserve.InferInput("image", [len(SAMPLES)], "BYTES")
            img.set_data_from_numpy(_images(), binary_data=True)  # JPEG / PNG bytes have no UTF-8 JSON form
            res_img = await client.infer(base, kserve.InferRequest(NAME, [img]), model_name=NAME)
            with pytest.raises(httpx.HTTPStatusError, match="unknown model 'other'") as e:
                await client.infer(base, kserve.InferRequest("other", [inp]), model_name="other")
            assert e.value.response.status_code == 404
            return res, res_img
        finally:
            await client.close()

    res, res_img = asyncio.run(go())
    got = {o.name: o.as_numpy() for o in res.outputs}
    assert sorted(got) == ["features", "logits"]
    np.testing.assert_array_equal(got["logits"], want["logits"])
    np.testing.assert_array_equal(got["features"], want["features"])
    got = {o.name: o.as_numpy() for o in res_img.outputs}
    np.testing.assert_array_equal(got["logits"], want_img["logits"])
    np.testing.assert_array_equal(got["embeddings"], want_img["embeddings"])


def _post(url: str, doc: dict, blobs: bytes = b"", **kw) -> httpx.Response:
    head = json.dumps(doc).encode()
    headers = {"Inference-Header-Content-Length": str(len(head))} if blobs else {}
    return httpx.post(url, content=head + blobs, headers=headers, timeout=60, **kw)


def test_json_forms_base64_images_and_gzip(server, cli_ref):
    """What the clients above do not send: base64 BYTES in JSON (content_type, as MLServer), nested
    JSON data, a gzip-compressed body (tritonclient's request_compression_algorithm)."""
    x, want, want_img = cli_ref
    url = f"http://{server[0]}/v2/models/{NAME}/infer"
    imgs = [base64.b64encode(p.read_bytes()).decode() for p in SAMPLES]
    r = _post(url, {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(imgs)], "data": imgs,
                                "parameters": {"content_type": "base64"}}], "outputs": [{"name": "embeddings"}]})
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["shape"] == [len(SAMPLES), 96]
    np.testing.assert_array_equal(np.asarray(out["data"], np.float32).reshape(out["shape"]), want_img["embeddings"])
    body = json.dumps({"inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": list(x.shape),
                                   "data": x.tolist()}], "outputs": [{"name": "logits"}]}).encode()
    r = httpx.post(url, content=gzip.compress(body), headers={"Content-Encoding": "gzip"}, timeout=60)
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(np.asarray(r.json()["outputs"][0]["data"], np.float32).reshape(5, 10),
                                  want["logits"])


def test_bad_requests_get_their_status_and_the_server_goes_on(server, triton, cli_ref):
    x, want, _ = cli_ref
    base = f"http://{server[0]}/v2/models"
    url = f"{base}/{NAME}/infer"
    f32 = x[:1].tobytes()
    px = {"name": "pixel_values", "datatype": "FP32", "shape": [1, 3, 64, 64]}
    png = SAMPLES[0].read_bytes()
    cases = {
        "unknown model": (f"{base}/nope/infer", {"inputs": [{**px, "data": x[:1].ravel().tolist()}]}, b"", 404,
                          "unknown model 'nope'"),
        "unknown version": (f"{base}/{NAME}/versions/2/infer", {"inputs": [{**px, "data": [0.0]}]}, b"", 404,
                            "unknown version '2'"),
        "not json": (url, None, b"{nope", 400, "not valid JSON"),
        "no inputs": (url, {"inputs": []}, b"", 400, "no 'inputs'"),
        "wrong datatype": (url, {"inputs": [{**px, "datatype": "FP64", "parameters": {"binary_data_size": 8 * 12288}}]},
                           x[:1].astype(np.float64).tobytes(), 400, "'pixel_values' is FP64; it takes FP32"),
        "wrong shape": (url, {"inputs": [{**px, "shape": [1, 3, 32, 128], "parameters": {"binary_data_size": len(f32)}}]},
                        f32, 400, r"shape \[1, 3, 32, 128\]; the model takes \[B, 3, 64, 64\]"),
        "short binary": (url, {"inputs": [{**px, "parameters": {"binary_data_size": len(f32)}}]}, f32[:-4] + b"", 400,
                         "runs past"),
        "size mismatch": (url, {"inputs": [{**px, "parameters": {"binary_data_size": 8}}]}, f32[:8], 400,
                          "binary_data_size 8 for FP32 of shape"),
        "json count": (url, {"inputs": [{**px, "data": [1.0, 2.0]}]}, b"", 400, "2 elements for shape"),
        "nan": (url, {"inputs": [{**px, "parameters": {"binary_data_size": len(f32)}}]},
                np.full(12288, np.nan, np.float32).tobytes(), 400, "NaN or infinite"),
        "unknown input": (url, {"inputs": [{**px, "name": "x", "data": x[:1].ravel().tolist()}]}, b"", 400,
                          "unknown input 'x'"),
        "unknown output": (url, {"inputs": [{**px, "data": x[:1].ravel().tolist()}], "outputs": [{"name": "probs"}]},
                           b"", 400, "unknown output 'probs'"),
        "classify features": (url, {"inputs": [{**px, "data": x[:1].ravel().tolist()}],
                                    "outputs": [{"name": "features", "parameters": {"classification": 2}}]}, b"", 400,
                              "not features"),
        "corrupt image": (url, {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                            "parameters": {"binary_data_size": 4 + 100}}]},
                          (100).to_bytes(4, "little") + png[:100], 400, r"image\[0\]"),
        "too large": (url, {"inputs": [{**px, "parameters": {"binary_data_size": MAX_BODY}}]}, bytes(MAX_BODY), 413,
                      "exceeds the limit"),
    }
    import re
    for name, (u, doc, blob, status, pattern) in cases.items():
        if doc is None:
            r = httpx.post(u, content=blob, timeout=60)
        else:
            r = _post(u, doc, blob)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert re.search(pattern, r.json()["error"]), (name, r.json())
    # tritonclient raises them with their status; the same client then goes on.
    inp = tc.InferInput("pixel_values", [1, 3, 32, 32], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(InferenceServerException) as e:
        triton.infer(NAME, [inp])
    assert e.value.status() == "400" and "the model takes [B, 3, 64, 64]" in e.value.message()
    r = _triton_infer(triton, x, True)
    np.testing.assert_array_equal(r.as_numpy("logits"), want["logits"])


def test_concurrent_clients_are_batched_and_answered(server, cli_ref):
    """Sixteen requests at once through tritonclient's asyncio client: dynamic batches merge rows
    of several requests, so rows are compared at 1e-5 of the largest value (test_serve.py's tolerance)."""
    import tritonclient.http.aio as tca
    x, want, _ = cli_ref

    async def go():
        c = tca.InferenceServerClient(url=server[0])
        try:
            async def one(k):
                inp = tca.InferInput("pixel_values", [1, 3, 64, 64], "FP32")
                inp.set_data_from_numpy(x[k % 5:k % 5 + 1])
                return k, await c.infer(NAME, [inp], outputs=[tca.InferRequestedOutput("logits")])
            return await asyncio.gather(*(one(k) for k in range(16)))
        finally:
            await c.close()

    for k, r in asyncio.run(go()):
        np.testing.assert_allclose(r.as_numpy("logits")[0], want["logits"][k % 5], rtol=0,
                                   atol=1e-5 * np.abs(want["logits"]).max())


def test_kserve_grpc_client_equals_the_cli(server, cli_ref):
    """GRPCInferenceService through Serve's gRPC proxy, with kserve's InferenceGRPCClient unchanged."""
    import grpc
    from kserve.protocol.infer_type import RequestedOutput
    x, want, want_img = cli_ref

    async def go():
        c = kserve.InferenceGRPCClient(url=server[3], retries=0)
        try:
            assert await c.is_server_live() and await c.is_server_ready() and await c.is_model_ready(NAME)
            inp = kserve.InferInput("pixel_values", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            res = await c.infer(kserve.InferRequest(NAME, [inp], request_outputs=[
                RequestedOutput("logits"), RequestedOutput("features")]))
            img = kserve.InferInput("image", [len(SAMPLES)], "BYTES")
            img.set_data_from_numpy(_images())
            res_img = await c.infer(kserve.InferRequest(NAME, [img], request_outputs=[
                RequestedOutput("embeddings"), RequestedOutput("logits", {"classification": 2})]))
            bad = kserve.InferInput("pixel_values", [1, 3, 8, 8], "FP32")
            bad.set_data_from_numpy(np.zeros((1, 3, 8, 8), np.float32))
            errors = []
            for req in (kserve.InferRequest(NAME, [bad]), kserve.InferRequest("nope", [inp])):
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await c.infer(req)
                errors.append((e.value.code(), e.value.details()))
            return res, res_img, errors, await c.is_server_live()
        finally:
            await c.close()

    res, res_img, errors, live = asyncio.run(go())
    got = {o.name: o.as_numpy() for o in res.outputs}
    np.testing.assert_array_equal(got["logits"], want["logits"])
    np.testing.assert_array_equal(got["features"], want["features"])
    got = {o.name: o.as_numpy() for o in res_img.outputs}
    np.testing.assert_array_equal(got["embeddings"], want_img["embeddings"])
    labels = vit_infer.Model(DEMO).labels
    for row, logits in zip(got["logits"], want_img["logits"]):
        order = np.argsort(-logits, kind="stable")[:2]
        assert [e.decode() if isinstance(e, bytes) else e for e in row] == [
            f"{logits[c]:f}:{c}:{labels[c]}" for c in order]
    assert errors[0][0] == grpc.StatusCode.INVALID_ARGUMENT and "the model takes [B, 3, 64, 64]" in errors[0][1]
    assert errors[1][0] == grpc.StatusCode.NOT_FOUND and "unknown model 'nope'" in errors[1][1]
    assert live


_TRITON_GRPC = """
import sys, numpy as np, tritonclient.grpc as g
c = g.InferenceServerClient(sys.argv[1])
assert c.is_server_live() and c.is_model_ready("demo")
assert c.get_model_metadata("demo").inputs[0].name == "pixel_values"
x = np.load(sys.argv[2])
i = g.InferInput("pixel_values", list(x.shape), "FP32")
i.set_data_from_numpy(x)
r = c.infer("demo", [i], outputs=[g.InferRequestedOutput("logits"), g.InferRequestedOutput("embeddings")])
np.save(sys.argv[3], r.as_numpy("logits"))
np.save(sys.argv[4], r.as_numpy("embeddings"))
"""


def test_tritonclient_grpc_equals_the_cli(server, cli_ref, tmp_path):
    """tritonclient.grpc, in a process of its own: its protobuf package `inference` shares names with
    kserve's, and one process's descriptor pool takes only one of them."""
    x, want, _ = cli_ref
    np.save(tmp_path / "x.npy", x)
    r = subprocess.run([sys.executable, "-c", _TRITON_GRPC, server[3], str(tmp_path / "x.npy"), str(tmp_path / "l.npy"),
                        str(tmp_path / "e.npy")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "l.npy"), want["logits"])
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), want["embeddings"])


def test_sigterm_stops_the_server_cleanly(server):
    host, p, log, _ = server
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=90) == 0, log.read_text()
    text = log.read_text()
    assert "SIGTERM received, stopping" in text and "vit_infer serve: stopped" in text, text
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{host}/v2/health/live", timeout=5)
