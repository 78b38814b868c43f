#!/usr/bin/env python3
"""Load runs of the vit_infer.serve application on the CPU: an async HTTP client (aiohttp, closed loop)
against a local Ray Serve, on the same machine (its CPUs are shared by the client, Serve's proxy and
the replicas: say so beside any number). Writes JSON + Markdown (commit, settings, load averages).

Load mode (default): two apps deployed at once, batching on (/on) and off (/off), same model and
replica settings; for each repeat and concurrency (1 / 8 / 32) the two are run back to back,
alternating which goes first, with the load average recorded before each run. Per (mode,
concurrency): requests/s, p50 / p99 over the repeats (median, min..max). Then the bare engine: the
same request's work in this process (decode + Session.run_images of one image, and run_images alone,
the replica's thread count), so the HTTP path's own cost per request is p50(c=1) - bare.

    .venv/bin/python benchmarks/serve_load.py --random-vit 768,12,12,224,16 --out benchmarks/results/serve-load-vitb16-DATE

Fault mode (--kill-replica-after S): two replicas; S seconds into a run of --fault-seconds at
--fault-concurrency, one replica is killed (ray.kill, as a crash). Each request is retried on a lost
connection or a 5xx (Serve answers the requests that were on the dead replica with 500, its mapping of
a dead actor; inference is idempotent), with a per-attempt timeout: the run counts
requests answered first time, answered after retries, failed and hung, and how long Serve took to
replace the replica.

    .venv/bin/python benchmarks/serve_load.py --kill-replica-after 5 --out benchmarks/results/serve-fault-DATE
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
    """`concurrency` closed-loop clients posting `bodies` round-robin. Counted: the requests that
    complete within the `seconds` after `warmup` (throughput = their count / seconds, latencies
    theirs), so that a latency longer than the window biases neither; requests still in flight at
    the end are cancelled."""
    lat: list[float] = []
    errors = 0
    t_start = time.perf_counter()
    t_measure, t_end = t_start + warmup, t_start + warmup + seconds
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=600)) as client:

        async def worker(w: int) -> None:
            nonlocal errors
            k = w
            while True:
                t0 = time.perf_counter()
                async with client.post(url, data=bodies[k % len(bodies)]) as r:
                    body = await r.read()
                    ok = r.status == 200
                t1 = time.perf_counter()
                if t1 >= t_end:
                    return
                if t1 >= t_measure:
                    if ok:
                        lat.append(t1 - t0)
                    else:
                        errors += 1
                        if errors <= 3:
                            print(f"HTTP {r.status}: {body[:200]!r}", file=sys.stderr)
                k += concurrency

        tasks = [asyncio.create_task(worker(w)) for w in range(concurrency)]
        await asyncio.wait(tasks, timeout=t_end - time.perf_counter())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    lat.sort()
    return {"requests": len(lat), "errors": errors, "rps": len(lat) / seconds,
            "p50_ms": 1e3 * lat[len(lat) // 2] if lat else None,
            "p99_ms": 1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None}


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


_BARE = r"""
import json, statistics, sys, time
import vit_infer
model, threads, iters, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
bodies = [open(f, "rb").read() for f in files]
s = vit_infer.Session(vit_infer.Model(model), device="cpu", max_batch=1, threads=threads)
pix = [vit_infer.decode_image(b) for b in bodies]
out = {}
for name, fn in (("decode+run_images", lambda k: s.run_images([vit_infer.decode_image(bodies[k % len(bodies)])])),
                 ("run_images", lambda k: s.run_images([pix[k % len(pix)]]))):
    fn(0)
    t = []
    for k in range(iters):
        t0 = time.perf_counter()
        fn(k)
        t.append(time.perf_counter() - t0)
    out[name] = {"p50_ms": 1e3 * statistics.median(t), "min_ms": 1e3 * min(t), "iters": iters}
