"""vit_infer.serve on a real local Ray cluster: a head and a second node (two raylets, as two machines
would be) on 127.0.0.1, two replicas one per node, concurrent HTTP requests through Serve's proxy.
Answers are checked against the C API (ctypes on the same libvit) for the same inputs; bad bodies
must get 400 while the requests batched with them succeed; a replica killed mid-load must lose no
request the client retries, and Serve must bring it back. Everything started here is stopped here."""
from __future__ import annotations

import asyncio
import io
import socket
import time

import httpx
import numpy as np
import pytest

import vit_infer
from vit_infer import serve as vserve

from conftest import DEMO, SAMPLES

ray = pytest.importorskip("ray")
from ray import serve  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

MAX_BODY = 1 << 20
# Dynamic batches change the BLAS blocking and so the last bits of the logits (test_module.py
# shows a batch-1 run and a batch-8 run differing by ~1e-6): answers are compared at this
# fraction of the largest logit / embedding value, with identical top-k classes.
REL_TOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


@pytest.fixture(scope="module")
def cluster():
    """Head + worker node, Serve with its proxy on the head, two replicas (max one per node)."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                      "include_dashboard": False,
                                                      "object_store_memory": 100 << 20})
    try:
        c.add_node(num_cpus=1, node_ip_address="127.0.0.1", object_store_memory=100 << 20)
        ray.init(address=c.address, log_to_driver=False)
        port = _free_port()
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        app = vserve.VitDeployment.options(num_replicas=2, max_replicas_per_node=1,
                                           ray_actor_options={"num_cpus": 1}).bind(
            model=str(DEMO), device="cpu", max_batch_size=16, batch_wait_timeout_s=0.02, max_body_bytes=MAX_BODY)
        serve.run(app, name="vit", route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            c.shutdown()


@pytest.fixture(scope="module")
def reference(capi, demo):
    """The C API's answers (batch 1 each) for the sample images and a few float32 arrays."""
    rng = np.random.default_rng(7)
    arrays = [rng.standard_normal((3, 64, 64), dtype=np.float32) for _ in range(4)]
    inputs = [p.read_bytes() for p in SAMPLES] + [_npy(a) for a in arrays] + [_npy(arrays[0][None])]
    refs = []
    for p in SAMPLES:
        r = capi.run_images(DEMO, demo.info, [vit_infer.decode_image(p.read_bytes(), str(p))])
        refs.append((r["logits"][0], r["embeddings"][0]))
    for a in arrays + [arrays[0]]:
        r = capi.run(DEMO, demo.info, a[None])
        refs.append((r["logits"][0], r["embeddings"][0]))
    return inputs, refs


def _check_classify(body: dict, logits: np.ndarray, labels, top_k: int = 5) -> None:
    probs = vit_infer.softmax(logits[None])[0]
    want = np.argsort(-probs, kind="stable")[:top_k]
    assert [t["index"] for t in body["topk"]] == want.tolist()
    assert [t["label"] for t in body["topk"]] == [labels[i] for i in want]
    np.testing.assert_allclose([t["prob"] for t in body["topk"]], probs[want], rtol=0, atol=REL_TOL)


def _check_embed(body: dict, emb: np.ndarray) -> None:
    got = np.asarray(body["embedding"], np.float32)
    assert body["dim"] == emb.shape[0] == got.shape[0]
    np.testing.assert_allclose(got, emb, rtol=0, atol=REL_TOL * np.abs(emb).max())


async def _post(client: httpx.AsyncClient, url: str, body: bytes, retries: int = 0) -> httpx.Response:
    """POST with retries on a lost connection or a 5xx (a replica died under it), bounded."""
    for attempt in range(retries + 1):
        try:
            r = await client.post(url, content=body)
            if r.status_code < 500 or attempt == retries:
                return r
        except httpx.TransportError:
            if attempt == retries:
                raise
        await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


def test_two_nodes_two_replicas_ready(cluster):
    assert sum(1 for n in ray.nodes() if n["Alive"]) == 2
    nodes = set()
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{cluster}/healthz").json() == {"status": "ok"}
        for _ in range(40):
            r = client.get(f"{cluster}/readyz")
            assert r.status_code == 200
            d = r.json()
            assert d["ready"] and d["num_classes"] == 10 and d["image_size"] == [64, 64]
            nodes.add(d["node_id"])
            if len(nodes) == 2:
                break
    assert len(nodes) == 2, "the two replicas should run on the two nodes"


def test_concurrent_requests_equal_the_c_api(cluster, reference, demo):
    inputs, refs = reference

    async def go():
        async with httpx.AsyncClient(timeout=30) as client:
            jobs = []
            for rep in range(3):
                for k, body in enumerate(inputs):
                    ep = "classify" if (k + rep) % 2 == 0 else "embed"
                    jobs.append((k, ep, _post(client, f"{cluster}/{ep}", body)))
            rs = await asyncio.gather(*(j[2] for j in jobs))
            return [(k, ep, r) for (k, ep, _), r in zip(jobs, rs)]

    results = asyncio.run(go())
    assert len(results) == 3 * len(inputs)
    for k, ep, r in results:
        assert r.status_code == 200, r.text
        if ep == "classify":
            _check_classify(r.json(), refs[k][0], demo.labels)
        else:
            _check_embed(r.json(), refs[k][1])


