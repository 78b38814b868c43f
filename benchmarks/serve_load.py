#!/usr/bin/env python3
"""Load run of the vit_infer.serve application: an async HTTP client (aiohttp) against a local Ray
Serve deployment of the demo model on the CPU, at concurrency 1 / 8 / 32, with @serve.batch on and
off. Per (mode, concurrency): requests/s and p50 / p99 latency, each repeated --repeats times (the
median is reported with the min..max spread). The client and the server share the machine: the
numbers include the client's own CPU use. Writes JSON + Markdown (commit hash, machine state).

    .venv/bin/python benchmarks/serve_load.py --out benchmarks/results/serve-load-cpu-DATE
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import pathlib
import platform
import socket
import statistics
import subprocess
import sys
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # every Ray address on loopback

import aiohttp  # noqa: E402
import numpy as np  # noqa: E402
import ray  # noqa: E402
from ray import serve  # noqa: E402

import vit_infer  # noqa: E402
from vit_infer import serve as vserve  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, bodies: list[bytes], concurrency: int, seconds: float, warmup: float) -> dict:
    """`concurrency` closed-loop clients posting `bodies` round-robin for `seconds` after `warmup`."""
    lat: list[float] = []
    errors = 0
    t_start = time.perf_counter()
    t_measure, t_end = t_start + warmup, t_start + warmup + seconds
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as client:

        async def worker(w: int) -> None:
            nonlocal errors
            k = w
            while True:
                t0 = time.perf_counter()
                if t0 >= t_end:
                    return
                async with client.post(url, data=bodies[k % len(bodies)]) as r:
                    body = await r.read()
                    ok = r.status == 200
                t1 = time.perf_counter()
                if t0 >= t_measure:
                    if ok:
                        lat.append(t1 - t0)
                    else:
                        errors += 1
                        if errors <= 3:
                            print(f"HTTP {r.status}: {body[:200]!r}", file=sys.stderr)
                k += concurrency

        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = max(time.perf_counter(), t_end) - t_measure
    lat.sort()
    return {"requests": len(lat), "errors": errors, "rps": len(lat) / seconds,
            "p50_ms": 1e3 * lat[len(lat) // 2] if lat else None,
            "p99_ms": 1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None,
            "elapsed_s": elapsed}


def write_random_vit(out: pathlib.Path, dim: int, depth: int, heads: int, img: int, patch: int,
                     classes: int = 10, seed: int = 0) -> pathlib.Path:
    """A random-weight ViT in timm's layout (model.safetensors + config.json), for load runs at a
    size where compute dominates. Weights U(-a, a), a = sqrt(3 / fan_in); LayerNorm weights ~1."""
    rng = np.random.default_rng(seed)
    n = (img // patch) ** 2 + 1
    t: dict[str, np.ndarray] = {}

    def lin(name, o, i):
        a = (3.0 / i) ** 0.5
        t[name + ".weight"] = rng.uniform(-a, a, (o, i)).astype(np.float32)
        t[name + ".bias"] = rng.uniform(-0.1, 0.1, o).astype(np.float32)

    def ln(name):
        t[name + ".weight"] = rng.uniform(0.8, 1.2, dim).astype(np.float32)
        t[name + ".bias"] = rng.uniform(-0.1, 0.1, dim).astype(np.float32)

    t["cls_token"] = rng.uniform(-0.5, 0.5, (1, 1, dim)).astype(np.float32)
    t["pos_embed"] = rng.uniform(-0.5, 0.5, (1, n, dim)).astype(np.float32)
    lin("patch_embed.proj", dim, 3 * patch * patch)
    t["patch_embed.proj.weight"] = t["patch_embed.proj.weight"].reshape(dim, 3, patch, patch)
    for b in range(depth):
        ln(f"blocks.{b}.norm1")
        lin(f"blocks.{b}.attn.qkv", 3 * dim, dim)
        lin(f"blocks.{b}.attn.proj", dim, dim)
        ln(f"blocks.{b}.norm2")
        lin(f"blocks.{b}.mlp.fc1", 4 * dim, dim)
        lin(f"blocks.{b}.mlp.fc2", dim, 4 * dim)
    ln("norm")
    lin("head", classes, dim)
    header, off = {}, 0
    for k, v in t.items():
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + v.nbytes]}
        off += v.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "model.safetensors", "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h)
        for v in t.values():
            f.write(np.ascontiguousarray(v).tobytes())
    cfg = {"architecture": "vit_tiny_patch16_224", "num_classes": classes, "global_pool": "token",
           "model_args": {"img_size": [img, img], "patch_size": patch, "embed_dim": dim, "depth": depth,
                          "num_heads": heads, "mlp_ratio": 4.0, "num_classes": classes, "global_pool": "token"}}
    (out / "config.json").write_text(json.dumps(cfg))
    return out


def machine_state() -> dict:
    load1, load5, load15 = os.getloadavg()
    top = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True).stdout
    return {"nproc": os.cpu_count(), "loadavg": [load1, load5, load15],
            "top_processes": top.splitlines()[1:8], "platform": platform.platform(),
            "python": sys.version.split()[0], "ray": ray.__version__, "numpy": np.__version__}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "demo"))
    ap.add_argument("--random-vit", default=None, metavar="DIM,DEPTH,HEADS,IMG,PATCH",
                    help="instead of --model: a random-weight ViT of this shape (written to a temp dir)")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-batch-size", type=int, default=16)
    ap.add_argument("--batch-wait-timeout-s", type=float, default=0.005)
    ap.add_argument("--replica-cpus", type=float, default=1)
    ap.add_argument("--threads", type=int, default=1, help="engine threads per replica")
    ap.add_argument("--out", required=True, help="output path without extension (.json and .md are written)")
    a = ap.parse_args()
    concs = [int(c) for c in a.concurrency.split(",")]
    if a.random_vit:
        import tempfile
        dim, depth, heads, img, patch = (int(v) for v in a.random_vit.split(","))
        a.model = str(write_random_vit(pathlib.Path(tempfile.mkdtemp(prefix="vit-load-")), dim, depth, heads, img,
                                       patch))
    bodies = [p.read_bytes() for p in sorted((ROOT / "models" / "demo" / "samples").glob("sample_*"))]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                text=True, cwd=ROOT).stdout.strip())
    state_before = machine_state()
    port = free_port()
    results = []
    ray.init(num_cpus=max(2, int(a.replica_cpus) + 1), include_dashboard=False, log_to_driver=False)
    try:
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        for batching in (True, False):
            app = vserve.VitDeployment.options(num_replicas=1, ray_actor_options={"num_cpus": a.replica_cpus}).bind(
                model=a.model, device="cpu", max_batch_size=a.max_batch_size,
                batch_wait_timeout_s=a.batch_wait_timeout_s, batching=batching, threads=a.threads)
            serve.run(app, name="vit", route_prefix="/")
            url = f"http://127.0.0.1:{port}/classify"
            for c in concs:
                runs = [asyncio.run(load(url, bodies, c, a.seconds, a.warmup)) for _ in range(a.repeats)]
                row = {"batching": batching, "concurrency": c, "runs": runs}
                for key in ("rps", "p50_ms", "p99_ms"):
                    vals = [r[key] for r in runs if r[key] is not None]
                    if not vals:
                        raise SystemExit(f"batching={batching} c={c}: no request completed in the window")
                    row[key] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
                row["errors"] = sum(r["errors"] for r in runs)
                results.append(row)
                print(f"batching={'on ' if batching else 'off'} c={c:3d}: {row['rps']['median']:7.1f} req/s "
                      f"({row['rps']['min']:.1f}..{row['rps']['max']:.1f}), p50 {row['p50_ms']['median']:.1f} ms, "
                      f"p99 {row['p99_ms']['median']:.1f} ms, errors {row['errors']}", flush=True)
            serve.delete("vit")
    finally:
        serve.shutdown()
        ray.shutdown()
    doc = {"what": "vit_infer.serve load run (benchmarks/serve_load.py)", "commit": commit, "dirty": dirty,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "model": a.model, "info": vit_infer.Model(a.model).info.__dict__,
           "settings": {k: v for k, v in vars(a).items() if k != "out"},
           "machine_before": state_before, "machine_after": machine_state(), "results": results}
    out = pathlib.Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    lines = [f"# vit_infer.serve load run, {doc['date']}", "",
             f"Commit `{commit}`{' (uncommitted changes)' if dirty else ''}; model "
             f"`{('random ViT ' + a.random_vit + ' (dim,depth,heads,img,patch)') if a.random_vit else a.model}` "
             f"({doc['info']['param_count']} parameters, {doc['info']['image_height']}px); one replica "
             f"({a.replica_cpus} CPU, {a.threads} engine thread), max_batch_size {a.max_batch_size}, "
             f"batch_wait_timeout_s {a.batch_wait_timeout_s}; {a.repeats} runs of {a.seconds} s "
             f"(after {a.warmup} s warm-up) per row: median (min..max).", "",
             f"Machine: {state_before['nproc']} CPUs, load average before {state_before['loadavg']}, after "
             f"{doc['machine_after']['loadavg']}; shared with other work, and the client runs on the same CPUs.",
             "", "| batching | concurrency | requests/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]
    for r in results:
        f = lambda k: f"{r[k]['median']:.1f} ({r[k]['min']:.1f}..{r[k]['max']:.1f})"  # noqa: E731
        lines.append(f"| {'on' if r['batching'] else 'off'} | {r['concurrency']} | {f('rps')} | {f('p50_ms')} | "
                     f"{f('p99_ms')} | {r['errors']} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}.json / .md")
    return 0 if all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
