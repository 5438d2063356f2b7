"""The report: one self-contained ``report.html`` (figures embedded as base64 PNG, inline CSS, no script,
nothing fetched) and a ``report.md`` with the same content and its PNG files beside it.

Both are built from the per-system documents (``claims.json``): a summary table of every claim at the
top, then one section per paper with the claim in one sentence, the table paper | measured here |
rule | verdict | budget, the extra tables, the figures, the notes and the command that re-runs it.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from engramlab import io
from engramlab.report.claims import all_records

VERDICT_COLOURS = {
    "agrees": "#1a7f37",
    "partly": "#9a6700",
    "not reproduced": "#cf222e",
    "not attempted": "#6e7781",
    None: "#6e7781",
}
MODE_WORDS = {
    "tiny": "tiny (a seconds-long check of the pipeline; no verdict here means anything)",
    "quick": "quick",
    "full": "full",
}


def fmt_num(v, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1e6 or abs(v) < 1e-3:
            return f"{v:.3g}"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        text = f"{v:.{digits}f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    return str(v)


def fmt_measured(m: dict, unit: bool = False) -> str:
    """``mean ± half-range [min, max]`` (with the unit), then the number of runs it comes from."""
    if m.get("mean") is None:
        return "not measured" + (f" ({m['note']})" if m.get("note") else "")
    text = fmt_num(m["mean"])
    if m["n_seeds"] > 1 and m.get("spread"):
        lo, hi = m["spread"]
        text += f" ± {fmt_num((hi - lo) / 2)} [{fmt_num(lo)}, {fmt_num(hi)}]"
    if unit and m.get("unit"):
        text += f" ({m['unit']})"
    text += f"; {m['n_seeds']} run{'s' if m['n_seeds'] != 1 else ''}"
    if len(m["values"]) > m["n_seeds"]:
        text += f" of {len(m['values'])}"
    return text


_OPS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}


def fmt_rule(rule: dict | None, means: dict[str, float | None]) -> str:
    if rule is None:
        return "baseline (no rule)"
    op = _OPS[rule["op"]]
    if "other" in rule:
        ref = means.get(rule["other"])
        margin = rule.get("margin", 0.0)
        sign = "+" if margin >= 0 else "−"
        text = f"{op} {rule['other']} {sign} {fmt_num(abs(margin))}"
        if ref is not None:
            text += f" (= {fmt_num(ref + margin)})"
        if "partly" in rule:
            p = rule["partly"]
            text += f"; partly {op} {rule['other']} {'+' if p >= 0 else '−'} {fmt_num(abs(p))}"
            if ref is not None:
                text += f" (= {fmt_num(ref + p)})"
        return text if rule.get("of") != "worst" else f"every seed {text}"
    text = f"{op} {fmt_num(rule['value'])}"
    if "partly" in rule:
        text += f"; partly {op} {fmt_num(rule['partly'])}"
    return text if rule.get("of") != "worst" else f"every seed {text}"


def fmt_budget(b: dict) -> str:
    parts = [b.get("device", "?")]
    if b.get("seconds") is not None:
        parts.append(f"{b['seconds']:.0f} s")
    for k, v in b.items():
        if k in ("device", "seconds") or v is None:
            continue
        if isinstance(v, list):
            v = ", ".join(map(str, v))
        elif isinstance(v, dict):
            v = ", ".join(f"{a} {c}" for a, c in v.items())
        parts.append(f"{k.replace('_', ' ')} {fmt_num(v) if not isinstance(v, str) else v}")
    return "; ".join(parts)


def fmt_paper(p: dict) -> str:
    return p["text"]


def _times(results: dict) -> str:
    text = ""
    if results.get("experiments_s"):
        text = (
            f"The experiments took {results['experiments_s']:,.0f} s (wall time summed over experiments, which "
            "may have run in parallel or in earlier invocations). "
        )
    return text + f"This invocation: {results.get('wall_s') or 0:,.0f} s."


def _summary_measured(c: dict, doc: dict) -> str:
    """The measured value; for a comparison, also the value it is compared with."""
    text = fmt_measured(c["measured"])
    if c["rule"] is not None and "other" in c["rule"]:
        other = next((o for o in all_records(doc) if o["id"] == c["rule"]["other"]), None)
        if other is not None:
            text += f"; vs {fmt_num(other['measured']['mean'])} ({other['id']})"
    return text


def _counts(systems: list[dict]) -> dict[str, int]:
    out = {"agrees": 0, "partly": 0, "not reproduced": 0, "not attempted": 0}
    for d in systems:
        for c in d["claims"]:
            out[c["verdict"]] += 1
    return out


def _caveat(results: dict, systems: list[dict]) -> str:
    modes = sorted({d["mode"] for d in systems})
    if modes == ["full"]:
        return (
            "Every section below was run at the full budget the project's documentation reports; the budget of "
            "each claim is in its row."
        )
    small = ", ".join(d["system"] for d in systems if d["mode"] != "full")
    return (
        f"The verdicts of {small} are at a small budget ({', '.join(m for m in modes if m != 'full')} mode), "
        "far below what the papers trained: they say what this run measured, and may point the other way at "
        "the full budget. Each section states its budget and the full one; `engramlab reproduce --full` runs "
        "the full budgets (hours on a CPU)."
    )


# --------------------------------------------------------------------------------------- markdown
def _md_table(columns: list[str], rows: list[list]) -> list[str]:
    def cell(v):
        return str(fmt_num(v) if not isinstance(v, str) else v).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return out


def to_markdown(results: dict, systems: list[dict]) -> str:
    counts = _counts(systems)
    lines = ["# engramlab: the papers' claims, re-run", ""]
    lines += [f"> **{_caveat(results, systems)}**", ""]
    dev = results.get("device", {})
    lines += [
        f"Mode: {', '.join(sorted({MODE_WORDS[d['mode']] for d in systems}))}. "
        f"Device: {dev.get('summary', '?')}. "
        f"{_times(results)} Command: `{results['command']}`.",
        "",
    ]
    lines += ["Verdicts: " + ", ".join(f"{v} {n}" for v, n in counts.items()) + ".", ""]
    lines += ["## Summary", ""]
    rows = []
    for d in systems:
        for c in d["claims"]:
            rows.append(
                [f"`{c['id']}`", c["claim"], fmt_paper(c["paper"]), _summary_measured(c, d), f"**{c['verdict']}**"]
            )
    lines += _md_table(["id", "claim", "paper reports", "measured here", "verdict"], rows)
    for d in systems:
        means = {c["id"]: c["measured"]["mean"] for c in all_records(d)}
        lines += ["", f"## {d['title']}", "", f"*{d['paper']}*", "", f"**The claim:** {d['summary']}", ""]
        lines += [
            f"Budget of this run ({d['mode']}): {d['budget_text']}.",
            "",
            f"Full budget: {d['full_budget_text']}.",
            "",
        ]
        rows = [
            [
                f"`{c['id']}`" + (" (baseline)" if c["kind"] == "baseline" else ""),
                c["claim"],
                fmt_paper(c["paper"]),
                fmt_measured(c["measured"], unit=True),
                fmt_rule(c["rule"], means),
                "—" if c["verdict"] is None else f"**{c['verdict']}**",
                fmt_budget(c["budget"]),
            ]
            for c in all_records(d)
        ]
        lines += _md_table(
            [
                "id",
                "claim",
                "paper reports",
                "measured here (mean ± half-range [min, max])",
                "rule",
                "verdict",
                "budget",
            ],
            rows,
        )
        for t in d["tables"]:
            lines += ["", f"**{t['title']}**", ""] + _md_table(t["columns"], t["rows"])
            if t.get("note"):
                lines += ["", t["note"]]
        for f in d["figures"]:
            lines += ["", f"![{f['caption']}]({d['system']}/{f['file']})", "", f"*{f['caption']}*"]
        if d.get("failed_units"):
            lines += [
                "",
                "Experiments that failed (their claims are not attempted): "
                + ", ".join(f"`{u}`" for u in d["failed_units"])
                + ".",
            ]
        for n in d["notes"]:
            lines += ["", f"- {n}"]
        lines += ["", "Re-run this section:", "", "```bash", d["command"], "```"]
    v = results.get("versions", {})
    lines += ["", "## Environment", "", ", ".join(f"{k} {val}" for k, val in v.items()) + "."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------- html
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1180px;margin:2em auto;
padding:0 1em;color:#1f2328;line-height:1.45}
h1{font-size:1.7em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em;width:100%}
th,td{border:1px solid #d0d7de;padding:.35em .5em;vertical-align:top;text-align:left}
th{background:#f6f8fa}code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}
pre{background:#f6f8fa;padding:.7em;overflow-x:auto;border-radius:6px}
.caveat{background:#fff8c5;border:1px solid #d4a72c;padding:.7em 1em;border-radius:6px}
.verdict{font-weight:600;white-space:nowrap}.baseline{color:#57606a}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #d0d7de}
figcaption{font-size:.88em;color:#57606a}.meta{color:#57606a;font-size:.9em}
"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _code_spans(text: str) -> str:
    """Escape ``text`` and turn its `backtick` spans into <code>."""
    parts = _e(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _h_table(columns: list[str], rows: list[list[str]], raw: bool = False) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{v if raw else _e(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verdict_html(v: str | None) -> str:
    if v is None:
        return '<span class="baseline">baseline</span>'
    return f'<span class="verdict" style="color:{VERDICT_COLOURS[v]}">{_e(v)}</span>'


def to_html(results: dict, systems: list[dict], figure_dirs: dict[str, Path]) -> str:
    counts = _counts(systems)
    dev = results.get("device", {})
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>engramlab: the papers' claims, re-run</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>engramlab: the papers' claims, re-run</h1>",
        f'<p class="caveat"><strong>{_code_spans(_caveat(results, systems))}</strong></p>',
        f'<p class="meta">Mode: {_e(", ".join(sorted({MODE_WORDS[d["mode"]] for d in systems})))}. '
        f"Device: {_e(dev.get('summary', '?'))}. {_e(_times(results))} "
        f"Command: <code>{_e(results['command'])}</code>.</p>",
        "<p>Verdicts: " + ", ".join(f"{_verdict_html(v)} {n}" for v, n in counts.items()) + ".</p>",
        "<h2>Summary</h2>",
    ]
    rows = []
    for d in systems:
        for c in d["claims"]:
            rows.append(
                [
                    f"<code>{_e(c['id'])}</code>",
                    _e(c["claim"]),
                    _e(fmt_paper(c["paper"])),
                    _e(_summary_measured(c, d)),
                    _verdict_html(c["verdict"]),
                ]
            )
    parts.append(_h_table(["id", "claim", "paper reports", "measured here", "verdict"], rows, raw=True))
    for d in systems:
        means = {c["id"]: c["measured"]["mean"] for c in all_records(d)}
        parts += [
            f'<h2 id="{_e(d["system"])}">{_e(d["title"])}</h2>',
            f"<p><em>{_e(d['paper'])}</em></p>",
            f"<p><strong>The claim:</strong> {_e(d['summary'])}</p>",
            f"<p>Budget of this run ({_e(d['mode'])}): {_e(d['budget_text'])}.<br>"
            f"Full budget: {_e(d['full_budget_text'])}.</p>",
        ]
        rows = [
            [
                f"<code>{_e(c['id'])}</code>"
                + (' <span class="baseline">(baseline)</span>' if c["kind"] == "baseline" else ""),
                _e(c["claim"]),
                _e(fmt_paper(c["paper"])),
                _e(fmt_measured(c["measured"], unit=True)),
                _e(fmt_rule(c["rule"], means))
                + (
                    f'<br><span class="meta">{_e(c["rule"]["basis"])}</span>'
                    if c["rule"] and c["rule"].get("basis")
                    else ""
                ),
                _verdict_html(c["verdict"]),
                _e(fmt_budget(c["budget"])),
            ]
            for c in all_records(d)
        ]
        parts.append(
            _h_table(
                [
                    "id",
                    "claim",
                    "paper reports",
                    "measured here (mean ± half-range [min, max])",
                    "rule",
                    "verdict",
                    "budget",
                ],
                rows,
                raw=True,
            )
        )
        for t in d["tables"]:
            parts.append(f"<p><strong>{_e(t['title'])}</strong></p>")
            parts.append(
                _h_table(t["columns"], [[fmt_num(v) if not isinstance(v, str) else v for v in r] for r in t["rows"]])
            )
            if t.get("note"):
                parts.append(f'<p class="meta">{_e(t["note"])}</p>')
        for f in d["figures"]:
            data = (Path(figure_dirs[d["system"]]) / f["file"]).read_bytes()
            b64 = base64.b64encode(data).decode("ascii")
            parts.append(
                f'<figure><img alt="{_e(f["caption"])}" src="data:image/png;base64,{b64}">'
                f"<figcaption>{_e(f['caption'])}</figcaption></figure>"
            )
        if d.get("failed_units"):
            parts.append(
                "<p>Experiments that failed (their claims are not attempted): "
                + ", ".join(f"<code>{_e(u)}</code>" for u in d["failed_units"])
                + ".</p>"
            )
        if d["notes"]:
            parts.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in d["notes"]) + "</ul>")
        parts.append(f"<p>Re-run this section:</p><pre><code>{_e(d['command'])}</code></pre>")
    v = results.get("versions", {})
    parts += [
        "<h2>Environment</h2>",
        f'<p class="meta">{_e(", ".join(f"{k} {val}" for k, val in v.items()))}.</p>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(out: str | Path, results: dict, systems: list[dict], figure_dirs: dict[str, Path]) -> dict:
    """Write report.html, report.md and the PNGs beside report.md (``out/<system>/``)."""
    out = Path(out)
    for d in systems:
        dst = out / d["system"]
        src = Path(figure_dirs[d["system"]])
        for f in d["figures"]:
            if not (src / f["file"]).is_file():
                raise FileNotFoundError(f"figure {f['file']} of {d['system']} not found in {src}")
            if src.resolve() != dst.resolve():
                io.atomic_write_bytes(dst / f["file"], (src / f["file"]).read_bytes())
    io.atomic_write_text(out / "report.md", to_markdown(results, systems))
    io.atomic_write_text(out / "report.html", to_html(results, systems, figure_dirs))
    return {"html": str(out / "report.html"), "md": str(out / "report.md")}
