"""Report rendering: number formats, rule text, escaping, self-contained HTML, markdown with files beside it."""

from __future__ import annotations

import base64

from engramlab import io
from engramlab.report import claims as cl
from engramlab.report.render import fmt_measured, fmt_rule, to_html, write_report


def test_measured_text_is_mean_half_range_and_runs():
    m = cl.summarize([0.251, 0.247, 0.262], "fraction")
    assert fmt_measured(m) == "0.2533 ± 0.0075 [0.247, 0.262]; 3 runs"
    assert fmt_measured(m, unit=True) == "0.2533 ± 0.0075 [0.247, 0.262] (fraction); 3 runs"
    assert fmt_measured(cl.summarize([2.0, None], "u")) == "2.0; 1 run of 2"
    assert fmt_measured(cl.summarize([], "u", note="not measured (x)")).startswith("not measured")


def test_rule_text_resolves_the_other_claim():
    rule = {"op": "<=", "other": "bdh.gpt_val_loss", "margin": 0.032, "partly": 0.1}
    assert fmt_rule(rule, {"bdh.gpt_val_loss": 2.0}) == (
        "≤ bdh.gpt_val_loss + 0.032 (= 2.032); partly ≤ bdh.gpt_val_loss + 0.1 (= 2.1)"
    )
    assert fmt_rule({"op": ">=", "other": "a.b", "margin": -0.01}, {"a.b": None}) == "≥ a.b − 0.01"
    assert fmt_rule({"op": "<", "value": 1.0, "partly": 3.0}, {}) == "< 1.0; partly < 3.0"
    assert fmt_rule(None, {}) == "baseline (no rule)"


def _png(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    io.save_figure(fig, path, dpi=20)


def _doc(tmp_path):
    rec = {
        "id": "bdh.x",
        "system": "bdh",
        "kind": "claim",
        "claim": "a <script>alert(1)</script> claim",
        "source": "s",
        "paper": {"value": None, "text": "t & u"},
        "measured": cl.summarize([1.0, 3.0], "u"),
        "rule": {"op": "<", "value": 2.5, "basis": "b"},
        "verdict": "agrees",
        "budget": {"device": "cpu", "seconds": 12.3, "steps": 10},
        "command": "c",
        "figures": ["f.png"],
    }
    doc = {
        "schema_version": cl.SCHEMA_VERSION,
        "system": "bdh",
        "title": "BDH",
        "paper": "p",
        "summary": "s",
        "mode": "quick",
        "budget_text": "small",
        "full_budget_text": "large",
        "command": "engramlab reproduce c",
        "claims": [rec],
        "baselines": [
            {**rec, "id": "bdh.y", "kind": "baseline", "claim": "a reference", "rule": None, "verdict": None}
        ],
        "figures": [{"file": "f.png", "caption": "a figure"}],
        "tables": [{"title": "T", "columns": ["a", "b"], "rows": [["x", 0.5]]}],
        "notes": ["n"],
        "wall_s": 1.0,
        "device": "cpu",
        "config": {},
    }
    cl.validate_system(doc)
    (tmp_path / "src").mkdir()
    _png(tmp_path / "src" / "f.png")
    results = {
        "command": "engramlab reproduce --quick --out x",
        "wall_s": 3.0,
        "device": {"summary": "CPU"},
        "versions": {"torch": "2"},
    }
    return results, doc


def test_html_escapes_embeds_and_needs_nothing_else(tmp_path):
    results, doc = _doc(tmp_path)
    html = to_html(results, [doc], {"bdh": tmp_path / "src"})
    assert "<script>" not in html and "&lt;script&gt;" in html and "t &amp; u" in html
    b64 = base64.b64encode((tmp_path / "src" / "f.png").read_bytes()).decode()
    assert f'src="data:image/png;base64,{b64}"' in html
    assert "small budget" in html and "quick mode" in html


def test_write_report_puts_the_figures_beside_the_markdown(tmp_path):
    results, doc = _doc(tmp_path)
    write_report(tmp_path / "out", results, [doc], {"bdh": tmp_path / "src"})
    md = (tmp_path / "out" / "report.md").read_text()
    assert "![a figure](bdh/f.png)" in md and (tmp_path / "out" / "bdh" / "f.png").is_file()
    assert "| `bdh.x` |" in md and "**agrees**" in md and "engramlab reproduce c" in md
    assert "| `bdh.y` (baseline) |" in md  # the baselines are listed beside the claims
