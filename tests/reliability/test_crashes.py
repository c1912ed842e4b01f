"""Kills at seeded moments (a model call, an output append, an audit write, a session decision, an eval append):
after a restart nothing is lost, nothing is duplicated, every line parses and every finished chain verifies."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import harness

pytestmark = pytest.mark.slow


def test_batch_killed_ten_times_codes_every_note_exactly_once(tmp_path: Path) -> None:
    fig = harness.crash_batch(tmp_path, seed=15, kills=10, notes=6)
    assert fig.faults == 10, fig
    assert {p.split(":")[0] for p in fig.extra["killed_at"]} == set(harness.BATCH_POINTS)
    assert fig.unclear == []
    assert (fig.lost, fig.duplicated, fig.invalid_lines) == (0, 0, 0), fig
    assert fig.chains >= 6 and fig.chains_ok == fig.chains, fig


def test_a_session_killed_during_a_decision_resumes_with_every_decision_recorded_once(tmp_path: Path) -> None:
    fig = harness.crash_session(tmp_path, kills=2)
    assert fig.faults == 2, fig
    assert fig.unclear == []
    assert fig.duplicated == 0
    assert fig.extra["recovered"] >= 1  # the decision the kill cut off before its audit event was recorded on reopen
    assert fig.chains_ok == 1


def test_eval_killed_while_appending_resumes_with_the_same_metrics(tmp_path: Path) -> None:
    # six made-up products in the Drug Product Database layout (brand names invented, ATC codes real)
    fig = harness.crash_eval(tmp_path, Path(__file__).parents[1] / "data" / "drug_products_tiny.tsv", kills=2, limit=4)
    assert fig.faults == 2, fig
    assert fig.extra["same_metrics"]
    assert (fig.lost, fig.duplicated) == (0, 0)


def test_a_torn_line_is_cut_and_an_append_fault_leaves_a_valid_file(tmp_path: Path) -> None:
    from medcoder import jsonl

    out = tmp_path / "x.jsonl"
    out.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "te')
    jsonl.repair_tail(out)
    assert [r["id"] for r in jsonl.read_rows(out)] == ["a", "b"]
    out.write_bytes(b'{"id": "only", "torn')  # a first line torn: nothing kept
    jsonl.repair_tail(out)
    assert out.read_bytes() == b""
