"""vit_infer.embed: an offline embedding job on Ray Data (``python -m vit_infer embed``).

    python -m vit_infer embed --model M --input DIR --output OUT.parquet
    python -m vit_infer embed --model M --input images.parquet --output OUT.parquet [--image-column jpg]
    python -m vit_infer embed ... --address HEAD:6379        # an existing cluster instead of a local Ray

An actor pool of Sessions (one Model + Session per actor, ``--actors`` of them, ``--cpus-per-actor``
CPUs and engine threads each) embeds the images; the result is written with ``write_parquet`` to
OUT (a directory of Parquet files, one per writer: pyarrow / pandas read it as one table) with the
columns ``path`` (a directory's input) or the input Parquet's other columns, ``embedding``
(list<float32>, the pooled embeddings: ``vit-infer classify --embeddings-out``'s rows) and
``error`` (null, or why that image was not embedded: its embedding is then null). Images are
decoded with the library's decoder and preprocessed by the model's own pipeline, as the program does.

Batches: a directory's files are listed and sorted as ``vit-infer classify DIR`` lists them and cut
into batches of ``--batch`` consecutive files (the program's batches), each batch one engine run of
its good images; so the embeddings equal ``vit-infer classify --batch N --embeddings-out`` bit for
bit, up to the first bad image (the program refills its batch past one, shifting later batches;
the engine's last bits depend on the batch). A Parquet input's rows run in Ray Data's batches of
``--batch`` rows of a block (one file's rows in order). On a multi-machine cluster the input and
OUT must be on storage every machine sees (a shared mount, or a URI pyarrow reads: s3://, gs://).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

import vit_infer

#: A bad image's own faults (decoding, size): its error column says which; other errors stop the job.
_IMAGE_ERRORS = (vit_infer.FormatError, vit_infer.UnsupportedError, vit_infer.InvalidArgumentError,
                 vit_infer.IOError, OSError, ValueError, TypeError)
_IMAGE_COLUMNS = ("image", "jpg", "jpeg", "png", "bytes", "img")


def image_files(root: str) -> List[str]:
    """The image files of a directory as ``vit-infer classify DIR`` takes them (recursive, sorted,
    hidden entries and .npy arrays skipped), or [root] for a file."""
    from .__main__ import _expand
    return [p for p in _expand([root]) if not p.lower().endswith(".npy")]


class Embedder:
    """A Ray Data actor: one Session; ``__call__`` embeds a pyarrow batch (see embed())."""

    def __init__(self, model: str, device: str, precision: str, batch: int, threads: int,
                 image_column: Optional[str]) -> None:
        from .serve import _default_threads
        self.model = vit_infer.Model(model)
        self.session = vit_infer.Session(self.model, device=device, precision=precision, max_batch=batch,
                                         threads=threads or _default_threads())
        self.image_column = image_column

    def embed(self, blobs: Sequence[Optional[bytes]], names: Sequence[str]) -> Tuple[List[Any], List[Optional[str]]]:
        """Embeddings (None where failed) and errors of encoded images: the good ones run as one batch."""
        emb: List[Any] = [None] * len(blobs)
        err: List[Optional[str]] = [None] * len(blobs)
        pixels, idx = [], []
        for k, (b, name) in enumerate(zip(blobs, names)):
            if b is None:
                err[k] = f"{name}: no image bytes"
                continue
            try:
                pixels.append(self.model.decode_image(b, name))  # as the model's framework reads it
                idx.append(k)
            except _IMAGE_ERRORS as e:
                err[k] = str(e)
        if pixels:
            try:
                rows = self.session.run_images(pixels, "embeddings")
                for j, k in enumerate(idx):
                    emb[k] = rows[j]
            except _IMAGE_ERRORS:  # the engine refused the batch: one by one, so only the bad one fails
                for p, k in zip(pixels, idx):
                    try:
                        emb[k] = self.session.run_images([p], "embeddings")[0]
                    except _IMAGE_ERRORS as e:
                        err[k] = f"{names[k]}: {e}"
        return emb, err

    def __call__(self, batch):  # pyarrow.Table in, pyarrow.Table out
        import pyarrow as pa
        if "paths" in batch.column_names:  # a directory: each row is one batch of files
            paths: List[str] = [p for chunk in batch.column("paths").to_pylist() for p in chunk]
            blobs: List[Optional[bytes]] = []
            read_err: Dict[int, str] = {}
            for k, p in enumerate(paths):
                try:
                    with open(p, "rb") as f:
                        blobs.append(f.read())
                except OSError as e:
                    blobs.append(None)
                    read_err[k] = f"{p}: {e.strerror or e}"
            emb, err = self.embed(blobs, paths)
            for k, e in read_err.items():
                err[k] = e
            rest = {"path": pa.array(paths, pa.string())}
        else:
            col = batch.column(self.image_column)
            if pa.types.is_struct(col.type):  # HF datasets' Image feature: {bytes, path}
                col = col.combine_chunks().field("bytes")
            blobs = col.to_pylist()
            emb, err = self.embed(blobs, [f"row {k} of the batch" for k in range(len(blobs))])
            rest = {n: batch.column(n) for n in batch.column_names if n != self.image_column}
        return pa.table({**rest, "embedding": pa.array([None if e is None else e.tolist() for e in emb],
                                                       pa.list_(pa.float32())),
                         "error": pa.array(err, pa.string())})


def _image_column(path: str, wanted: Optional[str]) -> str:
    import pyarrow.parquet as pq
    names = pq.ParquetDataset(path).schema.names
    if wanted:
        if wanted not in names:
            raise ValueError(f"{path} has no column '{wanted}' (columns: {', '.join(names)})")
        return wanted
    for n in _IMAGE_COLUMNS:
        if n in names:
            return n
    raise ValueError(f"{path}: no image column among {', '.join(names)}; name it with --image-column")


def _is_parquet(path: str) -> bool:
    """A .parquet file, or a directory of them (a written data set) without images."""
    if os.path.isfile(path):
        return path.lower().endswith(".parquet")
    return os.path.isdir(path) and not image_files(path) and any(
        f.endswith(".parquet") for _, _, fs in os.walk(path) for f in fs)


def embed(model: str, input: str, output: str, *, device: str = "cpu", precision: str = "fp32", batch: int = 8,
          actors: int = 2, cpus_per_actor: float = 1, gpus_per_actor: float = 0, image_column: Optional[str] = None,
          progress: bool = True) -> Dict[str, Any]:
    """Runs the job on the Ray this process is connected to (ray.init first); returns
    {"rows", "errors", "output", "seconds"}."""
    import ray
    import pyarrow.parquet as pq

    t0 = time.monotonic()
    model = os.path.abspath(model)
    vit_infer.Model(model)  # a bad model fails here, before any actor starts
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = progress
    if _is_parquet(input):
        column: Optional[str] = _image_column(input, image_column)
        ds = ray.data.read_parquet(input)
        batch_rows = batch
    else:
        if not os.path.exists(input):
            raise FileNotFoundError(f"{input}: no such file or directory")
        column = None
        files = [os.path.abspath(p) for p in image_files(input)]
        if not files:
            raise ValueError(f"{input}: no images (PNG / JPEG) found")
        ds = ray.data.from_items([{"paths": files[i:i + batch]} for i in range(0, len(files), batch)],
                                 override_num_blocks=min(len(files), max(1, 4 * actors)))
        batch_rows = 1  # one row = one batch of files
    ds = ds.map_batches(Embedder, batch_size=batch_rows, batch_format="pyarrow", concurrency=actors,
                        num_cpus=cpus_per_actor, num_gpus=gpus_per_actor, scheduling_strategy="SPREAD",
                        fn_constructor_kwargs={"model": model, "device": device, "precision": precision,
                                               "batch": batch, "threads": int(cpus_per_actor),
                                               "image_column": column})
    ds.write_parquet(output)
    errors = pq.read_table(output, columns=["error"]).column("error")
    return {"rows": len(errors), "errors": len(errors) - errors.null_count, "output": output,
            "seconds": time.monotonic() - t0}


def main(argv: Sequence[str]) -> int:
    from .__main__ import default_model

    dm = default_model()
    ap = argparse.ArgumentParser(prog="python -m vit_infer embed",
                                 description="Embed a directory of images or a Parquet file of image bytes on Ray Data.")
    ap.add_argument("--model", default=dm, required=dm is None,
                    help="weights file or directory (default: $VIT_INFER_MODEL, else ./models/demo)")
    ap.add_argument("--input", required=True, help="a directory of images (recursive) or a .parquet file / directory")
    ap.add_argument("--output", required=True, help="where to write the Parquet result (a directory of part files)")
    ap.add_argument("--image-column", default=None,
                    help=f"a Parquet input's column of encoded images (default: the first of {', '.join(_IMAGE_COLUMNS)})")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--batch", type=int, default=8, help="images per engine run (vit-infer classify's --batch)")
    ap.add_argument("--actors", type=int, default=None, help="Sessions in the actor pool (default: CPUs / "
                                                             "--cpus-per-actor)")
    ap.add_argument("--cpus-per-actor", type=float, default=1, help="CPUs (and engine threads) per Session")
    ap.add_argument("--gpus-per-actor", type=float, default=0)
    ap.add_argument("--address", default=None, help="an existing Ray cluster (default: start a local one)")
    ap.add_argument("--no-progress", action="store_true")
    a = ap.parse_args(argv)
    if a.batch < 1 or a.cpus_per_actor <= 0 or (a.actors is not None and a.actors < 1):
        ap.error("--batch and --actors must be >= 1, --cpus-per-actor > 0")
    if os.path.exists(a.output):
        print(f"vit_infer embed: {a.output} exists; choose a new output path", file=sys.stderr)
        return 2
    import ray
    ray.init(address=a.address, include_dashboard=False, log_to_driver=False,
             **({} if a.address else {"num_cpus": os.cpu_count() or 1}))
    try:
        actors = a.actors or max(1, int(ray.cluster_resources().get("CPU", 1) // a.cpus_per_actor))
        r = embed(a.model, a.input, a.output, device=a.device, precision=a.precision, batch=a.batch, actors=actors,
                  cpus_per_actor=a.cpus_per_actor, gpus_per_actor=a.gpus_per_actor, image_column=a.image_column, progress=not a.no_progress)
    except (vit_infer.VitError, ValueError, OSError) as e:
        print(f"vit_infer embed: {e}", file=sys.stderr)
        return 2
    finally:
        ray.shutdown()
    print(f"vit_infer embed: {r['rows']} rows ({r['errors']} errors) written to {r['output']} in "
          f"{r['seconds']:.1f} s by {actors} Session actor(s)", file=sys.stderr)
    return 1 if r["errors"] else 0
