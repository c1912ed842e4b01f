"""Tampering with a recorded run is always detected, naming the first bad event; what medcoder keeps at rest is
owner-only, never logged, and with store_note=False holds no sentence of the note anywhere under the home."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from tests.reliability import harness

SECRET = "Patient Zebulon Quixote-Farnsworth of 42 Wallaby Way reports chest pain"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medcoder.audit.store import SQLiteAuditStore
    from medcoder.engine.workflow import load_workflow

    tmp = tmp_path_factory.mktemp("tamper")
    # full-tree: a workflow that prompts the model, so the record holds prompt blobs to tamper with
    with load_workflow("full-tree", model="fake", audit=SQLiteAuditStore(tmp / "a.sqlite"),
                       checkpoint_path=tmp / "c.sqlite") as wf:
        wf.run(harness.NOTE_TEMPLATE.format(i=1) + " " * 250 + "padding so prompts hold blobs", run_id="r1")
        wf.run(harness.NOTE_TEMPLATE.format(i=2), run_id="r1-other")
    return tmp / "a.sqlite"


def test_every_kind_of_tampering_is_detected_with_the_first_bad_event_named(recorded: Path, tmp_path: Path) -> None:
    fig = harness.tamper_campaign(recorded, "r1", tmp_path, positions=4)
    assert fig.faults >= 30
    assert fig.unclear == [] and fig.detected == fig.faults


def test_moving_an_event_into_another_run_is_detected_in_both(recorded: Path, tmp_path: Path) -> None:
    import shutil
    import sqlite3

    from medcoder.audit.store import SQLiteAuditStore

    copy = tmp_path / "moved.sqlite"
    shutil.copy(recorded, copy)
    conn = sqlite3.connect(copy)
    n = conn.execute("SELECT MAX(seq) FROM events WHERE run_id = 'r1-other'").fetchone()[0]
    conn.execute("UPDATE events SET run_id = 'r1-other', seq = ? WHERE run_id = 'r1' AND seq = 3", (n + 1,))
    conn.commit()
    conn.close()
    store = SQLiteAuditStore(copy)
    assert not store.verify("r1").ok and store.verify("r1").first_bad == 3
    assert not store.verify("r1-other").ok
    store.close()


def test_home_and_stores_are_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    proc = harness.medcoder(["code", "-m", "fake", "-w", "full", "-"], home, stdin=b"Assessment: asthma.")
    assert proc.returncode == 0, proc.stderr.decode()[-500:]
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("audit.sqlite", "checkpoints.sqlite"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    for extra in home.glob("*.sqlite-*"):
        assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra


def test_note_text_never_reaches_the_log(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    from medcoder.engine.workflow import load_workflow

    caplog.set_level(logging.DEBUG)
    with load_workflow("full", model="fake", checkpoint_path=tmp_path / "c.sqlite",
                       audit=False) as wf:
        wf.run(f"{SECRET}. Assessment: angina. Plan: aspirin 81 mg daily.")
    assert "Quixote" not in caplog.text and "Wallaby" not in caplog.text


def test_store_note_false_leaves_no_note_text_under_the_home(tmp_path: Path) -> None:
    from medcoder.audit.store import SQLiteAuditStore
    from medcoder.engine.workflow import load_workflow

    home = tmp_path / "home"
    home.mkdir()
    old = os.environ.get("MEDCODER_HOME")
    os.environ["MEDCODER_HOME"] = str(home)
    try:
        note = f"{SECRET} since this morning. Assessment: angina pectoris and type 2 diabetes mellitus. " \
               "Plan: aspirin 81 mg daily, metformin 500 mg twice daily."
        with load_workflow("full", model="fake", store_note=False) as wf:
            result = wf.run(note, run_id="private")
            assert result.codes  # it still codes
        store = SQLiteAuditStore(home / "audit.sqlite")
        assert store.verify("private").ok and store.run("private").note is None
        store.close()
    finally:
        os.environ.pop("MEDCODER_HOME") if old is None else os.environ.__setitem__("MEDCODER_HOME", old)
    leaked = []
    for f in home.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            for piece in ("Quixote", "Wallaby", "since this morning"):
                if piece.encode() in data:
                    leaked.append((f.name, piece))
    assert leaked == []