print(json.dumps(out))
"""


def bare_engine(model: str, files: list[str], threads: int, iters: int) -> dict:
    """The work of one request without HTTP, in a fresh process as a user's script would run it:
    decode + run_images of one image (what a replica does per request, batch 1), and run_images of
    the decoded image alone; p50 / min over `iters`."""
    r = subprocess.run([sys.executable, "-c", _BARE, model, str(threads), str(iters), *files], capture_output=True,
                       text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _stats(vals: list[float]) -> dict:
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def load_mode(a, model: str, bodies: list[bytes], port: int) -> tuple[list, dict]:
    concs = [int(c) for c in a.concurrency.split(",")]
    for batching, prefix in ((True, "/on"), (False, "/off")):
        app = vserve.VitDeployment.options(num_replicas=a.replicas, health_check_period_s=60,
                                           ray_actor_options={"num_cpus": a.replica_cpus}).bind(
            model=model, device="cpu", max_batch_size=a.max_batch_size, batch_wait_timeout_s=a.batch_wait_timeout_s,
            batching=batching, threads=a.threads)
        serve.run(app, name=prefix[1:], route_prefix=prefix)
    files = [str(p) for p in sorted((ROOT / "models" / "demo" / "samples").glob("sample_*"))]
    bare = [bare_engine(model, files, a.threads, a.bare_iters)]
    runs: dict = {}
    for rep in range(a.repeats):
        for c in concs:
            order = (True, False) if (rep + c) % 2 == 0 else (False, True)
            for batching in order:
                url = f"http://127.0.0.1:{port}/{'on' if batching else 'off'}/classify"
                la = os.getloadavg()[0]
                r = asyncio.run(load(url, bodies, c, a.seconds, a.warmup))
                r["loadavg_before"] = la
                runs.setdefault((batching, c), []).append(r)
                print(f"rep {rep} batching={'on ' if batching else 'off'} c={c:3d}: {r['rps']:6.2f} req/s, "
                      f"p50 {r['p50_ms'] or 0:.0f} ms, p99 {r['p99_ms'] or 0:.0f} ms, errors {r['errors']}, "
                      f"load {la:.1f}", flush=True)
    bare.append(bare_engine(model, files, a.threads, a.bare_iters))
    rows = []
    for (batching, c), rs in sorted(runs.items(), key=lambda kv: (kv[0][1], not kv[0][0])):
        row = {"batching": batching, "concurrency": c, "runs": rs, "errors": sum(r["errors"] for r in rs),
               "loadavg": _stats([r["loadavg_before"] for r in rs])}
        for key in ("rps", "p50_ms", "p99_ms"):
            vals = [r[key] for r in rs if r[key] is not None]
            if not vals:
                raise SystemExit(f"batching={batching} c={c}: no request completed in the window")
            row[key] = _stats(vals)
        rows.append(row)
    return rows, {"before": bare[0], "after": bare[1]}


async def fault_run(url: str, bodies: list[bytes], concurrency: int, seconds: float, kill_after: float,
                    attempt_timeout: float, retries: int, kill) -> dict:
    """Closed-loop clients for `seconds`; `kill()` is called `kill_after` seconds in. Per request:
    its attempts' outcomes; retried on a lost connection or a 5xx."""
    counts = {"requests": 0, "answered_first_try": 0, "answered_after_retry": 0, "failed": 0, "hung": 0,
              "retries": 0}
    first_failures: dict[str, int] = {}
    failures: list[str] = []
    t_end = time.perf_counter() + seconds
    timeout = aiohttp.ClientTimeout(total=attempt_timeout)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout) as client:

        async def one(k: int) -> None:
            counts["requests"] += 1
            for attempt in range(retries + 1):
                why = None
                try:
                    async with client.post(url, data=bodies[k % len(bodies)]) as r:
                        body = await r.read()
                        if r.status == 200:
                            counts["answered_first_try" if attempt == 0 else "answered_after_retry"] += 1
                            return
                        text = body[:300].decode(errors="replace")
                        why = f"HTTP {r.status}: {text[:60]}"
                        # Inference is idempotent: a 5xx is retried. Serve's proxy answers the requests
                        # that were on a replica when it died with 500 (it maps RayActorError to 500,
                        # ray/serve/_private/http_util.py), not 503; a 4xx is the request's own fault.
                        if r.status < 500:
                            counts["failed"] += 1
                            failures.append(f"{why}: {text}")
                            return
                except asyncio.TimeoutError:
                    counts["hung"] += 1  # no answer within attempt_timeout: counted, not retried
                    return
                except aiohttp.ClientError as e:
                    why = type(e).__name__
                if attempt == 0:
                    first_failures[why] = first_failures.get(why, 0) + 1
                if attempt == retries:
                    counts["failed"] += 1
                    failures.append(f"{why} after {retries} retries")
                    return
                counts["retries"] += 1
                await asyncio.sleep(min(0.05 * 2 ** attempt, 1.0))

        async def worker(w: int) -> None:
            k = w
            while time.perf_counter() < t_end:
                await one(k)
                k += concurrency

        async def killer() -> float:
            await asyncio.sleep(kill_after)
            t0 = time.perf_counter()
            await asyncio.to_thread(kill)
            return t0

        kt = asyncio.create_task(killer())
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        await kt
    counts["requests_retried"] = counts["answered_after_retry"] + sum(1 for f in failures if "retries" in f)
    return {**counts, "first_attempt_failures": first_failures, "failures": failures[:20]}


