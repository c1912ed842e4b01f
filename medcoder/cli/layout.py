"""`medcoder layout NOTE`: how medcoder reads a note's layout (visit or case report, each sentence's part)."""

from __future__ import annotations

import click

from medcoder.cli.coding import _read_input
from medcoder.cli.output import emit_json, emit_pairs, emit_table
from medcoder.notetext import read_note


@click.command("layout")
@click.argument("note")
@click.option("--json", "as_json", is_flag=True, help="The layout as JSON (every sentence with offsets).")
def layout_command(note: str, as_json: bool) -> None:
    """Show how NOTE (a file, or - for stdin) is read: visit note, case report or conversation, each sentence's
    visit part and what decided it (a header, the learned classifier, the conversation), the problems stated."""
    from medcoder.visit import read_layout  # deferred: CLI start-up (`medcoder --help` < 1 s)

    text = read_note(_read_input(note), 10_000_000)
    layout = read_layout(text)
    rows = [
        {
            "start": s.start,
            "end": s.end,
            "part": s.part,
            "source": s.source,
            "confidence": s.confidence,
            "read as": s.read,
            "sentence": s.text,
        }
        for s in layout.sentences
    ]
    if as_json:
        emit_json({**layout.summary(), "sentences": rows})
        return
    emit_pairs(list(layout.summary().items()), title="layout")
    for row, s in zip(rows, layout.sentences):
        row["sentence"] = (s.text[:90] + "…") if len(s.text) > 90 else s.text
        row["confidence"] = f"{s.confidence:.2f}"
    emit_table(rows, ["start", "part", "source", "confidence", "sentence"], title="sentences")
