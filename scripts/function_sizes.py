"""Print the largest functions and modules of a package, by line count.

Usage::

    .venv/bin/python scripts/function_sizes.py sandbox/api_sandbox [--top 15] [--over 40]

A function's size is its ``def`` line through its last line (decorators excluded,
docstring included); a module's size is its line count. Nested functions are listed
on their own and also count toward the function that holds them.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def function_sizes(package: Path) -> list[tuple[int, str]]:
    """(lines, ``module:qualified.name``) for every function under ``package``."""
    sizes = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        sizes.extend(_functions(tree, path.relative_to(package).as_posix(), prefix=""))
    return sizes


def _functions(node: ast.AST, module: str, prefix: str) -> list[tuple[int, str]]:
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                lines = (child.end_lineno or child.lineno) - child.lineno + 1
                found.append((lines, f"{module}:{name}"))
            found.extend(_functions(child, module, prefix=f"{name}."))
    return found


def module_sizes(package: Path) -> list[tuple[int, str]]:
    """(lines, relative path) for every module under ``package``."""
    return [
        (len(path.read_text(encoding="utf-8").splitlines()), path.relative_to(package).as_posix())
        for path in sorted(package.rglob("*.py"))
    ]


def main() -> None:
    """Print the top functions and modules, and the functions over the threshold."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path, help="package directory, e.g. sandbox/api_sandbox")
    parser.add_argument("--top", type=int, default=15, help="how many of each to print")
    parser.add_argument("--over", type=int, default=40, help="list every function above this")
    args = parser.parse_args()
    functions = sorted(function_sizes(args.package), reverse=True)
    modules = sorted(module_sizes(args.package), reverse=True)
    print(f"largest functions in {args.package}:")
    for lines, name in functions[: args.top]:
        print(f"  {lines:5d}  {name}")
    print(f"largest modules in {args.package}:")
    for lines, name in modules[: args.top]:
        print(f"  {lines:5d}  {name}")
    over = [name for lines, name in functions if lines > args.over]
    print(f"functions over {args.over} lines: {len(over)}")


if __name__ == "__main__":
    main()
