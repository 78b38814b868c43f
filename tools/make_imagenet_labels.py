#!/usr/bin/env python3
"""Writes data/imagenet1k_labels.txt: the 1000 ImageNet-1k class names in class-index order.

Source: timm's own data files (timm/data/_info/imagenet_synsets.txt gives the synset of each
index in the order every ImageNet-1k checkpoint uses; imagenet_synset_to_lemma.txt maps a
synset to its WordNet lemmas, e.g. "tench, Tinca tinca"), so the names match what
timm.data.ImageNetInfo().index_to_description(i) returns. One line per class, no header.

    /work/venv-tools/bin/python tools/make_imagenet_labels.py [--out data/imagenet1k_labels.txt]
"""
import argparse
import os
import sys

import timm.data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--out", default=os.path.join(root, "data", "imagenet1k_labels.txt"))
    args = ap.parse_args()

    info_dir = os.path.join(os.path.dirname(timm.data.__file__), "_info")
    with open(os.path.join(info_dir, "imagenet_synsets.txt"), encoding="utf-8") as f:
        synsets = [l.strip() for l in f if l.strip()]
    lemma = {}
    with open(os.path.join(info_dir, "imagenet_synset_to_lemma.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            syn, _, name = line.partition("\t")
            lemma[syn] = name.strip()
    if len(synsets) != 1000:
        sys.exit(f"imagenet_synsets.txt has {len(synsets)} entries, expected 1000")
    missing = [s for s in synsets if not lemma.get(s)]
    if missing:
        sys.exit(f"no lemma for synsets {missing[:5]}")
    names = [lemma[s] for s in synsets]
    # Cross-check against timm's own API where this timm version has it.
    if hasattr(timm.data, "ImageNetInfo"):
        info = timm.data.ImageNetInfo()
        for i in (0, 1, 500, 999):
            want = info.index_to_description(i)
            if want != names[i]:
                sys.exit(f"index {i}: {names[i]!r} != timm ImageNetInfo {want!r}")
    if any("\n" in n or "\r" in n for n in names):
        sys.exit("a label contains a line break")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(n + "\n" for n in names))
    print(f"wrote {len(names)} labels to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
