#!/usr/bin/env python3
"""vit-infer peer comparison: ViT-B/16 on one GPU, in one run, with the same random weights,
across the engines people use:

  timm eager                       timm.create_model(...).eval(), SDPA attention
  timm + torch.compile             mode="max-autotune", dynamic=False (one compile per batch)
  HF transformers                  ViTForImageClassification, attn_implementation="sdpa"
  vit-infer                        vit-bench (subprocess, --json), fed the timm safetensors

Precisions fp16 / bf16, batches 1..256. Two timing modes per engine:
  device  input already on the GPU in the run dtype, output left there (GPU compute)
  host    fp32 numpy input -> GPU -> model -> fp32 logits on the host (end to end)
CUDA events, warm-up first, median over the timed runs; inputs random (never zeros) and
rotated among several sets whose total is at least 2x the L2, so runs do not reuse cached data.
Writes <out-dir>/peers-<date>.json and .md after every engine measured (a run stopped part-way
keeps what it finished; "complete" is false until the end) and, when matplotlib imports, .png.
bf16 runs first (the headline), its torch.compile pairs first in the compile budget.
--vit-bench-json PREC=FILE takes vit-infer's numbers from a vit-bench JSON already measured
(tools/gpu_run.sh step 3) instead of running vit-bench again.

    python3 benchmarks/peers.py --vit-bench build/benchmarks/vit-bench
    python3 benchmarks/peers.py --smoke          # tiny CPU-capable check of the script itself
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARCH = "vit_base_patch16_224"


def log(msg: str) -> None:
    print(f"[peers] {msg}", file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vit-bench", default=None, help="path to the vit-bench binary (skipped when absent)")
    p.add_argument("--batches", default="1,8,32,64,128,256")
    p.add_argument("--precisions", default="bf16,fp16", help="run in this order, bf16 first whatever is given")
    p.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--target-s", type=float, default=0.6, help="timed seconds per (engine, batch, mode)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--min-iters", type=int, default=10)
    p.add_argument("--max-iters", type=int, default=500)
    p.add_argument("--compile-budget-s", type=float, default=300.0,
                   help="stop compiling new (precision, batch) pairs once this much time went to torch.compile")
    p.add_argument("--compile-mode", default="max-autotune", help="torch.compile mode")
    p.add_argument("--vit-bench-json", action="append", default=[], metavar="PREC=FILE",
                   help="vit-infer results of precision PREC from this vit-bench JSON (no vit-bench run)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--no-hf", action="store_true")
    p.add_argument("--gemm", default="auto", help="vit-bench --gemm")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="", help="suffix of the output file names")
    p.add_argument("--smoke", action="store_true",
                   help="tiny batches, few iterations, CPU allowed, no torch.compile: checks the script")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# Models with shared random weights
# ---------------------------------------------------------------------------------------------
def make_timm_model(torch, timm, seed: int):
    """timm ViT-B/16 with every parameter random and non-zero (timm's own init zeroes biases)."""
    torch.manual_seed(seed)
    m = timm.create_model(ARCH, pretrained=False, num_classes=1000)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith(".bias"):
                p.copy_(torch.empty(p.shape).uniform_(-0.1, 0.1, generator=g))
            elif "norm" in name and p.ndim == 1:  # LayerNorm weights around 1
                p.copy_(torch.empty(p.shape).uniform_(0.8, 1.2, generator=g))
            elif p.ndim >= 2 and name not in ("pos_embed", "cls_token"):
                fan_in = p[0].numel()
                a = math.sqrt(3.0 / fan_in)
                p.copy_(torch.empty(p.shape).uniform_(-a, a, generator=g))
            else:
                p.copy_(torch.empty(p.shape).uniform_(-0.5, 0.5, generator=g))
    return m.eval()


def timm_to_hf_state_dict(sd, depth: int, dim: int):
    """timm ViT names -> HF ViTForImageClassification names (qkv split into query/key/value)."""
    out = {
        "vit.embeddings.cls_token": sd["cls_token"],
        "vit.embeddings.position_embeddings": sd["pos_embed"],
        "vit.embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
        "vit.embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
        "vit.layernorm.weight": sd["norm.weight"],
        "vit.layernorm.bias": sd["norm.bias"],
        "classifier.weight": sd["head.weight"],
        "classifier.bias": sd["head.bias"],
    }
    for i in range(depth):
        t, h = f"blocks.{i}.", f"vit.encoder.layer.{i}."
        qw, kw, vw = sd[t + "attn.qkv.weight"].split(dim, 0)
        qb, kb, vb = sd[t + "attn.qkv.bias"].split(dim, 0)
        out.update({
            h + "layernorm_before.weight": sd[t + "norm1.weight"],
            h + "layernorm_before.bias": sd[t + "norm1.bias"],
            h + "attention.attention.query.weight": qw, h + "attention.attention.query.bias": qb,
            h + "attention.attention.key.weight": kw, h + "attention.attention.key.bias": kb,
            h + "attention.attention.value.weight": vw, h + "attention.attention.value.bias": vb,
            h + "attention.output.dense.weight": sd[t + "attn.proj.weight"],
            h + "attention.output.dense.bias": sd[t + "attn.proj.bias"],
            h + "layernorm_after.weight": sd[t + "norm2.weight"],
            h + "layernorm_after.bias": sd[t + "norm2.bias"],
            h + "intermediate.dense.weight": sd[t + "mlp.fc1.weight"],
            h + "intermediate.dense.bias": sd[t + "mlp.fc1.bias"],
            h + "output.dense.weight": sd[t + "mlp.fc2.weight"],
            h + "output.dense.bias": sd[t + "mlp.fc2.bias"],
        })
    return {k: v.contiguous() for k, v in out.items()}


def make_hf_model(torch, timm_model, tmp: Path):
    """HF ViTForImageClassification with SDPA attention holding timm_model's weights. The weights
    go through a checkpoint directory in the classic HF names and from_pretrained, which is the
    path hub checkpoints take (transformers 5 renames its modules and converts on load)."""
    import transformers
    from safetensors.torch import save_file
    from transformers import ViTConfig, ViTForImageClassification

    cfg = ViTConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                    hidden_act="gelu", layer_norm_eps=1e-6, image_size=224, patch_size=16, num_channels=3,
                    qkv_bias=True, num_labels=1000, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    d = tmp / "hf"
    d.mkdir(parents=True, exist_ok=True)
    cfg.save_pretrained(str(d))
    save_file(timm_to_hf_state_dict(timm_model.state_dict(), 12, 768), str(d / "model.safetensors"))
    model = ViTForImageClassification.from_pretrained(str(d), attn_implementation="sdpa")
    attn = getattr(model.config, "_attn_implementation", None)
    # The fp32 comparison with timm in main() is what proves the mapping.
    return model.eval(), {"transformers": transformers.__version__, "attn_implementation": attn}


def hf_logits(out):
    return out.logits if hasattr(out, "logits") else out[0]


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------
class Timer:
    """CUDA events on the current stream (host clock on CPU, smoke mode only)."""

    def __init__(self, torch, device):
        self.torch, self.cuda = torch, device.type == "cuda"

    def run(self, step, n_sets: int, args):
        """step(i) performs run i. Calibrates the count to ~target_s, warms up, times each run."""
        torch = self.torch
        for i in range(args.warmup):
            step(i)
        self.sync()
        t0 = time.perf_counter()
        for i in range(3):
            step(i)
        self.sync()
        per = max((time.perf_counter() - t0) / 3, 1e-5)
        n = int(min(max(args.target_s / per, args.min_iters), args.max_iters))
        if not self.cuda:
            lat = []
            for i in range(n):
                a = time.perf_counter()
                step(i)
                lat.append((time.perf_counter() - a) * 1e3)
            return lat
        # One event before each run and one after the last: consecutive pairs give each run's
        # GPU span; the host never waits inside the loop (a host-mode step syncs by itself).
        ev = [torch.cuda.Event(enable_timing=True) for _ in range(n + 1)]
        ev[0].record()
        for i in range(n):
            step(i)
            ev[i + 1].record()
        ev[-1].synchronize()
        return [ev[i].elapsed_time(ev[i + 1]) for i in range(n)]

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()


def summarize(lat, batch):
    s = sorted(lat)
    n = len(s)

    def pct(q):
        return s[min(max(math.ceil(q * n), 1), n) - 1]

    med = statistics.median(s)
    return {"n": n, "min": s[0], "mean": statistics.fmean(s), "median": med, "p90": pct(0.9), "p95": pct(0.95),
            "p99": pct(0.99), "throughput_img_s": 1000.0 * batch / med if med > 0 else 0.0}


def bench_engine(torch, np, fn, dtype, batch, device, args, timer, l2_bytes, compiled=False):
    """Times fn(x) in device mode and host mode; returns {"device": stats, "host": stats}."""
    per_img = 3 * 224 * 224
    dev_bytes = per_img * batch * torch.tensor([], dtype=dtype).element_size()
    n_dev = int(min(max(math.ceil(2 * l2_bytes / dev_bytes), 2), 64))
    gen = torch.Generator(device="cpu").manual_seed(1000 + batch)
    dev_sets = [(torch.rand(batch, 3, 224, 224, generator=gen) * 5 - 2.5).to(device=device, dtype=dtype)
                for _ in range(n_dev)]
    mark = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None) if compiled else None

    def dev_step(i):
        if mark:
            mark()
        fn(dev_sets[i % n_dev])

    out = {"device": summarize(timer.run(dev_step, n_dev, args), batch)}
    out["device"]["input_sets"] = n_dev
    del dev_sets

    host_bytes = per_img * batch * 4
    n_host = int(min(max(math.ceil(2 * l2_bytes / host_bytes), 2), 64))
    rng = np.random.default_rng(2000 + batch)
    host_sets = [rng.uniform(-2.5, 2.5, size=(batch, 3, 224, 224)).astype(np.float32) for _ in range(n_host)]

    def host_step(i):
        if mark:
            mark()
        x = torch.from_numpy(host_sets[i % n_host]).to(device).to(dtype)
        fn(x).float().cpu()

    out["host"] = summarize(timer.run(host_step, n_host, args), batch)
    out["host"]["input_sets"] = n_host
    return out


