#!/usr/bin/env python3
r"""Walks timm's model registry and runs every VisionTransformer-family entry through vit-infer.

For each entry of timm's ViT modules (vision_transformer, vision_transformer_hybrid, deit; the
whole registry of those modules unless --filter narrows it):
  1. builds it with timm's own entrypoint, random weights (pretrained=False), depth cut to
     --depth blocks to keep the run short (every other argument as the entry defines it: width,
     heads, patch, image size, pooling, tokens, norms, activations, heads);
  2. re-randomises every parameter (tools/make_golden.py randomize: no init value can hide a
     skipped op), saves it as timm saves hub checkpoints (save_for_hf: model.safetensors +
     config.json) and reloads it with timm's local-dir loader;
  3. runs one random input at the entry's own image size through timm in float64 and through
     `vit-infer classify` (CPU, fp32, a preprocessed .npy input) and compares logits and pooled
     embeddings: a match is max |ours - timm| <= 1e-4 x max |timm| on both;
  4. or records vit-infer's refusal (its exit status and first error line, which must name the
     feature it does not run).
Writes a markdown table (one row per entry: class, vit-infer's family and features, the result
and the error) and the same as JSON.

Usage (the venv of tools/make_golden.py --setup; a built vit-infer):
  .venv-golden/bin/python tools/timm_registry_walk.py [--vit build/vit-infer] [--filter REGEX]
      [--depth 1] [--out docs/timm_registry.md] [--json benchmarks/results/timm-registry.json]
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_golden as mg  # noqa: E402  (randomize, timm_save, timm_reload, make_input, _np32)
from walk_common import classify, first_error, fmt_err, rel_err, run_meta, walk_args, write_report  # noqa: E402

# Nothing is downloaded (a hybrid's entrypoint may ask the hub for its CNN's weights): fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODULES = ["vision_transformer", "vision_transformer_hybrid", "deit"]
TOL = 1e-4


def timm_reference(model, x, dtype):
    """Logits (None without a classifier) and pooled embeddings of a timm model in `dtype`
    (torch.float64: the reference; torch.float32: timm's own fp32 error, the yardstick): the
    model's own forward and forward_head(pre_logits=True), whatever its family's head."""
    torch = mg.torch
    m = model.to(dtype).eval()
    with torch.no_grad():
        xd = torch.from_numpy(x).to(dtype)
        feats = m.forward_features(xd)
        emb = m.forward_head(feats, pre_logits=True)
        logits = m(xd) if m.num_classes > 0 else None
    return (mg._np32(logits) if logits is not None else None), mg._np32(emb)


def family_of(vit, model_dir):
    """vit-infer info's family line ("CLIP tower (pre-norm (norm_pre), ...)"), or ''."""
    r = subprocess.run([vit, "info", "--json", "-m", str(model_dir)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return ""
    desc = json.loads(r.stdout).get("description", "")
    m = re.search(r"^family\s*:\s*(.*)$", desc, re.M)
    return m.group(1).strip() if m else ""


def walk_one(name, vit, depth, seed, work: Path):
    """One registry entry -> a result row (dict)."""
    torch = mg.torch
    row = {"model": name, "class": "", "family": "", "result": "", "logits_err": None, "emb_err": None,
           "timm_fp32_err": None, "message": "", "seconds": 0.0}
    t0 = time.time()
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    try:
        kw = {"depth": depth} if depth > 0 else {}
        try:
            model = mg.timm.create_model(name, pretrained=False, **kw)
        except TypeError:  # an entrypoint that fixes its depth
            model = mg.timm.create_model(name, pretrained=False)
        row["class"] = type(model).__name__
        mg.randomize(model, seed)
        model.eval()
        mg.timm_save(model, d)
        ref = mg.timm_reload(d)
        cfg = ref.pretrained_cfg or {}
        c, h, w = cfg.get("input_size", (3, 224, 224))
        x = mg.make_input((1, c, h, w), seed + 1)
        logits32, emb32 = timm_reference(ref, x, torch.float32)
        logits, emb = timm_reference(ref, x, torch.float64)
        # timm's own fp32 error against float64: a wide model at depth 1 can reach ~1e-4 by
        # summation order alone, so a match is within max(TOL, 2 x that).
        row["timm_fp32_err"] = max(rel_err(emb32, emb), rel_err(logits32, logits) if logits is not None else 0.0)
        del model, ref
    except Exception as e:  # noqa: BLE001  (timm itself cannot build / save / reload this entry)
        row["result"] = "timm failed"
        row["message"] = f"{type(e).__name__}: {first_error(str(e))}"[:300]
        row["seconds"] = round(time.time() - t0, 1)
        return row
    mg.np.save(d / "input.npy", x)
    try:
        emb_ours, logits_ours, r = classify(vit, d / "model", [d / "input.npy"], d, "ours", logits is not None)
    except subprocess.TimeoutExpired:
        row["result"] = "timeout"
        row["seconds"] = round(time.time() - t0, 1)
        return row
    row["family"] = family_of(vit, d / "model")
    if r.returncode != 0:
        row["result"] = "refused"
        row["message"] = first_error(r.stderr).replace(str(d / "model") + "/", "")[:300]  # no temp paths
    else:
        tol = max(TOL, 2.0 * row["timm_fp32_err"])
        row["emb_err"] = rel_err(emb_ours, emb)
        ok = row["emb_err"] <= tol
        if logits is not None:
            row["logits_err"] = rel_err(logits_ours, logits)
            ok = ok and row["logits_err"] <= tol
        row["result"] = "match" if ok else "MISMATCH"
    row["seconds"] = round(time.time() - t0, 1)
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return row


def write_table(rows, meta, args):
    resumed = (f" {meta['rewalked']} entries walked again on {meta['rewalked_when']} at {meta['rewalked_commit']} "
               f"(--resume; the other rows are the first run's)." if meta.get("rewalked") else "")
    intro = (f"Made by `tools/timm_registry_walk.py` ({meta['when']}, timm {meta['timm']}, torch {meta['torch']}, "
             f"vit-infer at {meta['commit']}): every entry of timm's {', '.join(MODULES)} modules, random "
             f"weights, depth cut to {meta['depth']}, one input at the entry's own size, CPU fp32 against timm's "
             f"float64 forward. A match is max |ours - timm| <= tol x max |timm| on the logits and on the pooled "
             f"embeddings, tol = max({TOL:g}, 2 x timm's own fp32 error against its float64 forward); errors below "
             "are those ratios." + resumed)
    columns = ["timm entry", "class", "vit-infer family (features)", "result", "logits err", "emb err",
               "timm fp32 err", "message"]
    write_report(rows, meta, args.out, args.json, "timm's ViT registry through vit-infer", intro, columns,
                 lambda r: [f"`{r['model']}`", r["class"], r["family"], r["result"], fmt_err(r["logits_err"]),
                            fmt_err(r["emb_err"]), fmt_err(r["timm_fp32_err"]), r["message"]])


def main():
    ap = walk_args(__doc__.split("\n")[0], "timm_registry.md", "timm-registry.json", 900)
    ap.add_argument("--depth", type=int, default=1, help="blocks per model (0: the entry's own depth)")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --json and walk the rest")
    args = ap.parse_args()
    mg._imports()
    names = []
    for mod in MODULES:
        for n in mg.timm.list_models(module=mod):
            if n not in names and (not args.filter or re.search(args.filter, n)):
                names.append(n)
    meta = run_meta(timm=mg.timm.__version__, torch=mg.torch.__version__, depth=args.depth)
    rows = []
    if args.resume and Path(args.json).exists():
        old = json.loads(Path(args.json).read_text())
        rows = [r for r in old["rows"] if r["model"] in names]
        # The kept rows are the first run's: its date and commit stay, the re-walked entries are
        # counted with their own (the table is in the registry's order either way).
        now = meta
        meta = dict(old["meta"], rewalked=len(names) - len(rows), rewalked_when=now["when"],
                    rewalked_commit=now["commit"])
    done = {r["model"] for r in rows}
    order = {n: i for i, n in enumerate(names)}
    with tempfile.TemporaryDirectory(prefix="timm-walk-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        for i, n in enumerate(names):
            if n in done:
                continue
            row = walk_one(n, args.vit, args.depth, args.seed + i, work)
            rows.append(row)
            print(f"[{i + 1}/{len(names)}] {n}: {row['result']} {fmt_err(row['logits_err'])} "
                  f"{fmt_err(row['emb_err'])} {row['message'][:120]} ({row['seconds']} s)", flush=True)
            if not args.keep:
                subprocess.run(["rm", "-rf", str(work / n)])
            rows.sort(key=lambda r: order[r["model"]])
            write_table(rows, meta, args)  # after every entry: a cut run keeps what it measured
    bad = [r for r in rows if r["result"] in ("MISMATCH", "timeout")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
