"""``engramlab reproduce``: run each paper's experiments through the public commands and
collect their JSON outputs into one report (``report.json`` and ``report.md``).

The default (quick) plan runs every experiment at a size that fits a laptop CPU in minutes,
to show the pipeline end to end; ``--full`` runs the sizes the docs report. Each step is an
``engramlab`` command line, so a reader can re-run any single one by hand.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Step:
    system: str
    name: str
    argv: list[str]
    outputs: list[str]  # JSON files (relative to the report folder) whose numbers go in the report


def plan(out: Path, full: bool, data: str | None) -> list[Step]:
    """The experiments, in order. Paths are inside ``out``."""
    o = lambda *p: str(out.joinpath(*p))
    text = data or "shakespeare"
    steps = [
        Step("foundation", "gpt quickstart",
             ["train", "gpt", "--preset", "small" if full else "tiny", "--data", text, "--out", o("gpt"),
              "--no-progress"], []),
        Step("bdh", "bdh language model",
             ["train", "bdh", "--preset", "small" if full else "tiny", "--data", text, "--out", o("bdh"),
              "--no-progress"], []),
        Step("bdh", "bdh inspection",
             ["bdh", "inspect", o("bdh"), "--text", o("sample.txt"), "--out", o("bdh-inspect"),
              "--no-progress"], ["bdh-inspect/inspect.json"]),
        Step("astro", "memory retention (copy)",
             ["astro", "memory", "--task", "copy", "--delays", "10,50,100,200,500" if full else "10",
              "--out", o("astro-memory")] + ([] if full else ["--steps", "100"]),
             ["astro-memory/memory.json"]),
        Step("hmmglm", "synthetic recovery",
             ["hmmglm", "benchmark", "--out", o("hmmglm")] + ([] if full else ["--epochs", "5"]), []),
        Step("timescales", "N-parity, multi-head curriculum",
             ["timescales", "train", "--task", "parity", "--curriculum", "multi", "--max-n", "101",
              "--budget-minutes", "60" if full else "1", "--out", o("timescales-multi"), "--no-progress"]
             + ([] if full else ["--neurons", "64", "--steps-per-epoch", "50", "--test-batches", "4"]), []),
        Step("timescales", "N-parity, single-head curriculum",
             ["timescales", "train", "--task", "parity", "--curriculum", "single", "--max-n", "101",
              "--budget-minutes", "60" if full else "1", "--out", o("timescales-single"), "--no-progress"]
             + ([] if full else ["--neurons", "64", "--steps-per-epoch", "50", "--test-batches", "4"]), []),
    ]
    return steps


def reproduce(out: str | Path, only: list[str] | None = None, full: bool = False, data: str | None = None) -> dict:
    from engramlab.cli import main
    from engramlab.data.text import load_corpus
    from engramlab.io import atomic_write_bytes, read_json, write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps = plan(out, full, data)
    known = sorted({s.system for s in steps})
    if only:
        bad = [s for s in only if s not in known]
        if bad:
            raise ValueError(f"unknown system(s) {bad} for --only; known: {', '.join(known)}")
        steps = [s for s in steps if s.system in only]
    corpus = load_corpus(data or "shakespeare")
    atomic_write_bytes(out / "sample.txt", bytes(corpus.val[:4096]))
    results = []
    for s in steps:
        t0 = time.perf_counter()
        print(f"== {s.system}: {s.name}\n   engramlab {' '.join(s.argv)}", flush=True)
        try:
            code = main(s.argv)
            error = None if code == 0 else f"exit code {code}"
        except Exception as e:  # keep going: one failed experiment must not hide the others
            error = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
        numbers = {}
        for rel in s.outputs:
            p = out / rel
            if p.exists():
                numbers[rel] = read_json(p)
        results.append({"system": s.system, "name": s.name, "command": "engramlab " + " ".join(s.argv),
                        "seconds": round(time.perf_counter() - t0, 1), "ok": error is None, "error": error,
                        "outputs": numbers})
    report = {"full": full, "steps": results}
    write_json(out / "report.json", report)
    lines = ["# engramlab reproduce", "", f"Mode: {'full' if full else 'quick'}", "",
             "| system | experiment | ok | seconds | command |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['system']} | {r['name']} | {'yes' if r['ok'] else 'NO'} | {r['seconds']} | "
                     f"`{r['command']}` |")
    atomic_write_bytes(out / "report.md", ("\n".join(lines) + "\n").encode())
    return report
