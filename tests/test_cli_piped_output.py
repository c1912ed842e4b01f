"""Tables printed to a pipe or a log file (`medcoder eval ... > log`) are 80 columns wide and keep every figure,
code and name whole: rich used to fit them by cutting cells (`0.64…` for a micro-F1, `stra…` for a strategy)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from medcoder.cli.output import print_table

ROOT = Path(__file__).resolve().parents[1]
NOTE = ROOT / "examples" / "aci_bench_D2N069.txt"
OTHER_NOTE = ROOT / "examples" / "aci_bench_D2N068.txt"


def _tokens(text: str) -> set[str]:
    """The words of a printed table: what stands between spaces and the box's rules."""
    return set(re.split(r"[\s\u2500-\u257f]+", text)) - {""}


def _render(width: int, *args: Any, **kwargs: Any) -> str:
    buf = io.StringIO()
    print_table(*args, console=Console(file=buf, width=width), **kwargs)
    return buf.getvalue()


EVAL_COLUMNS = ["strategy", "micro F1", "P", "R", "macro F1", "category F1", "MAP", "ECE", "s/note", "calls/note"]
EVAL_ROWS = [
    ["retrieval", "0.3102", "0.2841", "0.3417", "0.1987", "0.4476", "0.2719", "", "12.345", "0.0"],
    ["memory", "0.4118", "0.4667", "0.3684", "0.2813", "0.5294", "0.3602", "", "0.037", "0.0"],
    ["ranked-nomodel", "0.6444", "0.6591", "0.6304", "0.5122", "0.7273", "0.6019", "0.0412", "8.148", "0.0"],
    ["ranked", "0.6512", "0.6667", "0.6364", "0.5349", "0.7381", "0.6120", "0.0388", "151.902", "14.25"],
]


def test_a_wide_table_at_80_columns_is_split_not_cut() -> None:
    out = _render(80, EVAL_COLUMNS, EVAL_ROWS, "jsonl/valid/icd10cm")
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    words = _tokens(out)
    for row in EVAL_ROWS:
        assert {cell for cell in row if cell} <= words, row
    # the continuation repeats each row's strategy, so every figure can be read against its name
    assert "jsonl/valid/icd10cm (continued)" in out and out.count("ranked-nomodel") == 2
    # a terminal wide enough gets the one table, headers on one line
    wide = _render(200, EVAL_COLUMNS, EVAL_ROWS, "jsonl/valid/icd10cm")
    assert "(continued)" not in wide and "category F1" in wide and "…" not in wide


def test_text_wraps_and_cells_are_never_read_as_markup() -> None:
    label = "Type 2 diabetes mellitus with diabetic chronic kidney disease, code first [E11.22] underlying"
    rows = [
        ["E11.22", label, "0.9731", "[bold]lexical#1[/]"],
        ["N18.30", "Chronic kidney disease, stage 3", "0.25", ""],
    ]
    out = _render(40, ["code", "label", "score", "sources"], rows)
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 40
    assert {"E11.22", "N18.30", "0.9731", "0.25", "[E11.22]", "[bold]lexical#1[/]"} <= _tokens(out)
    assert set(label.split()) <= _tokens(out)  # wrapped at its spaces, every word kept


# one process runs every command (the knowledge base and the ranker load once); its stdout is a pipe
_DRIVER = """
import json, sys
from medcoder.cli import main
for args in json.loads(sys.argv[1]):
    print("=== " + args[0], flush=True)
    main(args, standalone_mode=False)
    sys.stdout.flush()
"""


@pytest.mark.slow
def test_code_and_eval_through_a_pipe_keep_every_figure_whole(tmp_path: Path) -> None:
    from medcoder import audit
    from medcoder.notetext import apart, read_note, snippet

    notes = tmp_path / "notes.jsonl"
    with notes.open("w") as fh:
        fh.write(json.dumps({"id": "D2N069", "text": NOTE.read_text(), "codes": ["S83.8X1A", "I48.91", "M25.561"]}))
        fh.write("\n" + json.dumps({"id": "D2N068", "text": OTHER_NOTE.read_text(), "codes": ["I50.9", "I10"]}) + "\n")
    out_dir = tmp_path / "ev"
    run_id = f"piped-{time.time_ns()}"
    commands = [
        ["code", str(NOTE), "-w", "icd10cm-nomodel", "--run-id", run_id],
        ["eval", "-d", str(notes), "--strategy", "ranked-nomodel", "--strategy", "memory", "--out", str(out_dir)],
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE")}
    proc = subprocess.run(
        [sys.executable, "-c", _DRIVER, json.dumps(commands)],
        stdin=subprocess.DEVNULL,  # no terminal anywhere: rich would take a terminal's width from stdin too
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table, evaluation = proc.stdout.split("=== ")[1:]
    for printed in (table, evaluation):  # the tables' lines; a sentence after a table may run on, uncut
        assert max(len(line) for line in printed.splitlines() if re.search("[\u2500-\u257f]", line)) <= 80, printed

    result = audit.open(None).run(run_id).result  # what `--format json` prints, as the audit store keeps it
    assert result is not None and result["codes"], "the note codes to something"
    words = _tokens(table)
    note = read_note(NOTE.read_bytes(), 10**9)
    ellipses = 0  # the evidence snippets' own, where the note goes on; rich adds none
    for c in result["codes"]:
        assert {c["code"], c["system"], f"{c['confidence']:.2f}", c["verdict"]["decision"]} <= words, table
        assert set(c["label"].split()) <= words, table
        shown = [c["evidence"][i] for i in apart((e["start"], e["end"]) for e in c["evidence"])]
        for e in shown:
            before, _span, after = snippet(note, e["start"], e["end"])
            ellipses += (before + after).count("…")
    assert table.count("…") == ellipses, table
    assert f"medcoder audit show {run_id}" in " ".join(table.split())

    report = json.loads((out_dir / "eval.json").read_text())
    words = _tokens(evaluation)
    assert "…" not in evaluation, evaluation
    for strategy, m in report["metrics"].items():
        figures = [
            m["micro"]["f1"],
            m["micro"]["precision"],
            m["micro"]["recall"],
            m["macro"]["f1"],
            m["category_micro"]["f1"],
            m["map"],
            (m.get("calibration") or {}).get("ece", ""),
            m["cost_per_note"]["seconds"],
            m["cost_per_note"]["model_calls"],
        ]
        assert {strategy, *(str(f) for f in figures if f != "")} <= words, (strategy, figures, evaluation)
