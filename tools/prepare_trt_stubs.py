"""Copy tensorrt-stubs into typings/ and patch what mypy cannot parse, so CI type-checks the TensorRT code.

tensorrt-stubs (10.13.0.35.1) ships ``tensorrt/__init__.pyi`` and ``tensorrt_bindings/{__init__,tensorrt}.pyi``
without a py.typed marker, so mypy ignores them where pip installs them; copied onto mypy's path (``mypy_path =
"typings"``) they are used, after three fixes:

1. parameters named ``in`` (a keyword): renamed ``in_``;
2. ``add_scale_nd`` has a parameter without a default after ones with defaults: ``channel_axis`` gets ``= ...``;
3. ``import tensorrt_libs`` (a module that exists only with real TensorRT): removed.

Each fix must apply at least once and every patched file must parse, or this script fails (a new stubs release
changed, and this script needs a look). Install the stubs first with ``pip install --no-deps
tensorrt-stubs==10.13.0.35.1`` (without --no-deps pip tries to install TensorRT itself and fails).

    python tools/prepare_trt_stubs.py [--out typings]
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from importlib import metadata
from pathlib import Path

FILES = ("tensorrt/__init__.pyi", "tensorrt_bindings/__init__.pyi", "tensorrt_bindings/tensorrt.pyi")
PATCHES = (
    ("parameters named 'in'", re.compile(r"(?<=[(,] )in(?=: )|(?<=\()in(?=: )"), "in_"),
    ("add_scale_nd's channel_axis without a default",
     re.compile(r"(def add_scale_nd\(.*?, )channel_axis: int\)"), r"\1channel_axis: int = ...)"),
    ("import tensorrt_libs", re.compile(r"^import tensorrt_libs as tensorrt_libs\n", re.MULTILINE), ""),
)


def patch(texts: dict[str, str]) -> dict[str, str]:
    """The stub texts with every PATCHES entry applied; ValueError if one applies nowhere or a file won't parse."""
    out = dict(texts)
    for what, pattern, repl in PATCHES:
        count = 0
        for name, text in out.items():
            out[name], n = pattern.subn(repl, text)
            count += n
        if count == 0:
            raise ValueError(f"patch '{what}' matched nothing: the stubs changed; update tools/prepare_trt_stubs.py")
    for name, text in out.items():
        try:
            ast.parse(text, filename=name)
        except SyntaxError as e:
            raise ValueError(f"{name} still does not parse after patching ({e}); update tools/prepare_trt_stubs.py") \
                from e
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="typings", help="folder to write (default: %(default)s, put on mypy_path)")
    args = p.parse_args(argv)
    try:
        dist = metadata.distribution("tensorrt-stubs")
    except metadata.PackageNotFoundError:
        print("prepare_trt_stubs: tensorrt-stubs is not installed; run `pip install --no-deps "
              "tensorrt-stubs==10.13.0.35.1` first", file=sys.stderr)
        return 2
    texts = {name: Path(str(dist.locate_file(name))).read_text() for name in FILES}
    try:
        patched = patch(texts)
    except ValueError as e:
        print(f"prepare_trt_stubs: {e}", file=sys.stderr)
        return 1
    out = Path(args.out)
    for name, text in patched.items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    print(f"prepare_trt_stubs: tensorrt-stubs {dist.version} -> {out}/ ({', '.join(FILES)}), patched")
    return 0


if __name__ == "__main__":
    sys.exit(main())