# ---------------------------------------------------------------------------------------------
# vit-bench
# ---------------------------------------------------------------------------------------------
def run_vit_bench(binary, weights, precision, batches, args, tmp: Path):
    if not binary:
        return {"error": "no --vit-bench given"}
    if not Path(binary).exists():
        return {"error": f"vit-bench not found at {binary}"}
    jpath = tmp / f"vit-bench-{precision}.json"
    cmd = [str(binary), "--model", str(weights), "--arch", ARCH, "--precision", precision, "--batch",
           ",".join(str(b) for b in batches), "--warmup", str(max(args.warmup, 5)), "--duration",
           str(args.target_s), "--gemm", args.gemm, "--json", str(jpath)]
    log("running " + " ".join(cmd))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    res = {"cmd": cmd, "rc": p.returncode, "wall_s": time.perf_counter() - t0,
           "stdout_tail": p.stdout[-4000:], "stderr_tail": p.stderr[-4000:]}
    if p.returncode != 0 or not jpath.exists():
        res["error"] = f"vit-bench exited {p.returncode}"
        return res
    res["json"] = json.loads(jpath.read_text())
    return res


def vit_bench_rows(vb):
    """{batch: {"device": stats | None, "host": stats}} from vit-bench's JSON."""
    rows = {}
    for r in (vb.get("json") or {}).get("results", []):
        b = r["batch"]
        # Throughput from the median, as for the other engines (vit-bench's own JSON also has
        # images / summed time).
        h = dict(r["host"]["latency_ms"])
        h["throughput_img_s"] = 1000.0 * b / h["median"] if h.get("median") else 0.0
        d = None
        if r.get("device"):
            d = dict(r["device"]["latency_ms"])
            d["throughput_img_s"] = 1000.0 * b / d["median"] if d.get("median") else 0.0
        rows[b] = {"device": d, "host": h, "gpu_compute_ms": r.get("gpu_compute_ms"),
                   "gpu_compute_source": r.get("gpu_compute_source")}
    return rows


