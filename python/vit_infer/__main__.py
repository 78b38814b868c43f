"""``python -m vit_infer classify | serve | embed``.

    python -m vit_infer classify --model models/demo --top-k 5 img.jpg dir/ batch.npy
    python -m vit_infer classify --model M --json --device cuda --precision bf16 inputs/
    python -m vit_infer serve --model M --port 8000 [--replicas N] [--precision bf16] [--name NAME]
    python -m vit_infer embed --model M --input DIR|FILE.parquet --output OUT.parquet

classify: the ``vit-infer classify`` program's table / JSON Lines over the module.
serve: a local Ray and the Ray Serve app (vit_infer/serve.py: the Open Inference Protocol v2 and
/classify, /embed) until SIGINT / SIGTERM. embed: a Ray Data job (vit_infer/embed.py).

An input is an image file (PNG / JPEG, recognised by its bytes), a directory (recursive, sorted), or
a preprocessed float32 ``.npy`` array ``[B, 3, H, W]`` / ``[3, H, W]``. A bad input is reported with its
name (stderr, and a JSON error line with --json) and the others go on; the exit status is then 1.
Usage errors exit 2. The model defaults to $VIT_INFER_MODEL, else ./models/demo when it exists.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Iterator, List, Optional, Sequence

import numpy as np

from . import Model, Prediction, Session, VitError


_MAGIC = (b"\x93NUMPY", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


def _is_input(path: str) -> bool:
    """A directory's file that is an input: .npy / PNG / JPEG by name, else by its leading bytes
    (as vit-infer classify picks them; notes and JSON sidecars are skipped)."""
    if path.lower().endswith((".npy", ".png", ".jpg", ".jpeg")):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head.startswith(_MAGIC)


def _expand(inputs: Sequence[str]) -> Iterator[str]:
    for p in inputs:
        if os.path.isdir(p):
            found = []
            for root, dirs, files in os.walk(p):
                dirs[:] = [d for d in dirs if not d.startswith(".")]  # hidden trees are skipped
                found += [os.path.join(root, f) for f in files
                          if not f.startswith(".") and os.path.isfile(os.path.join(root, f))]
            yield from sorted(f for f in found if _is_input(f))
        else:
            yield p


def _print(path: str, preds: List[List[Prediction]], as_json: bool, array_rows: bool) -> None:
    for row, top in enumerate(preds):
        if as_json:
            d: dict = {"file": path}
            if array_rows:  # the rows of an .npy input carry their index in the file
                d["index"] = row
            d["topk"] = [{"index": p.index, "prob": p.prob, "label": p.label} for p in top]
            print(json.dumps(d))
        else:
            for rank, p in enumerate(top, 1):
                label = "-" if p.label is None else p.label
                print(f"{path}\t{row}\t{rank}\t{p.index}\t{p.prob:.6f}\t{label}")


def classify(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m vit_infer classify", description="Top-k classes of images.")
    dm = default_model()
    ap.add_argument("--model", default=dm, required=dm is None,
                    help="weights file or directory (default: $VIT_INFER_MODEL, else ./models/demo)")
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="JSON Lines instead of a table")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--precision", default="fp32", help="fp32, fp16 or bf16")
    ap.add_argument("--batch", type=int, default=64, help="largest batch of one run")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all)")
    ap.add_argument("--arch", default=None)
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("inputs", nargs="+")
    a = ap.parse_args(argv)
    if a.top_k < 1:
        ap.error(f"--top-k {a.top_k} must be >= 1")
    try:
        model = Model(a.model, arch=a.arch, image_size=a.image_size)
        session = Session(model, device=a.device, precision=a.precision, max_batch=a.batch, threads=a.threads)
    except (VitError, ValueError, TypeError) as e:
        print(f"vit_infer: {e}", file=sys.stderr)
        return 2
    if not a.json:
        print("input\trow\trank\tclass\tprob\tlabel")
    failed = False
    for path in _expand(a.inputs):
        try:
            if path.endswith(".npy"):
                preds = session.top_k(session.run(np.load(path, allow_pickle=False), "logits"), a.top_k)
            else:
                preds = session.classify(path, a.top_k)
        except (VitError, OSError, ValueError, TypeError) as e:
            failed = True
            print(f"vit_infer: {path}: {e}", file=sys.stderr)
            if a.json:
                print(json.dumps({"file": path, "error": str(e)}))
            continue
        _print(path, preds, a.json, path.endswith(".npy"))
    return 1 if failed else 0


_USAGE = """usage: python -m vit_infer classify [--model M] [--top-k K] [--json] inputs...
       python -m vit_infer serve --model M [--port P] [--replicas N] [--precision P] [--name NAME]
       python -m vit_infer embed --model M --input DIR|FILE.parquet --output OUT.parquet"""


def default_model() -> Optional[str]:
    """$VIT_INFER_MODEL, else ./models/demo when it exists."""
    return os.environ.get("VIT_INFER_MODEL") or ("models/demo" if os.path.isdir("models/demo") else None)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("classify", "serve", "embed"):
        print(_USAGE, file=sys.stderr)
        return 2
    if args[0] == "classify":
        return classify(args[1:])
    # Ray on Linux would advertise the machine's outward address; a local cluster stays on loopback.
    # Read when ray is first imported, so before the serving modules are.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    if args[0] == "serve":
        from .serve import main as serve_main
        return serve_main(args[1:])
    from .embed import main as embed_main
    return embed_main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
