"""``python -m vit_infer embed`` (Ray Data, vit_infer/embed.py) on a local two-raylet cluster (a head and a
second node on 127.0.0.1, as two machines would be; the command joins it with --address): the
embeddings of a directory and of a Parquet file of image bytes equal ``vit-infer classify
--embeddings-out`` on the same files bit for bit; bad images are reported in the error column and
the rest is written."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import DEMO, SAMPLES, cli_path

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
from ray.cluster_utils import Cluster  # noqa: E402

BATCH = 4


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "node_ip_address": "127.0.0.1",
                                                      "include_dashboard": False, "object_store_memory": 100 << 20})
    try:
        c.add_node(num_cpus=2, node_ip_address="127.0.0.1", object_store_memory=100 << 20)
        c.wait_for_nodes()
        yield c.address
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Ten good images (the samples, some twice, in sub-folders) and two bad ones that sort last."""
    d = tmp_path_factory.mktemp("images")
    (d / "a").mkdir()
    (d / "b").mkdir()
    for k, p in enumerate(SAMPLES + SAMPLES[:2]):
        shutil.copy(p, d / ("a" if k % 2 else "b") / f"img_{k:02d}{p.suffix}")
    png = SAMPLES[0].read_bytes()
    (d / "zz_truncated.png").write_bytes(png[: len(png) // 2])
    (d / "zz_text.jpg").write_bytes(b"this is not a JPEG")
    return d


def _cli_embeddings(dir_) -> dict[str, np.ndarray]:
    """vit-infer classify --batch BATCH on the directory: {file: embedding} of the good files."""
    cli = cli_path()
    if cli is None:
        pytest.skip("vit-infer (the program) is not built")
    out = dir_.parent / (dir_.name + "_cli_emb.npy")
    r = subprocess.run([str(cli), "classify", "--model", str(DEMO), "--device", "cpu", "--threads", "1",
                        "--batch", str(BATCH), "--json", "--top-k", "1", "--no-progress", "--embeddings-out", str(out),
                        str(dir_)], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr  # the two bad files
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    good = [l["file"] for l in lines if "error" not in l]
    emb = np.load(out)
    assert emb.shape == (10, 96)
    return dict(zip(good, emb))


def _embed_cmd(cluster, inp, out, *extra) -> list[str]:
    return [sys.executable, "-m", "vit_infer", "embed", "--model", str(DEMO), "--input", str(inp), "--output", str(out),
            "--batch", str(BATCH), "--actors", "2", "--address", cluster, "--no-progress", *extra]


@pytest.fixture(scope="module")
def jobs(cluster, images, tmp_path_factory):
    """The two jobs (a directory; a Parquet file of the same images' bytes) run at once on the cluster
    (each starts a driver and two actors: most of their time): {kind: (CompletedProcess-like, out)}."""
    from vit_infer.embed import image_files
    d = tmp_path_factory.mktemp("jobs")
    files = image_files(str(images))
    src = d / "images.parquet"
    pq.write_table(pa.table({"key": files, "jpg": [open(f, "rb").read() for f in files]}), src)
    procs = {kind: (subprocess.Popen(_embed_cmd(cluster, inp, d / f"{kind}.parquet"), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True), d / f"{kind}.parquet")
             for kind, inp in (("dir", images), ("parquet", src))}
    out = {}
    for kind, (p, path) in procs.items():
        _, err = p.communicate(timeout=300)
        out[kind] = (p.returncode, err, path)
    return out


def _check(table, want: dict[str, np.ndarray], key: str) -> None:
    rows = table.to_pylist()
    assert len(rows) == 12
    bad = {r[key]: r["error"] for r in rows if r["error"] is not None}
    assert len(bad) == 2 and all(r["embedding"] is None for r in rows if r["error"] is not None)
    for k, e in bad.items():
        assert ("truncated" in k and "truncated" in e.lower()) or ("text" in k and e), (k, e)
    good = {r[key]: np.asarray(r["embedding"], np.float32) for r in rows if r["error"] is None}
    assert sorted(good) == sorted(want)
    for k, e in good.items():
        np.testing.assert_array_equal(e, want[k], err_msg=k)


def test_embed_a_directory_equals_vit_infer_classify(jobs, images):
    want = _cli_embeddings(images)
    rc, err, out = jobs["dir"]
    assert rc == 1, err  # some rows failed: reported, the rest written
    assert "12 rows (2 errors) written" in err, err
    t = pq.read_table(out)
    assert t.schema.field("embedding").type == pa.list_(pa.float32())
    _check(t, want, "path")


def test_embed_a_parquet_file_of_image_bytes(jobs, images):
    want = _cli_embeddings(images)
    rc, err, out = jobs["parquet"]
    assert rc == 1 and "12 rows (2 errors) written" in err, err
    t = pq.read_table(out)
    assert set(t.column_names) == {"key", "embedding", "error"}
    _check(t, want, "key")


def test_embed_refuses_what_it_cannot_do(cluster, images, tmp_path):
    (tmp_path / "exists.parquet").mkdir()
    run = lambda *a: subprocess.run(_embed_cmd(cluster, *a), capture_output=True, text=True, timeout=300)  # noqa: E731
    r = run(images, tmp_path / "exists.parquet")
    assert r.returncode == 2 and "exists" in r.stderr
    src = tmp_path / "noimg.parquet"
    pq.write_table(pa.table({"key": ["a"], "caption": ["b"]}), src)
    r = run(src, tmp_path / "o.parquet")
    assert r.returncode == 2 and "no image column" in r.stderr, r.stderr