# ---------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------
ENGINES = ["timm_eager", "timm_compile", "hf_sdpa", "vit_infer"]


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) and v == v else "-"


def markdown(report):
    lines = [f"# Peer comparison, {report['date_utc']}", "",
             f"GPU: {report['env'].get('gpu')}, git {report['git_hash']}, torch {report['env'].get('torch')}, "
             f"timm {report['env'].get('timm')}, transformers {report['env'].get('transformers')}", "",
             "Throughput in images/s from the median run; latency medians in ms. `device`: input resident on "
             "the GPU (for vit-infer, the run_device hook; `~` marks vit-bench's estimate, end-to-end minus "
             "timed copies, when the hook is absent). `host`: fp32 host input to fp32 host logits.", ""]
    for prec, per in report["results"].items():
        for mode in ("device", "host"):
            lines += [f"## {prec}, {mode} input", "",
                      "| batch | " + " | ".join(f"{e} img/s | {e} ms" for e in ENGINES) + " |",
                      "|---:|" + "---:|" * (2 * len(ENGINES))]
            for b in report["batches"]:
                cells = []
                for e in ENGINES:
                    r = per.get(e, {}).get(str(b)) or {}
                    m = r.get(mode) if isinstance(r, dict) else None
                    if m:
                        cells += [fmt(m.get("throughput_img_s"), ".0f"), fmt(m.get("median"), ".3f")]
                    elif e == "vit_infer" and mode == "device" and r.get("gpu_compute_ms"):
                        ms = r["gpu_compute_ms"]
                        cells += [f"~{b * 1000.0 / ms:.0f}" if ms > 0 else "-", f"~{ms:.3f}"]
                    else:
                        cells += [r.get("skipped", "-") if isinstance(r, dict) and r.get("skipped") else "-", "-"]
                lines.append(f"| {b} | " + " | ".join(cells) + " |")
            lines.append("")
    if report.get("accuracy"):
        lines += ["## Logits vs fp32 timm (batch 4, ||x - ref|| / ||ref||)", "", "| precision | engine | rel err |",
                  "|---|---|---:|"]
        for prec, d in report["accuracy"].items():
            for e, v in d.items():
                lines.append(f"| {prec} | {e} | {fmt(v, '.2e')} |")
        lines.append("")
    return "\n".join(lines)


