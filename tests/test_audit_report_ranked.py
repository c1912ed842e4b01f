"""The HTML audit report of a ranked run (the workflows that code today), on the real stack: `medcoder code` with
the no-model visit workflow writes to a real SQLite audit store, and `medcoder audit report --html` shows each
code's ranker features (it used to stop with KeyError 'at', expecting only the tree navigator's choices)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from medcoder.cli import main

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "aci_bench_D2N069.txt"


def test_the_html_report_of_a_ranked_run_shows_the_ranker_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDCODER_HOME", str(tmp_path))
    res = CliRunner().invoke(main, ["code", str(EXAMPLE), "-w", "icd10cm-nomodel", "--run-id", "ranked-1"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "report.html"
    res = CliRunner().invoke(main, ["audit", "report", "ranked-1", "--html", "-o", str(out)])
    assert res.exit_code == 0, res.output
    page = out.read_text(encoding="utf-8")
    assert "S83.8X1A" in page and "ranker: the features that moved its score most" in page
    assert "hash chain intact" in page
