#!/usr/bin/env python3
"""vit-infer CPU peer comparison: ViT-B/16 at 224 on this machine's CPU, in one run, with the same
random timm weights and the same thread count, across

  vit-infer reference   OpenBLAS fp32 (the tests' oracle)         vit-cpu-bench --engines reference
  vit-infer fp32        oneDNN fp32 + flash attention (default)   vit-cpu-bench --engines fp32
  vit-infer bf16        oneDNN bf16 (AMX / AVX512-BF16)           vit-cpu-bench --engines bf16
  vit-infer int8        W8A8 GEMMs (oneDNN int8), calibrated      vit-cpu-bench --engines int8
  PyTorch eager fp32    timm model, torch.inference_mode
  PyTorch eager bf16    the same under torch.autocast("cpu", bfloat16) (oneDNN, AMX where present)
  ONNX Runtime fp32     torch.onnx.export of the same model, CPU EP, spinning off
  OpenVINO fp32 / bf16  ov.convert_model of the same model, INFERENCE_PRECISION_HINT f32 / bf16
  OpenVINO INT8         nncf.quantize(ModelType.TRANSFORMER) of that model, the same calibration images
  ONNX Runtime INT8     quantize_static (QDQ, u8 activations, s8 per-channel weights), the same images

The int8 engines all calibrate on the same --calib-images synthetic images (ours: `vit-infer
calibrate`, the file next to the weights, where vit-cpu-bench's int8 engine finds it).

Batches 1 / 8 / 32. Every engine runs in its own worker process (so that no runtime's idle
threads spin beside another's); --rounds rounds visit every engine in turn (interleaved, so load
drift on a shared machine hits all of them alike), each round warms up and times --runs forwards
per batch; the table shows the median over all rounds and runs with the min..max spread.
vit-cpu-bench also measures, in the same run, the vector-unit ceilings (AVX-512 fp32 FMA,
AVX512-BF16 dot product; AMX when the CPU exposes it) and the GEMM candidates at the ViT-B shapes.
Writes <out-dir>/peers-cpu-<date>.json, .md and .png (matplotlib).

    python3 benchmarks/peers_cpu.py --setup          # makes .venv-peers-cpu (PyPI) once
    python3 benchmarks/peers_cpu.py --cpu-bench build/benchmarks/vit-cpu-bench
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARCH = "vit_base_patch16_224"
ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("VIT_PEERS_VENV", str(ROOT / ".venv-peers-cpu")))  # any venv with PIP's packages
PEERS = ["torch-fp32", "torch-bf16", "ort-fp32", "ort-int8", "ov-fp32", "ov-bf16", "ov-int8"]
OURS = ["vit-infer-reference", "vit-infer-fp32", "vit-infer-bf16", "vit-infer-int8"]
PIP = ["torch", "torchvision", "timm", "safetensors", "onnx", "onnxruntime", "openvino", "nncf", "matplotlib", "mkl"]


def log(msg: str) -> None:
    print(f"[peers-cpu] {msg}", file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setup", action="store_true", help="create the venv and pip install the peers, then exit")
    p.add_argument("--cpu-bench", default=str(ROOT / "build/benchmarks/vit-cpu-bench"))
    p.add_argument("--cli", default=None, help="vit-infer (for `calibrate`; default: beside --cpu-bench's build)")
    p.add_argument("--calib-images", type=int, default=32, help="calibration images of the int8 engines")
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--engines", default=",".join(OURS + PEERS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runs", type=int, default=3, help="timed forwards per (engine, batch) per round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", default=str(ROOT / "benchmarks/results"))
    p.add_argument("--note", default="", help="free text stored in the report (e.g. 'shared machine')")
    p.add_argument("--replot", default=None, metavar="JSON", help="rewrite the .md / .png of an earlier run's JSON")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one peer engine
    p.add_argument("--weights", default=None, help=argparse.SUPPRESS)
    p.add_argument("--calib", default=None, help=argparse.SUPPRESS)  # internal: the calibration images (.npy)
    return p.parse_args(argv)


def venv_python() -> Path:
    return VENV / "bin" / "python"


def setup() -> None:
    if not venv_python().exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    subprocess.check_call([str(venv_python()), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    subprocess.check_call([str(venv_python()), "-m", "pip", "install", "-q", *PIP])


# ---- worker: one peer engine in its own process ---------------------------------------------

def make_timm(seed: int, weights: str | None):
    import timm
    import torch

    torch.manual_seed(seed)
    m = timm.create_model(ARCH, pretrained=False).eval()
    if weights:
        from safetensors.torch import load_file

        m.load_state_dict(load_file(weights))
    return m


def ort_session(path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def onnx_export(model, x, path) -> None:
    import torch

    torch.onnx.export(model, torch.from_numpy(x), str(path), opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b"}, "y": {0: "b"}}, dynamo=False)


def worker(args) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    model = make_timm(args.seed, args.weights)
    rng = np.random.default_rng(1)
    inputs = {b: (rng.random((b, 3, 224, 224), dtype=np.float32) * 4 - 2) for b in batches}
    eng = args.worker
    tmp = Path(tempfile.mkdtemp(prefix="peers-cpu-"))
    if eng == "torch-fp32":
        def run(x):
            with torch.inference_mode():
                return model(torch.from_numpy(x)).numpy()
    elif eng == "torch-bf16":
        def run(x):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return model(torch.from_numpy(x)).float().numpy()
    elif eng == "ort-fp32":
        path = tmp / "vit.onnx"
        onnx_export(model, inputs[batches[0]], path)
        sess = ort_session(path, args.threads)

        def run(x):
            return sess.run(None, {"x": x})[0]
    elif eng in ("ov-fp32", "ov-bf16"):
        import openvino as ov

        core = ov.Core()
        om = ov.convert_model(model, example_input=torch.from_numpy(inputs[batches[0]]))
        cfg = {"INFERENCE_PRECISION_HINT": "bf16" if eng == "ov-bf16" else "f32",
               "INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
        compiled = core.compile_model(om, "CPU", cfg)

        def run(x):
            return compiled(x)[0]
    elif eng == "ov-int8":
        import nncf
        import openvino as ov

        calib = np.load(args.calib)
        om = ov.convert_model(model, example_input=torch.from_numpy(inputs[batches[0]]))
        qm = nncf.quantize(om, nncf.Dataset([calib[i:i + 1] for i in range(len(calib))]),
                           model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calib))
        compiled = ov.Core().compile_model(qm, "CPU", {"INFERENCE_NUM_THREADS": args.threads,
                                                       "PERFORMANCE_HINT": "LATENCY"})

        def run(x):
            return compiled(x)[0]
    elif eng == "ort-int8":
        from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                              quantize_static)

        calib = np.load(args.calib)
        fp32, int8 = tmp / "vit.onnx", tmp / "vit-int8.onnx"
        onnx_export(model, inputs[batches[0]], fp32)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter([{"x": calib[i:i + 1]} for i in range(len(calib))])

            def get_next(self):
                return next(self.it, None)

        # Without VNNI, 7-bit weights (reduce_range), as ORT advises for u8 x s8 on AVX2 / AVX-512.
        vnni = "avx512_vnni" in open("/proc/cpuinfo").read()
        quantize_static(str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=not vnni)
        sess = ort_session(int8, args.threads)

        def run(x):
            return sess.run(None, {"x": x})[0]
    else:
        raise SystemExit(f"unknown engine {eng}")
    out = {"engine": eng, "ms": {}}
    for b in batches:
        for _ in range(args.warmup):
            run(inputs[b])
        t = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            run(inputs[b])
            t.append((time.perf_counter() - t0) * 1000)
        out["ms"][str(b)] = t
    print(json.dumps(out))


# ---- driver ---------------------------------------------------------------------------------

def run_ours(args, keys, weights: Path, extra=()) -> dict:
    cmd = [args.cpu_bench, "--model", str(weights), "--arch", ARCH, "--engines", ",".join(keys),
           "--batches", args.batches, "--runs", str(args.runs), "--warmup", str(args.warmup),
           "-t", str(args.threads), *extra]
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    # MKL (only with --mkl) on the GNU OpenMP runtime the process already runs, found in the venv.
    env = dict(os.environ, MKL_THREADING_LAYER="GNU",
               LD_LIBRARY_PATH=f"{VENV / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    subprocess.check_call(cmd + ["--json", out], stdout=subprocess.DEVNULL, env=env)
    return json.loads(Path(out).read_text())


def run_peer(args, eng: str, weights: Path) -> dict:
    cmd = [str(venv_python()), __file__, "--worker", eng, "--weights", str(weights), "--batches", args.batches,
           "--calib", str(weights.parent / "calib.npy"),
           "--runs", str(args.runs), "--warmup", str(args.warmup), "--threads", str(args.threads),
           "--seed", str(args.seed)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{eng} worker failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def summarise(samples: list[float], batch: int, gflop: float) -> dict:
    med = statistics.median(samples)
    return {"median_ms": med, "min_ms": min(samples), "max_ms": max(samples), "n": len(samples),
            "img_s": 1000 * batch / med, "gflop_s": gflop * batch / (med / 1000)}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.setup:
        setup()
        return 0
    if args.worker:
        worker(args)
        return 0
    if not venv_python().exists():
        log(f"no venv at {VENV}: run with --setup first")
        return 1
    if Path(sys.prefix).resolve() != VENV.resolve():  # the driver too runs in the venv (matplotlib)
        os.execv(str(venv_python()), [str(venv_python()), __file__, *(sys.argv[1:] if argv is None else argv)])
    if args.replot:
        report = json.loads(Path(args.replot).read_text())
        old = report["args"]
        args.out_dir, args.threads, args.rounds, args.runs = str(Path(args.replot).parent), old["threads"], old["rounds"], old["runs"]
        write_outputs(args, report, [e for e in old["engines"].split(",") if e], [int(b) for b in old["batches"].split(",")])
        return 0
    engines = [e for e in args.engines.split(",") if e]
    ours = [e for e in engines if e in OURS]
    peers = [e for e in engines if e in PEERS]
    batches = [int(b) for b in args.batches.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="peers-cpu-"))
    weights = tmp / "model.safetensors"
    # The random timm weights every engine runs, written once.
    subprocess.check_call([str(venv_python()), "-c",
                           "import sys; sys.path.insert(0, %r); import peers_cpu as p, torch;"
                           "from safetensors.torch import save_file;"
                           "m = p.make_timm(%d, None);"
                           "save_file({k: v.contiguous() for k, v in m.state_dict().items()}, %r)"
                           % (str(Path(__file__).parent), args.seed, str(weights))])
    # The int8 engines' calibration images (the inputs' distribution, another seed), and ours made
    # from them next to the weights (vit-cpu-bench's int8 engine finds it there).
    subprocess.check_call([str(venv_python()), "-c",
                           "import numpy as np; r = np.random.default_rng(2);"
                           "np.save(%r, (r.random((%d, 3, 224, 224), dtype=np.float32) * 4 - 2))"
                           % (str(tmp / "calib.npy"), args.calib_images)])
    if "vit-infer-int8" in ours:
        cli = args.cli or str(Path(args.cpu_bench).resolve().parent.parent / "vit-infer")
        subprocess.check_call([cli, "calibrate", "--model", str(weights), "--arch", ARCH, "--images",
                               str(tmp / "calib.npy"), "--out", str(tmp / "int8_calibration.json"), "-t",
                               str(args.threads), "--no-progress"], stdout=subprocess.DEVNULL)
    git = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    report = {"tool": "peers_cpu.py", "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "git_hash": git + ("-dirty" if dirty else ""), "note": args.note, "args": vars(args),
              "cpu": platform.processor() or platform.machine(), "nproc": os.cpu_count(),
              "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg())}
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
        report["cpu_flags"] = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma")))
        report["cpu_model"] = next(line for line in open("/proc/cpuinfo") if line.startswith("model name")).split(":")[1].strip()
    except (OSError, StopIteration):
        pass
    log("ceilings and GEMM candidates")
    mkl = next(iter(sorted((VENV / "lib").glob("libmkl_rt.so*"))), None)
    extra = ["--ceiling", "--gemm", "--no-engines"] + (["--mkl", str(mkl)] if mkl else [])
    cj = run_ours(args, ["fp32"], weights, extra)
    report["ceiling"], report["gemm"], report["isa"] = cj.get("ceiling"), cj.get("gemm"), cj.get("isa")
    samples = {e: {b: [] for b in batches} for e in engines}
    gflop = None
    for r in range(args.rounds):
        log(f"round {r + 1}/{args.rounds}")
        if ours:
            j = run_ours(args, [e.split("-")[-1] for e in ours], weights)
            gflop = j["gflop_per_image"]
            for row in j["engines"]:
                samples["vit-infer-" + row["engine"]][row["batch"]] += row["ms"]["all"]
                report.setdefault("vit_infer_names", {})["vit-infer-" + row["engine"]] = row["name"]
                report.setdefault("vit_infer_rss_mib", {})["vit-infer-" + row["engine"]] = row["rss_create_mib"]
        for e in peers:
            try:
                j = run_peer(args, e, weights)
                for b in batches:
                    samples[e][b] += j["ms"][str(b)]
            except Exception as ex:  # noqa: BLE001
                log(f"{e}: {ex}")
                report.setdefault("errors", {})[e] = str(ex)[-500:]
    gflop = gflop or 35.1
    report["gflop_per_image"] = gflop
    report["results"] = {e: {str(b): summarise(s, b, gflop) for b, s in v.items() if s} for e, v in samples.items()}
    report["samples_ms"] = {e: {str(b): s for b, s in v.items()} for e, v in samples.items()}
    report["loadavg_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    write_outputs(args, report, engines, batches)
    return 0


def write_outputs(args, report, engines, batches) -> None:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"peers-cpu-{report['date_utc'][:10]}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    ceil = report.get("ceiling") or {}
    peak32 = ceil.get("avx512_fp32_fma_gflop_s")
    peak16 = ceil.get("avx512_bf16_dp_gflop_s")
    lines = [f"# vit-infer CPU peers: {ARCH}, {args.threads} threads ({report['date_utc']}, commit {report['git_hash']})",
             "", f"CPU: {report.get('cpu_model', '?')}, flags {' '.join(report.get('cpu_flags', []))}. "
             f"{report['note']}", "",
             f"Measured ceilings: AVX-512 fp32 FMA {peak32 and round(peak32)} GFLOP/s, AVX512-BF16 dot product "
             f"{peak16 and round(peak16)} GFLOP/s, AVX512-VNNI u8 x s8 {ceil.get('avx512_vnni_u8s8_gop_s') and round(ceil['avx512_vnni_u8s8_gop_s'])} GOP/s, "
             f"AVX2 fp32 FMA {ceil.get('avx2_fp32_fma_gflop_s') and round(ceil['avx2_fp32_fma_gflop_s'])} GFLOP/s, AVX2 u8 x s8 "
             f"(vpmaddubsw) {ceil.get('avx2_u8s8_gop_s') and round(ceil['avx2_u8s8_gop_s'])} GOP/s "
             f"(all threads; AMX: {'yes' if ceil.get('amx') else 'not exposed'}). Load average at the start: "
             f"{report.get('loadavg', '?')}, at the end: {report.get('loadavg_end', '?')}. "
             f"Median of {args.rounds} interleaved rounds x {args.runs} runs; [min .. max].", "",
             "| engine | " + " | ".join(f"batch {b} ms" for b in batches) + " | " +
             " | ".join(f"batch {b} img/s" for b in batches) + " | GFLOP/s (largest batch) | % of ceiling |",
             "|---|" + "---|" * (2 * len(batches) + 2)]
    for e in engines:
        r = report["results"].get(e)
        if not r:
            lines.append(f"| {e} | failed: {report.get('errors', {}).get(e, '?')[:80]} |")
            continue
        ms = " | ".join(f"{r[str(b)]['median_ms']:.1f} [{r[str(b)]['min_ms']:.0f}..{r[str(b)]['max_ms']:.0f}]"
                        if str(b) in r else "-" for b in batches)
        ips = " | ".join(f"{r[str(b)]['img_s']:.2f}" if str(b) in r else "-" for b in batches)
        g = r[str(batches[-1])]["gflop_s"] if str(batches[-1]) in r else float("nan")
        peak8 = ceil.get("avx512_vnni_u8s8_gop_s") or ceil.get("avx2_u8s8_gop_s")
        ceiling = (peak8 if "int8" in e else peak16 if "bf16" in e and peak16 else peak32) or ceil.get("avx2_fp32_fma_gflop_s")
        frac = f"{100 * g / ceiling:.0f}%" if ceiling else "-"
        lines.append(f"| {e} | {ms} | {ips} | {g:.0f} | {frac} |")
    if report.get("vit_infer_rss_mib"):
        lines += ["", "vit-infer session memory (RSS growth at creation: packed weights, MiB): " +
                  ", ".join(f"{k} {v:.0f}" for k, v in report["vit_infer_rss_mib"].items())]
    if report.get("gemm"):
        lines += ["", "GEMM candidates at the ViT-B shapes (M = 197 x batch), GFLOP/s:", "",
                  "| GEMM | M | impl | ms | GFLOP/s |", "|---|---|---|---|---|"]
        for g in report["gemm"]:
            lines.append(f"| {g['gemm']} {g['N']}x{g['K']} | {g['M']} | {g['impl']} | {g['ms']['median']:.2f} | "
                         f"{g['gflop_s']:.0f} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(batches), figsize=(5 * len(batches), 4.5))
        for ax, b in zip(axes if len(batches) > 1 else [axes], batches):
            names = [e for e in engines if str(b) in report["results"].get(e, {})]
            vals = [report["results"][e][str(b)]["img_s"] for e in names]
            errs = [[v - 1000 * b / report["results"][e][str(b)]["max_ms"] for e, v in zip(names, vals)],
                    [1000 * b / report["results"][e][str(b)]["min_ms"] - v for e, v in zip(names, vals)]]
            ax.barh(names, vals, xerr=errs, color=["tab:blue" if e.startswith("vit") else "tab:gray" for e in names])
            ax.set_title(f"batch {b}: images / s (higher is better)")
            ax.invert_yaxis()
        fig.suptitle(f"{ARCH} on {report.get('cpu_model', 'CPU')}, {args.threads} threads, commit {report['git_hash']}")
        fig.tight_layout()
        fig.savefig(stem.with_suffix(".png"), dpi=90)
    except Exception as ex:  # noqa: BLE001
        log(f"no plot: {ex}")
    log(f"wrote {stem}.json / .md / .png")


if __name__ == "__main__":
    sys.exit(main())
