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
drift on a shared machine hits all of them alike; each round starts one engine later than the last),
each round warms up and times --runs forwards per batch; the table shows the median over all rounds
and runs with the min..max spread and the spread of the per-round medians.
vit-cpu-bench also measures the vector-unit ceilings (AVX-512 fp32 FMA, AVX512-BF16 dot product,
AVX512-VNNI / AVX2 u8 x s8; AMX when the CPU exposes it) and the GEMM candidates at the ViT-B shapes.
Writes <out-dir>/peers-cpu-<date>.json, .md and .png (matplotlib, when the venv has it).

The work is in steps, so that the timed ones fit a short quiet window (/work/bin/quiet-run, which
freezes every other process and caps a call at 240 s on the shared machine):

    python3 benchmarks/peers_cpu.py --setup                       # makes .venv-peers-cpu (PyPI) once
    python3 benchmarks/peers_cpu.py --prepare D                   # weights, calibrations, NNCF / ORT INT8 models
    quiet-run python3 benchmarks/peers_cpu.py --ceiling-step D    # vit-cpu-bench --ceiling --gemm
    quiet-run python3 benchmarks/peers_cpu.py --round D           # one interleaved round (repeat)
    python3 benchmarks/peers_cpu.py --report D --note "..."       # JSON / .md / .png from D's rounds

Without a step option it does all of them in one process (--rounds rounds), as before.
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
    p.add_argument("--tag", default="", help="suffix of the report's file names (peers-cpu-<date>-<tag>)")
    p.add_argument("--replot", default=None, metavar="JSON", help="rewrite the .md / .png of an earlier run's JSON")
    p.add_argument("--prepare", default=None, metavar="DIR", help="write the weights, calibrations and the peers' "
                   "converted / quantised models into DIR, then exit")
    p.add_argument("--ceiling-step", default=None, metavar="DIR", help="measure the ceilings and GEMMs into DIR")
    p.add_argument("--round", default=None, metavar="DIR", help="run one interleaved round of --engines on DIR's "
                   "models, appending to DIR/rounds.jsonl")
    p.add_argument("--report", default=None, metavar="DIR", help="write the report of DIR's rounds")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one peer engine
    p.add_argument("--weights", default=None, help=argparse.SUPPRESS)
    p.add_argument("--calib", default=None, help=argparse.SUPPRESS)  # internal: the calibration images (.npy)
    p.add_argument("--dir", default=None, help=argparse.SUPPRESS)  # internal: the prepared models
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