def fault_mode(a, model: str, bodies: list[bytes], port: int) -> dict:
    app = vserve.VitDeployment.options(num_replicas=2, ray_actor_options={"num_cpus": 1}).bind(
        model=model, device="cpu", max_batch_size=a.max_batch_size, batch_wait_timeout_s=a.batch_wait_timeout_s,
        threads=1)
    serve.run(app, name="vit", route_prefix="/")
    replicas = sorted(x["name"] for x in ray.util.list_named_actors(all_namespaces=True)
                      if x["name"].startswith("SERVE_REPLICA::"))
    assert len(replicas) == 2, replicas
    killed: dict = {}

    def kill() -> None:
        killed["t"] = time.perf_counter()
        ray.kill(ray.get_actor(replicas[0], namespace="serve"), no_restart=True)

    r = asyncio.run(fault_run(f"http://127.0.0.1:{port}/classify", bodies, a.fault_concurrency, a.fault_seconds,
                              a.kill_replica_after, a.attempt_timeout, a.retries, kill))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st = serve.status().applications["vit"].deployments["VitDeployment"]
        now = [x["name"] for x in ray.util.list_named_actors(all_namespaces=True)
               if x["name"].startswith("SERVE_REPLICA::")]
        if st.replica_states.get("RUNNING", 0) == 2 and replicas[0] not in now:
            r["replaced_after_s"] = time.perf_counter() - killed["t"]
            break
        time.sleep(0.5)
    else:
        r["replaced_after_s"] = None
    r["killed_replica"] = replicas[0]
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "demo"))
    ap.add_argument("--random-vit", default=None, metavar="DIM,DEPTH,HEADS,IMG,PATCH",
                    help="instead of --model: a random-weight ViT of this shape (768,12,12,224,16: ViT-B/16)")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--replicas", type=int, default=1, help="replicas per app (load mode)")
    ap.add_argument("--replica-cpus", type=float, default=2)
    ap.add_argument("--threads", type=int, default=None, help="engine threads per replica (default: replica CPUs)")
    ap.add_argument("--max-batch-size", type=int, default=16)
    ap.add_argument("--batch-wait-timeout-s", type=float, default=0.005)
    ap.add_argument("--bare-iters", type=int, default=20)
    ap.add_argument("--kill-replica-after", type=float, default=None, help="fault mode: kill a replica after S s")
    ap.add_argument("--fault-seconds", type=float, default=20)
    ap.add_argument("--fault-concurrency", type=int, default=16)
    ap.add_argument("--attempt-timeout", type=float, default=30)
    ap.add_argument("--retries", type=int, default=10)
    ap.add_argument("--out", required=True, help="output path without extension (.json and .md are written)")
    a = ap.parse_args()
    a.threads = a.threads or max(1, int(a.replica_cpus))
    model = a.model
    if a.random_vit:
        import tempfile
        dim, depth, heads, img, patch = (int(v) for v in a.random_vit.split(","))
        model = str(write_random_vit(pathlib.Path(tempfile.mkdtemp(prefix="vit-load-")), dim, depth, heads, img,
                                     patch))
    bodies = [p.read_bytes() for p in sorted((ROOT / "models" / "demo" / "samples").glob("sample_*"))]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                text=True, cwd=ROOT).stdout.strip())
    state_before = machine_state()
    port = free_port()
    ray.init(num_cpus=int(2 * a.replicas * a.replica_cpus) + 2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
        if a.kill_replica_after is not None:
            results, bare = fault_mode(a, model, bodies, port), None
        else:
            results, bare = load_mode(a, model, bodies, port)
    finally:
        serve.shutdown()
        ray.shutdown()
    info = vit_infer.Model(model).info
    doc = {"what": "vit_infer.serve " + ("fault run" if a.kill_replica_after is not None else "load run")
                   + " (benchmarks/serve_load.py)", "commit": commit, "dirty": dirty,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "model": ("random ViT " + a.random_vit) if a.random_vit else a.model, "info": info.__dict__,
           "settings": {k: v for k, v in vars(a).items() if k != "out"}, "machine_before": state_before,
           "machine_after": machine_state(), "results": results, "bare_engine": bare}
    out = pathlib.Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    mdl = (f"random-weight ViT {a.random_vit} (dim,depth,heads,img,patch)" if a.random_vit else f"`{a.model}`") + \
        f", {info.param_count} parameters, {info.image_height} px, {info.flops_per_image / 1e9:.2f} GFLOP per image"
    lines = [f"# {doc['what']}, {doc['date']}", "", f"Commit `{commit}`{' (uncommitted changes)' if dirty else ''}; "
             f"model {mdl}; request: one of the demo's sample PNG / JPEG files, decoded and preprocessed on the replica.",
             "", f"Machine: {state_before['nproc']} CPUs, shared with other engineers' builds (load average before "
             f"{state_before['loadavg'][0]:.1f}, after {doc['machine_after']['loadavg'][0]:.1f}); the client, Serve's "
             "proxy and the replicas all run on these same CPUs.", ""]
    if a.kill_replica_after is None:
        lines += [f"Two apps at once (batching on / off), each {a.replicas} replica(s) of {a.replica_cpus:g} CPU, "
                  f"{a.threads} engine thread(s); max_batch_size {a.max_batch_size}, batch_wait_timeout_s "
                  f"{a.batch_wait_timeout_s}; {a.repeats} repeats of {a.seconds:g} s (after {a.warmup:g} s warm-up), "
                  "on and off back to back in alternating order: median (min..max) over the repeats; the load "
                  "average before each run.", "",
                  "| batching | concurrency | requests/s | p50 ms | p99 ms | errors | load average |",
                  "|---|---|---|---|---|---|---|"]
        for r in results:
            f = lambda k: f"{r[k]['median']:.1f} ({r[k]['min']:.1f}..{r[k]['max']:.1f})"  # noqa: E731
            lines.append(f"| {'on' if r['batching'] else 'off'} | {r['concurrency']} | {f('rps')} | {f('p50_ms')} | "
                         f"{f('p99_ms')} | {r['errors']} | {f('loadavg')} |")
        lines += ["", "The same request without HTTP, in a fresh process (one Session, "
                  f"{a.threads} thread(s), batch 1), before / after the runs: "]
        for k in bare["before"]:
            lines.append(f"- {k}: p50 {bare['before'][k]['p50_ms']:.1f} / {bare['after'][k]['p50_ms']:.1f} ms "
                         f"(min {bare['before'][k]['min_ms']:.1f} / {bare['after'][k]['min_ms']:.1f})")
        c1 = [r for r in results if r["concurrency"] == 1 and not r["batching"]]
        if c1:
            over = c1[0]["p50_ms"]["median"] - statistics.median(
                [bare[x]["decode+run_images"]["p50_ms"] for x in ("before", "after")])
            lines.append(f"- HTTP path's own cost per request (batching off, concurrency 1): p50 {over:.1f} ms")
        ok = all(r["errors"] == 0 for r in results)
    else:
        r = results
        lines += [f"Two replicas (1 CPU, 1 engine thread each), {a.fault_concurrency} concurrent clients for "
                  f"{a.fault_seconds:g} s; replica `{r['killed_replica']}` killed {a.kill_replica_after:g} s in. "
                  f"A request is retried (at most {a.retries} times, backing off) on a lost connection or a 5xx "
                  f"(Serve's proxy answers 500 for the requests that were on the dead replica); an attempt with no answer in {a.attempt_timeout:g} s counts as "
                  "hung.", "", "| requests | answered first try | answered after retries | retries | failed | hung |",
                  "|---|---|---|---|---|---|",
                  f"| {r['requests']} | {r['answered_first_try']} | {r['answered_after_retry']} | {r['retries']} | "
                  f"{r['failed']} | {r['hung']} |", "",
                  f"First attempts that failed, by cause: {r['first_attempt_failures'] or 'none'}. Serve replaced the "
                  f"killed replica after {r['replaced_after_s'] or float('nan'):.1f} s."]
        ok = r["failed"] == 0 and r["hung"] == 0
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}.json / .md")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
