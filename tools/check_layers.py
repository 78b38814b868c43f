#!/usr/bin/env python3
"""Checks that includes only point down (issue 23): every `#include "dir/file"` in src/, kernels/ and
python/src/ goes to a floor at or below the including file's, and the few file rules hold.

Floors, lowest first (a directory may include its own floor and any below):
  0 core        leaf types and tables (tensor, error, precision, activation, pool)
  1 io, kernels readers; the CUDA kernels (kernels/ include core/ only)
  2 model       checkpoint loading, the config
  3 image, graph
  4 engine      the Engine interface
  5 cpu, gpu    the backends (neither includes the other)
  6 api         the C API (include/vit/ is its interface: floor 6 too)
  7 cli
  8 python      the binding: the public C API only (vit/)
Rules beside the floors: a header of cpu/ or gpu/ does not include its backend's entry point
(cpu/cpu_engine.h, gpu/cuda_engine.h), which only .cpp files and higher floors use; kernels/
include core/ and kernels/ only. Exits 1 listing every arrow back up, 0 when there is none.
Usage: check_layers.py [REPO_ROOT]"""
import os
import re
import sys

FLOORS = {"core": 0, "io": 1, "kernels": 1, "model": 2, "image": 3, "graph": 3, "engine": 4, "cpu": 5, "gpu": 5,
          "api": 6, "vit": 6, "cli": 7, "python": 8}
SIBLINGS_APART = {("cpu", "gpu"), ("gpu", "cpu")}
ENTRY = {"cpu": "cpu/cpu_engine.h", "gpu": "gpu/cuda_engine.h"}
ALLOWED_ONLY = {"kernels": {"core", "kernels"}, "python": {"vit"}}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
EXTS = (".h", ".hpp", ".cpp", ".cu", ".cuh", ".inc")


def unit_of(root, path):
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    parts = rel.split("/")
    if parts[0] == "src":
        return parts[1]
    if parts[0] == "python":
        return "python"
    return parts[0]  # kernels


def target_unit(inc, including_unit):
    if "/" in inc:
        return inc.split("/")[0]
    return including_unit if including_unit == "kernels" else None  # kernels' own headers by bare name


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    bad = []
    dirs = [os.path.join(root, "src"), os.path.join(root, "kernels"), os.path.join(root, "python", "src")]
    for d in dirs:
        for dp, _, files in os.walk(d):
            for f in sorted(files):
                if not f.endswith(EXTS):
                    continue
                path = os.path.join(dp, f)
                unit = unit_of(root, path)
                if unit not in FLOORS:
                    bad.append(f"{path}: directory '{unit}' has no floor in tools/check_layers.py")
                    continue
                with open(path, encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
                rel = os.path.relpath(path, root)
                for m in INCLUDE.finditer(text):
                    inc = m.group(1)
                    tu = target_unit(inc, unit)
                    if tu is None:
                        if unit != "kernels" and "/" not in inc:
                            # a bare name from a .cu's directory or the CUDA headers: only kernels/ may
                            # be reached so (the gpu backend includes kernel headers by name).
                            if unit != "gpu" and not os.path.exists(os.path.join(dp, inc)):
                                bad.append(f"{rel}: #include \"{inc}\": a kernels/ header reached from {unit}/")
                        continue
                    if tu not in FLOORS:
                        continue  # a third-party header with a slash (nlohmann/json.hpp, ...)
                    if unit in ALLOWED_ONLY and tu not in ALLOWED_ONLY[unit]:
                        bad.append(f"{rel}: #include \"{inc}\": {unit}/ includes only {sorted(ALLOWED_ONLY[unit])}")
                    elif FLOORS[tu] > FLOORS[unit]:
                        bad.append(f"{rel}: #include \"{inc}\": floor {FLOORS[tu]} ({tu}) above floor {FLOORS[unit]} ({unit})")
                    elif (unit, tu) in SIBLINGS_APART:
                        bad.append(f"{rel}: #include \"{inc}\": the {unit} and {tu} backends include each other")
                    elif unit in ENTRY and inc == ENTRY[unit] and not f.endswith((".cpp", ".cu")):
                        bad.append(f"{rel}: #include \"{inc}\": a {unit}/ header includes the backend's entry point")
    for b in bad:
        print(b)
    print(f"check_layers: {len(bad)} arrow(s) back up")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