def prepare_peer(eng: str, d: Path, seed: int, threads: int) -> None:
    """Converts / quantises the model for a peer once, into d (in the venv: torch, OpenVINO, NNCF, ORT)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    model = make_timm(seed, str(d / "model.safetensors"))
    x = torch.from_numpy(np.load(d / "calib.npy")[:1])
    calib = np.load(d / "calib.npy")
    if eng in ("ov-fp32", "ov-int8"):
        import openvino as ov

        om = ov.convert_model(model, example_input=x)
        if eng == "ov-fp32":
            ov.save_model(om, str(d / "ov" / "vit.xml"), compress_to_fp16=False)
        else:
            import nncf

            qm = nncf.quantize(om, nncf.Dataset([calib[i:i + 1] for i in range(len(calib))]),
                               model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calib))
            ov.save_model(qm, str(d / "ov" / "vit-int8.xml"), compress_to_fp16=False)
    elif eng in ("ort-fp32", "ort-int8"):
        onnx_export(model, calib[:1], d / "vit.onnx")
        if eng == "ort-int8":
            from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

            class Reader(CalibrationDataReader):
                def __init__(self):
                    self.it = iter([{"x": calib[i:i + 1]} for i in range(len(calib))])

                def get_next(self):
                    return next(self.it, None)

            # Without VNNI, 7-bit weights (reduce_range), as ORT advises for u8 x s8 on AVX2 / AVX-512.
            quantize_static(str(d / "vit.onnx"), str(d / "vit-int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            reduce_range=not has_vnni())
    else:
        raise SystemExit(f"nothing to prepare for {eng}")


def has_vnni() -> bool:
    flags = open("/proc/cpuinfo").read()
    return "avx512_vnni" in flags or "avx_vnni" in flags


def ov_runtime_info(compiled) -> dict:
    """What the OpenVINO CPU plugin really runs (read after the forwards: the primitive types are
    known once executed): its inference precision and the heavy layers per execution precision and
    primitive (e.g. FullyConnected u8 on an INT8 model; bf16 falls back to f32 without bf16
    instructions)."""
    kinds = {}
    for op in compiled.get_runtime_model().get_ops():
        rt = op.get_rt_info()
        lt = rt["layerType"].astype(str)
        if lt in ("FullyConnected", "MatMul", "Convolution", "ScaledDotProductAttention"):
            key = f"{lt}:{rt['runtimePrecision'].astype(str)}:{rt['primitiveType'].astype(str)}"
            kinds[key] = kinds.get(key, 0) + 1
    return {"inference_precision": str(compiled.get_property("INFERENCE_PRECISION_HINT")), "runtime_layers": kinds}


def worker(args) -> None:
    """One engine in its own process on the prepared models of --dir: warm-up and timed forwards per batch."""
    import resource

    import numpy as np

    d = Path(args.dir)
    batches = [int(b) for b in args.batches.split(",")]
    rng = np.random.default_rng(1)
    inputs = {b: (rng.random((b, 3, 224, 224), dtype=np.float32) * 4 - 2) for b in batches}
    eng = args.worker
    info = {}
    info_after = None  # what the runtime reports once it has run (OpenVINO)
    if eng.startswith("torch-"):
        import torch

        torch.set_num_threads(args.threads)
        model = make_timm(args.seed, str(d / "model.safetensors"))
        info["torch"] = torch.__version__
        if eng == "torch-fp32":
            def run(x):
                with torch.inference_mode():
                    return model(torch.from_numpy(x)).numpy()
        else:
            def run(x):
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                    return model(torch.from_numpy(x)).float().numpy()
    elif eng in ("ort-fp32", "ort-int8"):
        import onnxruntime

        sess = ort_session(d / ("vit.onnx" if eng == "ort-fp32" else "vit-int8.onnx"), args.threads)
        info["onnxruntime"] = onnxruntime.__version__

        def run(x):
            return sess.run(None, {"x": x})[0]
    elif eng in ("ov-fp32", "ov-bf16", "ov-int8"):
        import openvino as ov

        core = ov.Core()
        cfg = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY"}
        if eng != "ov-int8":
            cfg["INFERENCE_PRECISION_HINT"] = "bf16" if eng == "ov-bf16" else "f32"
        compiled = core.compile_model(core.read_model(str(d / "ov" / ("vit-int8.xml" if eng == "ov-int8" else "vit.xml"))),
                                      "CPU", cfg)
        info["openvino"] = ov.__version__

        def info_after():
            return ov_runtime_info(compiled)

        def run(x):
            return compiled(x)[0]
    else:
        raise SystemExit(f"unknown engine {eng}")
    out = {"engine": eng, "ms": {}, "info": info}
    for b in batches:
        for _ in range(args.warmup):
            run(inputs[b])
        t = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            run(inputs[b])
            t.append((time.perf_counter() - t0) * 1000)
        out["ms"][str(b)] = t
    if info_after:
        info.update(info_after())
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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
    j = json.loads(Path(out).read_text())
    os.unlink(out)
    return j


def run_peer(args, eng: str, d: Path) -> dict:
    cmd = [str(venv_python()), __file__, "--worker", eng, "--dir", str(d), "--batches", args.batches,
           "--runs", str(args.runs), "--warmup", str(args.warmup), "--threads", str(args.threads),
           "--seed", str(args.seed)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{eng} worker failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def summarise(samples: list[float], batch: int, gflop: float, round_medians: list[float]) -> dict:
    med = statistics.median(samples)
    return {"median_ms": med, "min_ms": min(samples), "max_ms": max(samples), "n": len(samples),
            "round_medians_ms": round_medians,
            "round_spread": max(round_medians) / min(round_medians) if round_medians else None,
            "img_s": 1000 * batch / med, "gflop_s": gflop * batch / (med / 1000)}


def machine_info() -> dict:
    git = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    info = {"git_hash": git + ("-dirty" if dirty else ""), "cpu": platform.processor() or platform.machine(),
            "nproc": os.cpu_count()}
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
        flags = next(line for line in lines if line.startswith("flags")).split()
        info["cpu_flags"] = sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma", "avx_vnni")))
        info["cpu_model"] = next(line for line in lines if line.startswith("model name")).split(":")[1].strip()
        fam = next(line for line in lines if line.startswith("cpu family")).split(":")[1].strip()
        mod = next(line for line in lines if line.startswith("model\t")).split(":")[1].strip()
        info["cpu_family_model"] = f"family {fam} model {mod}"
    except (OSError, StopIteration):
        pass
    return info


def prepare(args, d: Path, engines: list[str]) -> None:
    """The random timm weights every engine runs, the int8 engines' calibration images (the inputs'
    distribution, another seed), ours calibrated next to the weights (where vit-cpu-bench's int8
    engine finds it), and each peer's converted / quantised model."""
    (d / "ov").mkdir(parents=True, exist_ok=True)
    weights = d / "model.safetensors"
    subprocess.check_call([str(venv_python()), "-c",
                           "import sys; sys.path.insert(0, %r); import peers_cpu as p, torch;"
                           "from safetensors.torch import save_file;"
                           "m = p.make_timm(%d, None);"
                           "save_file({k: v.contiguous() for k, v in m.state_dict().items()}, %r)"
                           % (str(Path(__file__).parent), args.seed, str(weights))])
    subprocess.check_call([str(venv_python()), "-c",
                           "import numpy as np; r = np.random.default_rng(2);"
                           "np.save(%r, (r.random((%d, 3, 224, 224), dtype=np.float32) * 4 - 2))"
                           % (str(d / "calib.npy"), args.calib_images)])
    if "vit-infer-int8" in engines:
        cli = args.cli or str(Path(args.cpu_bench).resolve().parent.parent / "vit-infer")
        log("vit-infer calibrate")
        subprocess.check_call([cli, "calibrate", "--model", str(weights), "--arch", ARCH, "--images",
                               str(d / "calib.npy"), "--out", str(d / "int8_calibration.json"), "-t",
                               str(args.threads), "--no-progress"], stdout=subprocess.DEVNULL)
    todo = []
    if any(e in engines for e in ("ov-fp32", "ov-bf16")):
        todo.append("ov-fp32")
    todo += [e for e in ("ov-int8", "ort-int8") if e in engines]
    if "ort-fp32" in engines and "ort-int8" not in engines:
        todo.append("ort-fp32")
    for e in todo:
        log(f"preparing {e}")
        subprocess.check_call([str(venv_python()), __file__, "--worker", "prepare:" + e, "--dir", str(d),
                               "--seed", str(args.seed), "--threads", str(args.threads)])
    (d / "prepared.json").write_text(json.dumps({"engines": engines, "calib_images": args.calib_images,
                                                 "seed": args.seed, **machine_info()}) + "\n")


