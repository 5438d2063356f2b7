"""``engramlab data ...``: the fetchable data files (``engramlab.data.registry``)."""

from __future__ import annotations

import argparse
import sys


def add_subparser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("data", help="list and fetch the public data files (checksummed, cached)")
    sub = p.add_subparsers(dest="data_cmd", required=True)

    f = sub.add_parser("fetch", help="download NAME once into the cache (or check --path) and print its local path")
    f.add_argument("name", help="a name from `engramlab data list`")
    f.add_argument("--path", default=None, help="a copy you already have: check its SHA-256 instead of downloading")
    f.add_argument("--progress", action="store_true", help="show a download progress bar")
    f.set_defaults(func=_fetch)

    ls = sub.add_parser("list", help="the registered sources: name, bytes, source, licence")
    ls.set_defaults(func=_list)
    return p


def _fetch(args) -> int:
    from .registry import fetch

    try:
        path = fetch(args.name, args.path, progress=args.progress)
    except RuntimeError as e:  # a failed download (network): say so without a traceback
        print(f"engramlab: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    print(path)
    return 0


def format_table(sources) -> str:
    """The sources as an aligned text table: name, bytes, source, licence."""
    rows = [("name", "bytes", "source", "licence")]
    rows += [(s.name, f"{s.n_bytes:,}" if s.n_bytes is not None else "unknown", s.url, s.licence) for s in sources]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join([r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].ljust(widths[2]), r[3]]).rstrip() for r in rows
    )


def _list(args) -> int:
    from .registry import list_sources

    print(format_table(list_sources()))
    return 0
