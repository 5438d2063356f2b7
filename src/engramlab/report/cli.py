"""``engramlab reproduce``: re-run the papers' experiments and write one report."""

from __future__ import annotations


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser("reproduce", help="run each paper's experiments and write report.json / report.md")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--only", default=None, help="comma-separated systems: foundation,bdh,astro,hmmglm,timescales")
    p.add_argument("--full", action="store_true", help="the sizes the docs report (hours on a CPU)")
    p.add_argument("--data", default=None, help="text corpus for the language models (default shakespeare)")

    def run(a):
        from engramlab.report.reproduce import reproduce

        only = [x.strip() for x in a.only.split(",")] if a.only else None
        rep = reproduce(a.out, only, a.full, a.data)
        failed = [s["name"] for s in rep["steps"] if not s["ok"]]
        print(f"report written to {a.out}/report.md" + (f"; failed: {', '.join(failed)}" if failed else ""))
        if failed:
            raise SystemExit(1)

    p.set_defaults(func=run)