def ceiling_step(args, d: Path) -> None:
    mkl = next(iter(sorted((VENV / "lib").glob("libmkl_rt.so*"))), None)
    extra = ["--ceiling", "--gemm", "--no-engines"] + (["--mkl", str(mkl)] if mkl else [])
    cj = run_ours(args, ["fp32"], d / "model.safetensors", extra)
    cj["loadavg"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    (d / "ceiling.json").write_text(json.dumps(cj) + "\n")


def one_round(args, d: Path, engines: list[str]) -> None:
    """Every engine once (ours in one vit-cpu-bench process), starting one engine later than the last
    round did, appended to d/rounds.jsonl."""
    rounds = d / "rounds.jsonl"
    k = len(rounds.read_text().splitlines()) if rounds.exists() else 0
    ours = [e for e in engines if e in OURS]
    units = (["ours"] if ours else []) + [e for e in engines if e in PEERS]
    units = units[k % len(units):] + units[:k % len(units)]
    rec = {"round": k, "order": units, "loadavg": " ".join(f"{v:.2f}" for v in os.getloadavg()),
           "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "ms": {}, "info": {},
           "errors": {}}
    for u in units:
        log(f"round {k}: {u}")
        if u == "ours":
            j = run_ours(args, [e.split("-")[-1] for e in ours], d / "model.safetensors")
            rec["gflop_per_image"] = j["gflop_per_image"]
            for row in j["engines"]:
                e = "vit-infer-" + row["engine"]
                rec["ms"].setdefault(e, {})[str(row["batch"])] = row["ms"]["all"]
                rec["info"][e] = {"name": row["name"], "rss_create_mib": row["rss_create_mib"],
                                  "rss_first_runs_mib": row["rss_first_runs_mib"]}
            continue
        try:
            j = run_peer(args, u, d)
            rec["ms"][u] = j["ms"]
            rec["info"][u] = dict(j.get("info", {}), peak_rss_mib=j.get("peak_rss_mib"))
        except Exception as ex:  # noqa: BLE001
            log(f"{u}: {ex}")
            rec["errors"][u] = str(ex)[-500:]
    with rounds.open("a") as f:
        f.write(json.dumps(rec) + "\n")


def report_of(args, d: Path) -> dict:
    prep = json.loads((d / "prepared.json").read_text())
    recs = [json.loads(line) for line in (d / "rounds.jsonl").read_text().splitlines() if line.strip()]
    engines = [e for e in args.engines.split(",") if e]
    batches = [int(b) for b in args.batches.split(",")]
    report = {"tool": "peers_cpu.py", "date_utc": recs[0]["date_utc"] if recs else None, "note": args.note,
              "args": vars(args), **machine_info(), "prepared": prep,
              "loadavg": recs[0]["loadavg"] if recs else None, "loadavg_end": recs[-1]["loadavg"] if recs else None,
              "rounds": len(recs), "round_orders": [r["order"] for r in recs]}
    if (d / "ceiling.json").exists():
        cj = json.loads((d / "ceiling.json").read_text())
        report["ceiling"], report["gemm"], report["isa"] = cj.get("ceiling"), cj.get("gemm"), cj.get("isa")
    gflop = next((r["gflop_per_image"] for r in recs if "gflop_per_image" in r), 35.1)
    report["gflop_per_image"] = gflop
    results, samples, info = {}, {}, {}
    for e in engines:
        for b in batches:
            per_round = [r["ms"][e][str(b)] for r in recs if str(b) in r["ms"].get(e, {})]
            flat = [v for pr in per_round for v in pr]
            samples.setdefault(e, {})[str(b)] = flat
            if flat:
                results.setdefault(e, {})[str(b)] = summarise(flat, b, gflop, [statistics.median(pr) for pr in per_round])
        for r in recs:
            if e in r["info"]:
                info[e] = r["info"][e]
            if e in r["errors"]:
                report.setdefault("errors", {})[e] = r["errors"][e]
    report["results"], report["samples_ms"], report["engine_info"] = results, samples, info
    report["vit_infer_names"] = {e: v["name"] for e, v in info.items() if "name" in v}
    report["vit_infer_rss_mib"] = {e: v["rss_create_mib"] for e, v in info.items() if "rss_create_mib" in v}
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.setup:
        setup()
        return 0
    if args.worker:
        if args.worker.startswith("prepare:"):
            prepare_peer(args.worker.split(":", 1)[1], Path(args.dir), args.seed, args.threads)
        else:
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
    unknown = [e for e in engines if e not in OURS + PEERS]
    if unknown:
        log(f"unknown engines {unknown}: known {OURS + PEERS}")
        return 2
    batches = [int(b) for b in args.batches.split(",")]
    if args.prepare:
        prepare(args, Path(args.prepare), engines)
        return 0
    if args.ceiling_step:
        ceiling_step(args, Path(args.ceiling_step))
        return 0
    if args.round:
        one_round(args, Path(args.round), engines)
        return 0
    if args.report:
        write_outputs(args, report_of(args, Path(args.report)), engines, batches)
        return 0
    d = Path(tempfile.mkdtemp(prefix="peers-cpu-"))
    prepare(args, d, engines)
    log("ceilings and GEMM candidates")
    ceiling_step(args, d)
    for r in range(args.rounds):
        log(f"round {r + 1}/{args.rounds}")
        one_round(args, d, engines)
    write_outputs(args, report_of(args, d), engines, batches)
    return 0


def write_outputs(args, report, engines, batches) -> None:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (f"peers-cpu-{report['date_utc'][:10]}" + (f"-{args.tag}" if getattr(args, "tag", "") else ""))
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
             f"Median of {report.get('rounds', args.rounds)} interleaved rounds x {args.runs} runs; [min .. max] "
             "of every run, then the slowest round's median over the fastest's.", "",
             "| engine | " + " | ".join(f"batch {b} ms" for b in batches) + " | " +
             " | ".join(f"batch {b} img/s" for b in batches) + " | GFLOP/s (largest batch) | % of ceiling | runs as |",
             "|---|" + "---|" * (2 * len(batches) + 3)]
    for e in engines:
        r = report["results"].get(e)
        if not r:
            lines.append(f"| {e} | failed: {report.get('errors', {}).get(e, '?')[:80]} |")
            continue
        ms = " | ".join(f"{r[str(b)]['median_ms']:.1f} [{r[str(b)]['min_ms']:.0f}..{r[str(b)]['max_ms']:.0f}]"
                        + (f" x{r[str(b)]['round_spread']:.2f}" if r[str(b)].get("round_spread") else "")
                        if str(b) in r else "-" for b in batches)
        ips = " | ".join(f"{r[str(b)]['img_s']:.2f}" if str(b) in r else "-" for b in batches)
        g = r[str(batches[-1])]["gflop_s"] if str(batches[-1]) in r else float("nan")
        peak8 = ceil.get("avx512_vnni_u8s8_gop_s") or ceil.get("avx2_u8s8_gop_s")
        ceiling = (peak8 if "int8" in e else peak16 if "bf16" in e and peak16 else peak32) or ceil.get("avx2_fp32_fma_gflop_s")
        frac = f"{100 * g / ceiling:.0f}%" if ceiling else "-"
        inf = report.get("engine_info", {}).get(e, {})
        runs_as = inf.get("name") or ", ".join(
            x for x in [inf.get("inference_precision") and f"precision {inf['inference_precision']}",
                        inf.get("runtime_layers") and " ".join(f"{k} x{v}" for k, v in sorted(inf["runtime_layers"].items()))]
            if x)
        lines.append(f"| {e} | {ms} | {ips} | {g:.0f} | {frac} | {runs_as} |")
    res = report["results"]
    pairs = [(a, b) for a in ("vit-infer-int8", "vit-infer-bf16", "vit-infer-fp32")
             for b in ("ov-int8", "ov-bf16", "ov-fp32", "ort-int8") if a in res and b in res]
    if pairs:
        lines += ["", "Ratios of the medians (ours / peer): throughput at each batch (img/s, > 1 is faster), "
                  "and latency at batch 1 (ms, < 1 is faster):", "",
                  "| ours | peer | " + " | ".join(f"batch {b} img/s ratio" for b in batches) + " | batch 1 latency ratio |",
                  "|---|---|" + "---|" * (len(batches) + 1)]
        for a, b in pairs:
            t = " | ".join(f"{res[a][str(x)]['img_s'] / res[b][str(x)]['img_s']:.2f}x"
                           if str(x) in res[a] and str(x) in res[b] else "-" for x in batches)
            lat = (f"{res[a]['1']['median_ms'] / res[b]['1']['median_ms']:.2f}x" if "1" in res[a] and "1" in res[b] else "-")
            lines.append(f"| {a} | {b} | {t} | {lat} |")
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
        png = " / .png"
    except Exception as ex:  # noqa: BLE001
        log(f"no plot: {ex}")
        png = ""
    log(f"wrote {stem}.json / .md{png}")


if __name__ == "__main__":
    sys.exit(main())
