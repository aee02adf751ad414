"""The longest functions and classes of a package, by lines (``ast`` spans, docstrings included).

``python -m benchmarks.recut_sizes [ROOT ...] [--top N] [--names a.b:C.f ...]``: for each
ROOT (a checkout; default ``.``), the ``N`` longest classes and the ``N`` longest
functions and methods under ``ROOT/item2vec``, as ``lines  module:qualname``; with
``--names``, the lines of those definitions in each ROOT (``-`` where absent), one
column per ROOT. Used for benchmarks/RECUT.md.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def sizes(root: Path) -> dict[str, tuple[str, int]]:
    """``module:qualname -> (kind, lines)`` for every class and function under ``root/item2vec``."""
    out: dict[str, tuple[str, int]] = {}
    for path in sorted((root / "item2vec").rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        tree = ast.parse(path.read_text(), filename=str(path))

        def walk(node: ast.AST, prefix: str, module: str = module) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    name = f"{prefix}{child.name}"
                    kind = "class" if isinstance(child, ast.ClassDef) else "def"
                    start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    out[f"{module}:{name}"] = (kind, child.end_lineno - start + 1)  # type: ignore[operator]
                    walk(child, name + ".")

        walk(tree, "")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="*", default=["."])
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--names", nargs="*", default=None)
    a = ap.parse_args(argv)
    found = {r: sizes(Path(r)) for r in a.roots}
    if a.names is not None:
        print("lines per root: " + " | ".join(a.roots))
        for name in a.names:
            cells = [str(found[r][name][1]) if name in found[r] else "-" for r in a.roots]
            print(f"{' | '.join(cells):>20}  {name}")
        return
    for r, s in found.items():
        for kind in ("class", "def"):
            top = sorted(((n, v[1]) for n, v in s.items() if v[0] == kind), key=lambda x: -x[1])[: a.top]
            print(f"# {r}: the {a.top} longest {'classes' if kind == 'class' else 'functions and methods'}")
            for name, n in top:
                print(f"{n:5d}  {name}")


if __name__ == "__main__":
    main()
