"""The workspace learns from its coders, on the real stack: 30 notes coded through the workspace API by the
no-model workflow, a coder who always rejects one wrong code and adds the one the site uses instead, then
`medcoder learn --from-workspace`: the report finds the new ranker better on the held-back notes, and once
adopted the next note ranks the rejected code lower and the added one higher; every note's audit trail names
the ranker that coded it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from medcoder import load_workflow  # noqa: E402
from medcoder.audit.store import SQLiteAuditStore  # noqa: E402
from medcoder.ranking.cards import ranker_card  # noqa: E402
from medcoder.ranking.folders import ranker_folder  # noqa: E402
from medcoder.web import Workspace  # noqa: E402
from medcoder.web.app import create_app  # noqa: E402
from medcoder.web.security import Guard  # noqa: E402
from medcoder.web.worklist import Worklist  # noqa: E402

pytestmark = pytest.mark.slow

WRONG, RIGHT = "F17.200", "F17.201"  # nicotine dependence, but "quit ten years ago": in remission
OTHERS = [
    ("She has had heartburn after meals for months.", "Gastroesophageal reflux."),
    ("She reports feeling tired all the time.", "Fatigue."),
    ("Essential hypertension is controlled on lisinopril.", "Hypertension, controlled."),
    ("She has type 2 diabetes mellitus treated with metformin.", "Type 2 diabetes."),
    ("He reports chronic low back pain for years.", "Chronic low back pain."),
]


def _note(i: int) -> str:
    finding, assessment = OTHERS[i % len(OTHERS)]
    return (
        f"CHIEF COMPLAINT\nFollow-up visit.\n\nHISTORY OF PRESENT ILLNESS\nA {40 + i}-year-old patient returns for "
        f"follow-up. {finding} He quit smoking ten years ago.\n\n"
        f"ASSESSMENT AND PLAN\n{assessment} Nicotine dependence.\n"
    )


def _probabilities(out: str) -> dict[str, float]:
    data = json.loads(out)
    return {c["code"]: c["confidence"] for c in [*data["suggestions"], *data["codes"]]}


def test_the_workspace_relearns_from_its_coders_and_the_next_note_shows_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "MEDCODER_HOME": str(home)}

    def medcoder(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "medcoder", *args], capture_output=True, text=True, env=env,
                             timeout=1200)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout

    wf = load_workflow("icd10cm-nomodel", checkpoint_path=home / "checkpoints.sqlite",
                       audit=SQLiteAuditStore(home / "audit.sqlite"))
    ws = Workspace(wf, worklist=Worklist(home / "workspace.sqlite"))
    shipped = ranker_card(ranker_folder("icd10cm", "shipped"))
    try:
        client = TestClient(create_app(ws, Guard()), base_url="http://127.0.0.1")
        ids, wrong = [], 0
        for i in range(30):
            r = client.post("/api/items", json={"text": _note(i), "title": f"visit {i}"})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        for item_id in ids:
            assert ws.coder.wait(item_id, timeout=600).state == "ready", ws.item(item_id)
            view = client.get(f"/api/sessions/{item_id}").json()
            assert [r["digest"] for r in view["rankers"]] == [shipped.digest]  # the ranker that coded it
            codes = {c["code"] for c in view["codes"]}
            assert RIGHT not in codes  # the shipped ranker does not see "in remission" in "quit ten years ago"
            wrong += WRONG in codes
            decide = [{"action": "reject", "code": WRONG, "reason": "quit ten years ago: in remission"}] * (
                WRONG in codes) + [{"action": "add", "code": RIGHT, "reason": "quit ten years ago"}]
            decide += [{"action": "accept", "code": c} for c in sorted(codes - {WRONG})]
            for d in decide:
                assert client.post(f"/api/sessions/{item_id}/decisions", json=d).status_code == 200
            assert client.post(f"/api/sessions/{item_id}/finish", json={}).status_code == 200
        assert wrong >= 20, "the shipped ranker codes current dependence in most of the notes"
    finally:
        ws.close()

    new = tmp_path / "site-ranker"
    out = medcoder("learn", "--from-workspace", "--out", str(new), "--folds", "3")
    report = json.loads((new / "report.json").read_text())
    assert report["site_notes"] == 30 and len(report["held_back"]) == 9
    assert report["after"]["map"] > report["before"]["map"], report["verdict"]
    assert report["after"]["micro"]["f1"] > report["before"]["micro"]["f1"]
    assert report["not_worse"] and not report["adopted"] and "not adopted (not asked)" in out
    html = (new / "report.html").read_text()
    assert "reliability diagram" in html and "F1 per chapter" in html

    note = tmp_path / "next.txt"
    note.write_text(_note(31))
    before = _probabilities(medcoder("code", str(note), "-w", "icd10cm-nomodel", "--format", "json"))
    medcoder("rankers", "use", str(new))
    coded = json.loads(medcoder("code", str(note), "-w", "icd10cm-nomodel", "--format", "json"))
    after = _probabilities(json.dumps(coded))
    assert after.get(WRONG, 0.0) < before[WRONG] and after.get(RIGHT, 0.0) > before.get(RIGHT, 0.0), (before, after)
    events = SQLiteAuditStore(home / "audit.sqlite").events(coded["run_id"])
    assert [ev.payload["ranker"]["digest"] for ev in events if ev.kind == "ranked"] == [ranker_card(new).digest]
