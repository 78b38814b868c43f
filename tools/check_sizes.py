#!/usr/bin/env python3
"""Checks the size limits of issue 23: no source file in src/ over MAX_FILE lines and no function
over MAX_FUNC lines in src/ and python/src/ (kernels/ are measured by --list, not held to it: a
kernel's body is one launch's work). A function is a brace block opened at namespace
or class scope after a parameter list (a lambda or a nested block counts toward its function);
comments, strings and preprocessor lines are blanked first. Exits 1 listing what is over.
Usage: check_sizes.py [REPO_ROOT] [--list N] (--list: the N longest functions, for planning)."""
import os
import re
import sys

MAX_FILE = 900
MAX_FUNC = 150
NOT_NAMES = {"__launch_bounds__", "__align__", "alignas", "decltype", "noexcept", "sizeof"}
EXTS = (".h", ".hpp", ".cpp", ".cu", ".cuh", ".inc")
CONTAINER = re.compile(r"\b(namespace|class|struct|union|enum)\b[^()]*$|\bextern\s+\"C\"\s*$")


def strip(text):
    """Comments, string / char literals and preprocessor lines blanked (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c in "\"'":
            if c == '"' and i > 0 and text[i - 1] == "R":  # raw string R"d(...)d"
                k = text.find("(", i)
                d = text[i + 1:k]
                j = text.find(")" + d + '"', k)
                j = n if j < 0 else j + len(d) + 2
            else:
                j = i + 1
                while j < n and text[j] != c:
                    j += 2 if text[j] == "\\" else 1
                j += 1
            out.append(" " + "\n" * text.count("\n", i, j))
            i = j
        elif c == "#" and (i == 0 or text[i - 1] == "\n" or text[:i].rsplit("\n", 1)[-1].strip() == ""):
            j = i
            while True:  # to the end of the line, following continuations
                k = text.find("\n", j)
                if k < 0:
                    j = n
                    break
                if text[k - 1] != "\\":
                    j = k
                    break
                j = k + 1
            out.append("\n" * text.count("\n", i, j))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(text):
    """(name, first line, line count) of every function body in `text` (already stripped)."""
    found, stack, head_start = [], [], 0  # stack: "c" container, ("f", line, name) function, "b" other
    line = 1
    for i, c in enumerate(text):
        if c == "\n":
            line += 1
        elif c in ";{}":
            head = text[head_start:i]
            if c == "{":
                in_func = any(isinstance(s, tuple) for s in stack)
                h = " ".join(head.split())
                if in_func:
                    stack.append("b")
                elif CONTAINER.search(h) or not h:
                    stack.append("c" if h else "b")
                elif ")" in h and not re.search(r"=\s*$", h) and not h.endswith(("=", ",", "(")):
                    first = line - head.lstrip().count("\n")  # the signature's first line
                    names = [x for x in re.findall(r"([~\w:]+)\s*\(", h) if x not in NOT_NAMES]
                    stack.append(("f", first, names[0] if names else h[:40]))
                else:
                    stack.append("b")
            elif c == "}" and stack:
                top = stack.pop()
                if isinstance(top, tuple):
                    found.append((top[2], top[1], line - top[1] + 1))
            head_start = i + 1
    return found


def main():
    args, listing = sys.argv[1:], 0
    if "--list" in args:
        k = args.index("--list")
        listing = int(args[k + 1])
        del args[k:k + 2]
    root = os.path.abspath(args[0] if args else os.path.join(os.path.dirname(__file__), ".."))
    bad, allf = [], []
    for top in ("src", os.path.join("python", "src"), "kernels"):
        for dp, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if not f.endswith(EXTS):
                    continue
                path = os.path.join(dp, f)
                rel = os.path.relpath(path, root)
                with open(path, encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
                lines = text.count("\n") + (0 if text.endswith("\n") else 1)
                if top == "src" and lines > MAX_FILE:
                    bad.append(f"{rel}: {lines} lines (limit {MAX_FILE})")
                for name, first, n in functions(strip(text)):
                    allf.append((n, f"{rel}:{first} {name}"))
                    if n > MAX_FUNC and top != "kernels":  # kernels/: listed (--list), not held to it
                        bad.append(f"{rel}:{first}: function {name} is {n} lines (limit {MAX_FUNC})")
    for n, where in sorted(allf, reverse=True)[:listing]:
        print(f"{n:5d} {where}")
    for b in bad:
        print(b)
    print(f"check_sizes: {len(bad)} over the limits (files in src/ {MAX_FILE} lines, functions {MAX_FUNC})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
