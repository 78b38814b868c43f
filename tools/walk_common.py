r"""What the framework walks share (tools/timm_registry_walk.py, tools/hf_walk.py): the error measure,
one `vit-infer classify` run with its outputs read back, a refusal's line, the run's metadata, the
command line every walk takes, and the report (a markdown table with the totals, and the same rows
as JSON).
"""

import argparse
import json
import platform
import subprocess
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def rel_err(ours, ref):
    """max |ours - ref| / max |ref| (inf when the shapes differ)."""
    if ours.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(ours.astype(np.float64) - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


def first_error(text):
    """The first line that says what failed (vit-infer prints progress and warnings too), else the
    last line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        low = ln.lower()
        if "error" in low or "unsupported" in low or "not supported" in low:
            return ln
    return lines[-1] if lines else ""


def classify(vit, model_dir, inputs, d: Path, tag, want_logits, timeout=900):
    """`vit-infer classify` (CPU fp32, 2 threads) on `inputs` -> (embeddings, logits | None, the
    completed process); (None, None, process) when it exits non-zero. TimeoutExpired propagates."""
    emb, lg = d / f"{tag}_emb.npy", d / f"{tag}_logits.npy"
    cmd = [vit, "classify", "-m", str(model_dir), *map(str, inputs), "--embeddings-out", str(emb), "--json",
           "--no-progress", "-t", "2"]
    if want_logits:
        cmd += ["--logits-out", str(lg)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        return None, None, r
    return np.load(emb), (np.load(lg) if want_logits else None), r


def fmt_err(v):
    return "" if v is None else f"{v:.1e}"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def run_meta(**versions):
    """The date, vit-infer's commit, the CPU and the given library versions."""
    import time
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {"when": time.strftime("%Y-%m-%d"), "commit": commit, "cpu": cpu_name(), **versions}


def walk_args(description, out, json_path, seed):
    """The arguments every walk takes (a walk adds its own to the parser it gets)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--vit", default=str(REPO / "build" / "vit-infer"))
    ap.add_argument("--filter", default="", help="regex over the walked names")
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--out", default=str(REPO / "docs" / out))
    ap.add_argument("--json", default=str(REPO / "benchmarks" / "results" / json_path))
    ap.add_argument("--keep", default="", help="keep the models under this directory")
    return ap


def write_report(rows, meta, out, json_path, title, intro, columns, cells):
    """docs table: `title`, `intro`, the totals per result, then one row per entry (`cells(row)` ->
    the strings of `columns`, '|' escaped here); and {"meta", "rows"} as JSON."""
    counts = {}
    for r in rows:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    lines = [f"# {title}", "", intro, "",
             "Totals: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" (of {len(rows)}).", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells(r)) + " |")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines) + "\n")
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
