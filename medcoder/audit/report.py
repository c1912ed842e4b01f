"""A run as one self-contained HTML page: the note with each code's evidence highlighted, the path
through the tree with the options and their probabilities at each level, the critic's
verdict, timings and token counts. No scripts, no external files."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

from medcoder.audit.events import tally
from medcoder.audit.store import AuditStore
from medcoder.notetext import segments

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.4rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.meta td{padding:2px 10px 2px 0;color:#444} .ok{color:#17803d;font-weight:600} .bad{color:#b42318;font-weight:600}
pre.note{white-space:pre-wrap;background:#fafafa;border:1px solid #e5e5e5;padding:1rem;line-height:1.5}
mark{background:#ffe58a;padding:0 1px;border-radius:2px} mark.atc{background:#b9e6ff}
.code{border:1px solid #e5e5e5;border-radius:6px;padding:.8rem 1rem;margin:1rem 0}
.code h3{margin:.1rem 0 .5rem;font-size:1.05rem} .pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:.8rem}
.accept{background:#dcfce7} .reject,.revise{background:#fee2e2}
table.steps{border-collapse:collapse;width:100%;font-size:.85rem;margin:.3rem 0 .8rem}
table.steps td{padding:1px 6px;border-bottom:1px solid #f0f0f0}
.bar{height:9px;background:#6b8afd;border-radius:3px} .chosen td{font-weight:600}
table.grid{border-collapse:collapse;font-size:.85rem} table.grid td,table.grid th{padding:3px 8px;border:1px solid #e5e5e5}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _highlight(note: str, codes: list[dict[str, Any]]) -> str:
    spans = [
        (ev.get("start"), ev.get("end"), (f"{c['code']} {c['label']}", c["system"]))
        for c in codes
        for ev in c["evidence"]
    ]
    out = []
    for seg in segments(note, spans):
        text = _e(seg.text)
        if seg.covers:
            title = _e("; ".join(title for title, _ in seg.covers))
            out.append(f'<mark class="{seg.covers[0][1]}" title="{title}">{text}</mark>')
        else:
            out.append(text)
    return "".join(out)


def _steps(code: dict[str, Any]) -> str:
    """How the code was reached, whatever the step kind: a navigator's choice among options ("at"), the ranker's
    features that moved its score most ("ranker"), or a guideline that re-specified it ("guideline")."""
    rows = []
    for step in code.get("steps") or []:
        if "at" in step:
            rows.append(f'<tr><td colspan="3"><b>at {_e(step["at"])}</b></td></tr>')
            for opt in step.get("options", []):
                chosen = ' class="chosen"' if opt["code"] in code.get("path", []) else ""
                width = max(1, int(opt["p"] * 200))
                rows.append(
                    f"<tr{chosen}><td>{_e(opt['code'])}</td><td>{_e(opt['label'])}</td>"
                    f'<td><div class="bar" style="width:{width}px"></div>{opt["p"]:.3f}</td></tr>'
                )
        elif "ranker" in step:
            rows.append('<tr><td colspan="3"><b>ranker: the features that moved its score most</b></td></tr>')
            for c in step["ranker"]:
                rows.append(
                    f"<tr><td>{_e(c.get('feature'))}</td><td>{_e(c.get('value'))}</td>"
                    f"<td>{float(c.get('effect') or 0.0):+.3f}</td></tr>"
                )
        elif "guideline" in step:
            rows.append(
                f'<tr><td colspan="3"><b>guideline {_e(step["guideline"])}</b> from {_e(step.get("from"))}: '
                f"{_e(step.get('reason'))}</td></tr>"
            )
    return f'<table class="steps">{"".join(rows)}</table>' if rows else "<p>(no choices recorded)</p>"


def render_run(store: AuditStore, run_id: str) -> str:
    """The HTML report of one run."""
    info = store.run(run_id)
    check = store.verify(info.run_id)
    events = list(store.events(info.run_id))
    result = info.result or {"codes": [], "rejected": []}
    totals = tally(events)
    node_seconds, tokens, entities = totals.node_seconds, totals.tokens(), totals.entities
    models = info.settings.get("models", {})
    created = datetime.fromtimestamp(info.created, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    chain = (
        f'<span class="ok">verified: {check.events} events, hash chain intact</span>'
        if check.ok
        else f'<span class="bad">TAMPERED: {_e(check.reason)}</span>'
    )
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>medcoder run {_e(info.run_id)}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>medcoder run {_e(info.run_id)}</h1><table class='meta'>"
        f"<tr><td>workflow</td><td>{_e(info.workflow)} (spec sha256 {_e(info.spec_hash[:16])})</td></tr>"
        f"<tr><td>created</td><td>{created}, status {_e(info.status)}</td></tr>"
        + "".join(
            f"<tr><td>model {_e(n)}</td><td>{_e(m.get('name'))} sha256 {_e(str(m.get('sha256'))[:16])}</td></tr>"
            for n, m in models.items()
        )
        + f"<tr><td>audit trail</td><td>{chain}</td></tr>"
        f"<tr><td>note sha256</td><td>{_e(info.note_digest)}</td></tr></table>",
    ]
    parts.append("<h2>Note and evidence</h2>")
    parts.append(
        f'<pre class="note">{_highlight(info.note, result["codes"])}</pre>'
        if info.note is not None
        else "<p>The note itself was not stored (digest only).</p>"
    )
    parts.append(f"<h2>Codes ({len(result['codes'])})</h2>")
    for c in result["codes"]:
        v = c.get("verdict", {})
        decision = v.get("decision", "accept")
        reasons = "".join(f"<li>{_e(r)}</li>" for r in v.get("reasons", []))
        reminders = "".join(f"<li>{_e(r)}</li>" for r in v.get("reminders", []))
        evidence = " | ".join(f'"{_e(e["text"])}" [{e["start"]}:{e["end"]}]' for e in c["evidence"])
        parts.append(
            f'<div class="code"><h3>{_e(c["code"])} {_e(c["label"])} <span class="pill {decision}">{_e(decision)}'
            f"</span></h3><div>{_e(c['system'])}, confidence {c['confidence']:.3f}; path "
            f"{_e(' > '.join(c['path']))}</div><div>evidence: {evidence}</div>"
            f"<div>critic: <ul>{reasons}</ul>{('reminders: <ul>' + reminders + '</ul>') if reminders else ''}"
            f"{('p(supported) = %.3f' % v['support']) if 'support' in v else ''}</div>"
            f"<details open><summary>choices along the path</summary>{_steps(c)}</details></div>"
        )
    if result.get("rejected"):
        parts.append(
            "<h2>Rejected proposals</h2><table class='grid'><tr><th>code</th><th>decision</th>"
            "<th>reasons</th></tr>"
            + "".join(
                f"<tr><td>{_e(r['code'])}</td><td>{_e(r['verdict'].get('decision'))}</td>"
                f"<td>{_e('; '.join(r['verdict'].get('reasons', [])))}</td></tr>"
                for r in result["rejected"]
            )
            + "</table>"
        )
    if entities:
        parts.append(
            "<h2>Entities</h2><table class='grid'><tr><th>kind</th><th>mention</th><th>assertion</th>"
            "<th>offsets</th></tr>"
            + "".join(
                f"<tr><td>{_e(e['kind'])}</td><td>{_e(e['mention'])}</td><td>{_e(e['assertion'])}</td>"
                f"<td>{e['start']}-{e['end']}</td></tr>"
                for e in entities
            )
            + "</table>"
        )
    parts.append(
        "<h2>Timings and tokens</h2><table class='grid'><tr><th>node</th><th>seconds</th></tr>"
        + "".join(f"<tr><td>{_e(n)}</td><td>{s:.2f}</td></tr>" for n, s in node_seconds.items())
        + "</table><p>"
        f"{tokens['calls']} model calls, {tokens['prompt']} prompt tokens ({tokens['cached']} reused from "
        f"the cached prefix), {tokens['completion']} completion tokens, "
        f"{tokens['model_seconds']:.1f} s in the model.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)