def plot(report, path: Path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # noqa: BLE001
        log(f"matplotlib not importable ({e}); skipping the plot")
        return False
    precs = list(report["results"].keys())
    fig, axes = plt.subplots(1, len(precs), figsize=(6 * len(precs), 4.5), squeeze=False)
    for ax, prec in zip(axes[0], precs):
        per = report["results"][prec]
        for e in ENGINES:
            xs, ys = [], []
            for b in report["batches"]:
                r = per.get(e, {}).get(str(b)) or {}
                m = r.get("device") if isinstance(r, dict) else None
                tp = m.get("throughput_img_s") if m else None
                if tp is None and e == "vit_infer" and r.get("gpu_compute_ms"):
                    tp = b * 1000.0 / r["gpu_compute_ms"]
                if tp:
                    xs.append(b)
                    ys.append(tp)
            if xs:
                ax.plot(xs, ys, marker="o", label=e)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch")
        ax.set_ylabel("images/s (device-resident input)")
        ax.set_title(f"ViT-B/16 {prec}, {report['env'].get('gpu')}")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


# ---------------------------------------------------------------------------------------------
def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    import torch
    import timm

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        log("no CUDA device: peers.py times GPUs (use --smoke to check the script on the CPU)")
        return 2
    device = torch.device("cuda" if cuda else "cpu")
    batches = [int(b) for b in args.batches.split(",") if b]
    precisions = [p for p in args.precisions.split(",") if p]
    precisions.sort(key=lambda p: p != "bf16")  # bf16 first: the headline, and the compile budget
    vb_json = {}
    for item in args.vit_bench_json:
        prec, _, path = item.partition("=")
        if not path:
            log(f"--vit-bench-json wants PREC=FILE, got {item!r}")
            return 2
        vb_json[prec] = Path(path)
    if args.smoke:
        batches = [b for b in batches if b <= 2] or [1, 2]
        args.target_s, args.warmup, args.min_iters, args.max_iters = 0.05, 1, 2, 3
        args.no_compile = True
    dtypes = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    for p in precisions:
        if p not in dtypes:
            log(f"unknown precision {p}")
            return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    env = {"torch": torch.__version__, "timm": timm.__version__, "python": platform.python_version(),
           "gpu": torch.cuda.get_device_name(0) if cuda else "cpu (smoke)"}
    l2 = 60 << 20
    if cuda:
        props = torch.cuda.get_device_properties(0)
        l2 = int(getattr(props, "L2_cache_size", l2) or l2)
        env["l2_bytes"] = l2
        env["sm_count"] = props.multi_processor_count
        try:
            env["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit",
                 "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
        except Exception:  # noqa: BLE001
            pass
    git_hash = os.environ.get("VIT_GIT_HASH", "")
    if not git_hash:
        try:
            git_hash = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                                      cwd=Path(__file__).resolve().parent, timeout=10).stdout.strip()
        except Exception:  # noqa: BLE001
            pass
    git_hash = git_hash or "unknown"

    tmp = Path(tempfile.mkdtemp(prefix="vit-peers-"))
    report = {"tool": "peers.py", "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "git_hash": git_hash, "env": env, "batches": batches, "args": vars(args), "results": {},
              "accuracy": {}, "compile_s": {}, "notes": [], "complete": False}
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "peers-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S") + (f"-{args.tag}" if args.tag else "")

    def save():
        """The report as it stands, JSON and markdown (each written whole, then renamed)."""
        for suffix, text in ((".json", json.dumps(report, indent=2, default=str)), (".md", markdown(report) + "\n")):
            part = out_dir / f"{stem}{suffix}.partial"
            part.write_text(text)
            os.replace(part, out_dir / f"{stem}{suffix}")
    try:
        from safetensors.torch import save_file

        base = make_timm_model(torch, timm, args.seed)
        weights = tmp / "model.safetensors"
        save_file({k: v.contiguous() for k, v in base.state_dict().items()}, str(weights))
        log(f"random {ARCH} weights saved to {weights}")

        hf_base = None
        if not args.no_hf:
            try:
                hf_base, hf_info = make_hf_model(torch, base, tmp)
                env.update(hf_info)
                import transformers  # noqa: F401
            except Exception as e:  # noqa: BLE001
                report["notes"].append(f"HF transformers skipped: {e!r}")
                log(f"HF skipped: {e!r}")
        if "transformers" not in env:
            try:
                import transformers
                env["transformers"] = transformers.__version__
            except Exception:  # noqa: BLE001
                pass

        # fp32 reference logits (TF32 off) for the accuracy column and the HF mapping check.
        gen = torch.Generator().manual_seed(7)
        x_ref = torch.rand(4, 3, 224, 224, generator=gen) * 5 - 2.5
        with torch.inference_mode():
            ref = base.to(device)(x_ref.to(device)).float().cpu()
            if hf_base is not None:
                hf_ref = hf_logits(hf_base.to(device)(pixel_values=x_ref.to(device))).float().cpu()
                err = ((hf_ref - ref).norm() / ref.norm()).item()
                report["accuracy"].setdefault("fp32", {})["hf_sdpa"] = err
                if not err < 1e-4:
                    raise RuntimeError(f"HF weights do not reproduce timm in fp32 (rel err {err:.2e}): mapping bug")
        base.cpu()
        if hf_base is not None:
            hf_base.cpu()

        timer = Timer(torch, device)
        compile_spent = 0.0
        # Compile order: the pairs the targets are judged on first, so a tight budget keeps them.
        compile_order = []
        for p in ["bf16", "fp16"] + [q for q in precisions if q not in ("bf16", "fp16")]:
            if p in precisions:
                for b in [256, 1] + [b for b in batches if b not in (256, 1)]:
                    if b in batches:
                        compile_order.append((p, b))
        compile_allowed = set()
        for prec in precisions:
            dt = dtypes[prec]
            per = report["results"].setdefault(prec, {e: {} for e in ENGINES})
            if prec in vb_json:
                vb = {"source": str(vb_json[prec])}
                try:
                    vb["json"] = json.loads(vb_json[prec].read_text())
                except Exception as e:  # noqa: BLE001
                    vb["error"] = f"--vit-bench-json {vb_json[prec]}: {e!r}"
            else:
                vb = run_vit_bench(args.vit_bench, weights, prec, batches, args, tmp)
            report.setdefault("vit_bench_raw", {})[prec] = {k: v for k, v in vb.items() if k != "json"}
            if "json" in vb:
                report["vit_bench_raw"][prec]["json"] = vb["json"]
                for b, row in vit_bench_rows(vb).items():
                    per["vit_infer"][str(b)] = row
            else:
                log(f"vit-bench {prec}: {vb.get('error')}")
            save()

            import copy

            tm = copy.deepcopy(base).to(device=device, dtype=dt).eval()
            hm = copy.deepcopy(hf_base).to(device=device, dtype=dt).eval() if hf_base is not None else None
            with torch.inference_mode():
                acc = report["accuracy"].setdefault(prec, {})
                acc["timm_eager"] = ((tm(x_ref.to(device, dt)).float().cpu() - ref).norm() / ref.norm()).item()
                if hm is not None:
                    acc["hf_sdpa"] = ((hf_logits(hm(pixel_values=x_ref.to(device, dt))).float().cpu() - ref).norm()
                                      / ref.norm()).item()
                for b in batches:
                    log(f"{prec} batch {b}: timm eager")
                    per["timm_eager"][str(b)] = bench_engine(torch, np, tm, dt, b, device, args, timer, l2)
                    save()
                    if hm is not None:
                        log(f"{prec} batch {b}: HF sdpa")
                        per["hf_sdpa"][str(b)] = bench_engine(
                            torch, np, lambda x: hf_logits(hm(pixel_values=x)), dt, b, device, args, timer, l2)
                        save()
            if not args.no_compile:
                import torch._dynamo as dynamo

                for key in ("cache_size_limit", "recompile_limit"):
                    if hasattr(dynamo.config, key):
                        setattr(dynamo.config, key, 64)
                dynamo.reset()
                cm = torch.compile(tm, mode=args.compile_mode, dynamic=False)
                last_compile = 0.0
                for b in [bb for (pp, bb) in compile_order if pp == prec]:
                    # Predictive: the next compile is taken to cost what the last one did, so a
                    # compile that would run past the budget (and the step's cap) is not started.
                    if compile_spent + last_compile > args.compile_budget_s:
                        per["timm_compile"][str(b)] = {"skipped": "compile budget"}
                        report["notes"].append(f"timm_compile {prec} b{b}: skipped, compile budget "
                                               f"{args.compile_budget_s:.0f} s spent")
                        continue
                    log(f"{prec} batch {b}: timm + torch.compile (max-autotune), compiling...")
                    try:
                        with torch.inference_mode():
                            x0 = torch.rand(b, 3, 224, 224, device=device).to(dt)
                            t0 = time.perf_counter()
                            for _ in range(3):  # compile, then cudagraph warm-up/record
                                torch.compiler.cudagraph_mark_step_begin()
                                cm(x0)
                            torch.cuda.synchronize()
                            spent = time.perf_counter() - t0
                            compile_spent += spent
                            last_compile = spent
                            report["compile_s"][f"{prec}/b{b}"] = spent
                            per["timm_compile"][str(b)] = bench_engine(torch, np, cm, dt, b, device, args, timer, l2,
                                                                       compiled=True)
                            if b == batches[0]:
                                acc["timm_compile"] = ((cm(x_ref.to(device, dt)[:b]).float().cpu() - ref[:b]).norm()
                                                       / ref[:b].norm()).item() if b <= 4 else None
                    except Exception as e:  # noqa: BLE001
                        per["timm_compile"][str(b)] = {"skipped": f"error: {type(e).__name__}"}
                        report["notes"].append(f"timm_compile {prec} b{b}: {e!r}"[:2000])
                        log(f"compile failed: {e!r}"[:500])
                    save()
                del cm
            del tm, hm
            if cuda:
                torch.cuda.empty_cache()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    report["complete"] = True
    save()
    md = markdown(report)
    if plot(report, out_dir / f"{stem}.png"):
        log(f"plot: {out_dir / (stem + '.png')}")
    print(md)
    log(f"wrote {out_dir / (stem + '.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