def test_bad_bodies_get_400_and_their_batch_succeeds(cluster, reference, demo):
    inputs, refs = reference
    png = inputs[0]
    bad = {
        "truncated": (png[: len(png) // 2], "truncated"),
        "not an image": (b"hello, this is text", "not an image|unrecognised"),
        "float64 npy": (_npy(np.zeros((3, 64, 64))), "float64; send float32"),
        "wrong shape": (_npy(np.zeros((3, 32, 32), np.float32)), r"shape \[3, 32, 32\]; the model takes \[3, 64, 64\]"),
        "broken npy": (b"\x93NUMPY\x01\x00garbage", "not a readable .npy"),
        "nan npy": (_npy(np.full((3, 64, 64), np.nan, np.float32)), "NaN or infinite"),
        "oversize": (b"\x89PNG" + bytes(MAX_BODY), f"exceeds the limit of {MAX_BODY} bytes"),
        "empty": (b"", "empty body"),
    }

    async def go():
        async with httpx.AsyncClient(timeout=30) as client:
            good = [_post(client, f"{cluster}/classify", inputs[k % len(inputs)]) for k in range(16)]
            wrong = [_post(client, f"{cluster}/classify", b) for b, _ in bad.values()]
            topk0 = _post(client, f"{cluster}/classify?top_k=0", png)
            return await asyncio.gather(*good), await asyncio.gather(*wrong), await topk0

    good, wrong, topk0 = asyncio.run(go())
    import re
    for (name, (_, pattern)), r in zip(bad.items(), wrong):
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert re.search(pattern, r.json()["detail"]), (name, r.json())
    assert topk0.status_code == 400 and "top_k 0" in topk0.json()["detail"]

    def chunked():  # no Content-Length: the limit applies while the body streams in
        for _ in range(MAX_BODY // 65536 + 2):
            yield bytes(65536)

    with httpx.Client(timeout=30) as client:
        r = client.post(f"{cluster}/embed", content=chunked())
    assert r.status_code == 400 and f"exceeds the limit of {MAX_BODY} bytes" in r.json()["detail"]
    for k, r in enumerate(good):
        assert r.status_code == 200, r.text
        _check_classify(r.json(), refs[k % len(inputs)][0], demo.labels)


def test_a_bad_item_inside_a_batch_fails_alone(demo):
    """The in-batch fallback of the serving path, without Ray: an input that passed the request
    checks but that the engine refuses fails by itself; the batch's other items get answers."""
    s = vit_infer.Session(demo, device="cpu", max_batch=8)
    good = vit_infer.decode_image(SAMPLES[0].read_bytes())
    items = [vserve._Item(pixels=[good]), vserve._Item(pixels=[np.zeros((0, 5, 3), np.uint8)]),
             vserve._Item(pixels=[good, good]), vserve._Item(array=np.zeros((1, 3, 64, 64), np.float32))]
    out = vserve.run_items(s, items)
    assert isinstance(out[1], ValueError) and "images[0] has shape [0, 5, 3]: no pixels" in str(out[1])
    want = s.run_images([good], ("logits", "embeddings"))
    np.testing.assert_array_equal(out[0]["logits"], want["logits"])
    np.testing.assert_array_equal(out[2]["logits"], s.run_images([good, good], "logits"))  # one item, two rows
    np.testing.assert_array_equal(out[3]["embeddings"], s.run(np.zeros((1, 3, 64, 64), np.float32), "embeddings"))


def test_app_builder_takes_serve_yaml_args():
    app = vserve.app_builder({"model": str(DEMO), "max_batch_size": "8", "batching": "false", "top_k": 3})
    assert isinstance(app, serve.Application)
    with pytest.raises(ValueError, match="args.model"):
        vserve.app_builder({"device": "cpu"})


def _replicas() -> list[str]:
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["name"].startswith("SERVE_REPLICA::"))


def test_killing_a_replica_mid_load_loses_no_retried_request(cluster, reference, demo):
    inputs, refs = reference
    before = _replicas()
    assert len(before) == 2, before
    n_requests, done = 120, []

    async def go():
        async with httpx.AsyncClient(timeout=30) as client:
            sem = asyncio.Semaphore(8)

            async def one(i):
                async with sem:
                    r = await _post(client, f"{cluster}/classify", inputs[i % len(inputs)], retries=20)
                    done.append(i)
                    return i, r

            async def killer():
                while len(done) < 20:
                    await asyncio.sleep(0.01)
                ray.kill(ray.get_actor(before[0], namespace="serve"), no_restart=True)
                return len(done)

            k = asyncio.create_task(killer())
            rs = await asyncio.gather(*(one(i) for i in range(n_requests)))
            return rs, await k

    results, killed_at = asyncio.run(go())
    assert killed_at < n_requests, "the replica should die while requests are still coming"
    assert len(results) == n_requests
    for i, r in results:
        assert r.status_code == 200, (i, r.status_code, r.text)
        _check_classify(r.json(), refs[i % len(inputs)][0], demo.labels)
    # Serve brings the replica back: two running again, one of them new.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        st = serve.status().applications["vit"].deployments["VitDeployment"]
        now = _replicas()
        if st.replica_states.get("RUNNING", 0) == 2 and len(now) == 2 and before[0] not in now:
            break
        time.sleep(1)
    else:
        pytest.fail(f"Serve did not replace the killed replica: {serve.status()}")
    with httpx.Client(timeout=10) as client:
        r = client.post(f"{cluster}/classify", content=inputs[0])
        assert r.status_code == 200
        _check_classify(r.json(), refs[0][0], demo.labels)
