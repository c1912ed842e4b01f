"""The web workspace through FastAPI's test client: the real workflow, model, ChromaDB and audit store behind
the API and pages; decisions, exports, the audit story, two tabs, bad notes, and the safety rules."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.web_support import HOSTILE_NOTE, ROOT, fhir_codes

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from medcoder.audit.events import DECISION  # noqa: E402
from medcoder.batch import code_batch  # noqa: E402
from medcoder.web.app import create_app  # noqa: E402
from medcoder.web.security import Guard  # noqa: E402


def _client(ws: Any, token: str | None = None, host: str = "127.0.0.1") -> TestClient:
    return TestClient(create_app(ws, Guard(token=token)), base_url=f"http://{host}", follow_redirects=False)


def _csrf(client: TestClient) -> str:
    """The app's CSRF token, which its pages put in every form."""
    app: Any = client.app  # the FastAPI app (TestClient types it as any ASGI callable)
    return str(app.state.guard.csrf)


def _coded(client: TestClient, ws: Any, text: str) -> str:
    r = client.post("/api/items", json={"text": text})
    assert r.status_code == 202, r.text
    item_id = r.json()["id"]
    assert ws.coder.wait(item_id, timeout=600).state == "ready", ws.item(item_id)
    return item_id


def _decisions(ws: Any, item_id: str) -> list[dict[str, Any]]:
    return [ev.payload for ev in ws.workflow.audit.events(item_id) if ev.kind == DECISION]


@pytest.fixture(scope="module")
def coded(web_workspace: Any) -> tuple[TestClient, str]:
    client = _client(web_workspace)
    return client, _coded(client, web_workspace, HOSTILE_NOTE)


def test_a_pasted_note_is_coded_reviewed_exported_and_audited(coded: tuple[TestClient, str],
                                                               web_workspace: Any) -> None:
    client, item_id = coded
    view = client.get(f"/api/sessions/{item_id}").json()
    # the note comes back whole, cut where evidence begins and ends; every code's evidence is highlighted
    assert "".join(s["text"] for s in view["segments"]) == HOSTILE_NOTE
    ranked = [c for c in view["codes"] if c["origin"] == "medcoder"]
    assert len(ranked) >= 2 and [c["confidence"] for c in ranked] == sorted((c["confidence"] for c in ranked),
                                                                             reverse=True)
    for c in ranked:
        for ev in c["evidence"]:
            assert any(c["key"] in s["codes"] and ev["start"] <= s["start"] < ev["end"] for s in view["segments"])
    assert view["version"] == 0 and view["counts"]["proposed"] == len(view["codes"])
    # the page: everything escaped, nothing from the note can run, only the package's script is allowed
    page = client.get(f"/sessions/{item_id}")
    assert page.status_code == 200
    assert "<script>window" not in page.text and "<img" not in page.text and "&lt;script&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.text.count("<script") == 1  # /static/app.js

    first, second = ranked[0]["code"], ranked[1]["code"]
    assert client.post(f"/api/sessions/{item_id}/decisions", json={"action": "accept", "code": first,
                                                                    "version": 0}).status_code == 200
    no_reason = client.post(f"/api/sessions/{item_id}/decisions", json={"action": "reject", "code": second})
    assert no_reason.status_code == 422 and "why" in no_reason.json()["detail"]
    view = client.post(f"/api/sessions/{item_id}/decisions", json={"action": "reject", "code": second, "version": 1,
                                                                   "reason": "not documented as current"}).json()
    hits = client.post("/api/search", json={"text": "gout of the knee", "k": 5}).json()
    assert hits and all({"code", "label", "score"} <= set(h) for h in hits)
    added = next(h["code"] for h in hits if h["code"] not in {c["code"] for c in view["codes"]})
    view = client.post(f"/api/sessions/{item_id}/decisions", json={"action": "add", "code": added, "version": 2,
                                                                   "reason": "found by search"}).json()
    assert view["version"] == 3
    assert {c["code"]: c["status"] for c in view["codes"]}[added] == "accepted"
    bad = client.post(f"/api/sessions/{item_id}/decisions", json={"action": "add", "code": "Q99.999"})
    assert bad.status_code == 422 and "not a icd10cm code" in bad.json()["detail"]

    why = client.get(f"/api/sessions/{item_id}/why/{first}").json()
    assert why["evidence"] and why["audit_events"] and why["code"] == first
    fhir = json.loads(client.post(f"/api/sessions/{item_id}/export", json={"format": "fhir"}).text)
    assert fhir["resourceType"] == "Bundle" and fhir_codes(fhir) == {first, added}
    csv_text = client.post(f"/api/sessions/{item_id}/export", json={"format": "csv"}).text
    assert first in csv_text and second not in csv_text.split("\n", 1)[1]
    form = client.post(f"/sessions/{item_id}/export", data={"format": "json", "csrf_token": _csrf(client)})
    assert form.status_code == 200 and "attachment" in form.headers["content-disposition"]

    # the audit store holds exactly those decisions, and the chain verifies
    assert [(d["action"], d["code"]) for d in _decisions(web_workspace, item_id)] == [
        ("accept", first), ("reject", second), ("add", added)]
    assert web_workspace.workflow.audit.verify(item_id).ok
    story = client.get(f"/api/runs/{item_id}/audit").json()
    assert story["verified"]["ok"] and [c["title"] for c in story["chapters"]] == ["Coding run", "Review"]
    audit_page = client.get(f"/runs/{item_id}/audit").text
    assert "Hash chain verified" in audit_page and "not documented as current" in audit_page

    items = client.get("/api/items").json()
    row = next(i for i in items if i["id"] == item_id)
    assert row["status"] == "in progress" and row["counts"] == {"proposed": len(ranked) - 2, "accepted": 2,
                                                                "rejected": 1}
    assert [i["id"] for i in client.post("/api/items/search", json={"q": "lisinopril"}).json()] == [item_id]
    assert client.post("/api/items/search", json={"q": "no such words anywhere"}).json() == []
    assert item_id in {i["id"] for i in client.get("/api/items", params={"status": "in progress"}).json()}


def test_two_tabs_deciding_on_one_session_lose_no_decision(nomodel_workspace: Any) -> None:
    client = _client(nomodel_workspace)
    item_id = _coded(client, nomodel_workspace, "Essential hypertension. Type 2 diabetes mellitus. Gout of the knee. "
                                                "Asthma, mild intermittent. Hyperlipidemia.")
    view = client.get(f"/api/sessions/{item_id}").json()
    codes = [c["code"] for c in view["codes"]] + [s["code"] for s in view["suggestions"]]
    assert len(codes) >= 4
    listed = [c["code"] for c in view["codes"]]
    # both tabs loaded version 0; each decides on other codes at the same moment: every decision stands
    targets = listed[:2] + [c for c in codes if c not in listed][:2]
    results: list[int] = []

    def tab(code: str) -> None:
        action = "accept" if code in listed else "add"
        r = client.post(f"/api/sessions/{item_id}/decisions", json={"action": action, "code": code, "version": 0})
        results.append(r.status_code)

    threads = [threading.Thread(target=tab, args=(c,)) for c in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * len(targets)
    # a tab that saw version 0 now rejects a code another tab accepted: refused, the accept stands
    r = client.post(f"/api/sessions/{item_id}/decisions", json={"action": "reject", "code": listed[0], "version": 0,
                                                                "reason": "stale tab"})
    assert r.status_code == 409 and r.json()["version"] == len(targets)
    decided = _decisions(nomodel_workspace, item_id)
    assert sorted(d["code"] for d in decided) == sorted(targets) and len(decided) == len(targets)
    assert {c["code"]: c["status"] for c in client.get(f"/api/sessions/{item_id}").json()["codes"]}[listed[0]] == \
        "accepted"
    assert nomodel_workspace.workflow.audit.verify(item_id).ok


def test_safe_by_default(nomodel_workspace: Any, caplog: pytest.LogCaptureFixture) -> None:
    client = _client(nomodel_workspace)
    csrf = _csrf(client)
    # only loopback names on a loopback server without a token (no DNS rebinding)
    assert _client(nomodel_workspace, host="attacker.example").get("/").status_code == 421
    # cross-site requests: a foreign Origin, a form without the token, a text/plain "JSON" post
    assert client.post("/api/items", json={"text": "x"}, headers={"origin": "http://evil.example"}).status_code == 403
    assert client.post("/notes", data={"text": "Hypertension."}).status_code == 403
    plain = client.post("/api/items", content=b'{"text": "x"}', headers={"content-type": "text/plain"})
    assert plain.status_code == 403
    assert client.post("/api/items", data={"text": "x"}).status_code == 403  # a form aimed at the API
    # with a token: refused without it; ?token= becomes a cookie and leaves the address; Bearer works
    guarded = _client(nomodel_workspace, token="s3cret-token", host="10.1.2.3")
    assert guarded.get("/").status_code == 401 and guarded.get("/api/items").status_code == 401
    assert guarded.get("/?token=wrong").status_code == 401
    r = guarded.get("/?token=s3cret-token")
    assert r.status_code == 303 and "token" not in r.headers["location"]
    assert "httponly" in r.headers["set-cookie"].lower()
    assert guarded.get("/").status_code == 200  # the cookie
    bearer = _client(nomodel_workspace, token="s3cret-token", host="10.1.2.3")
    assert bearer.get("/api/items", headers={"authorization": "Bearer s3cret-token"}).status_code == 200
    # the note's words stay out of addresses and logs: forms post, and a request logs only its route
    marker = "Zebrafinch hypertension"
    with caplog.at_level(logging.DEBUG):
        r = client.post("/notes", data={"text": f"{marker} is well controlled.", "title": "", "csrf_token": csrf})
        assert r.status_code == 303 and marker.split()[0] not in r.headers["location"]
        item_id = r.headers["location"].split("added=")[1]
        nomodel_workspace.coder.wait(item_id)
        client.get(f"/sessions/{item_id}")
        client.post("/search", data={"q": marker, "csrf_token": csrf})
    assert caplog.records and not [rec for rec in caplog.records if "Zebrafinch" in rec.getMessage()]
    assert any("/sessions/{item_id}" in rec.getMessage() for rec in caplog.records)


def test_bad_notes_are_refused_with_a_reason_and_nothing_is_queued(nomodel_workspace: Any) -> None:
    client = _client(nomodel_workspace)
    before = len(client.get("/api/items").json())
    empty = client.post("/api/items", json={"text": "   \n"})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    huge = client.post("/api/items", json={"text": "x" * (nomodel_workspace.workflow.spec.max_note_chars + 1)})
    assert huge.status_code == 422 and "limit" in huge.json()["detail"]
    binary = client.post("/notes", data={"csrf_token": _csrf(client)},
                         files={"file": ("scan.pdf", b"%PDF-1.4\x00\x01\x02", "application/pdf")})
    assert binary.status_code == 200 and "not coded: the note is binary" in binary.text
    assert len(client.get("/api/items").json()) == before
    assert client.get("/sessions/nope").status_code == 404 and client.get("/api/sessions/nope").status_code == 404
    assert client.post("/api/items", json={"text": "x", "colour": "red"}).status_code == 422  # extra="forbid"


def test_batch_results_join_the_worklist_and_a_restart_codes_what_was_queued(
        nomodel_workspace: Any, tmp_path: Path) -> None:
    from medcoder.web import Workspace
    from medcoder.web.worklist import QUEUED, Worklist

    wf = nomodel_workspace.workflow
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "n1.txt").write_text("Gout of the right knee. Essential hypertension.")
    (tmp_path / "notes" / "n2.txt").write_text("")
    code_batch(wf, tmp_path / "notes", tmp_path / "out.jsonl")
    worklist = Worklist(tmp_path / "ws.sqlite")
    # a server that stopped after a paste and before its coding: the note waits in the worklist
    worklist.add("squeued00001", "paste", "queued before a stop", QUEUED, pending="Asthma, mild intermittent.",
                 chars=26)
    ws = Workspace(wf, worklist=worklist, batches=[tmp_path / "out.jsonl"])
    try:
        assert ws.coder.wait("squeued00001").state == "ready"
        assert worklist.pending("squeued00001") is None  # the checkpoint holds the note now
        rows = {r["title"]: r for r in ws.items()}
        assert rows["n1"]["status"] == "to review" and rows["n1"]["source"] == "batch:out.jsonl"
        assert rows["n2"]["status"] == "failed" and "empty" in rows["n2"]["error"]
        assert rows["queued before a stop"]["status"] == "to review"
        assert ws.review(rows["n1"]["id"])["codes"]
        client = _client(ws)
        page = client.get("/").text
        assert "n1" in page and "batch:out.jsonl" in page and "the note is empty" in page
    finally:
        ws.coder.stop()
        worklist.close()


def test_api_reference_page_works_offline(nomodel_workspace: Any) -> None:
    client = _client(nomodel_workspace)
    spec = client.get("/openapi.json").json()
    assert {"/api/items", "/api/sessions/{item_id}/decisions", "/api/search", "/api/runs/{run_id}/audit"} <= set(
        spec["paths"])
    docs = client.get("/docs").text
    assert "/api/sessions/{item_id}/decisions" in docs and "cdn" not in docs.lower() and "version" in docs
    assert client.get("/static/app.js").status_code == 200


def test_medcoder_serve_off_loopback_prints_a_token_and_serves_the_sample_note(medcoder_home: Path) -> None:
    """The README's command (with the fast no-model workflow): the sample note is coded and reviewable."""
    from medcoder.llm.serving import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "medcoder", "serve", "--host", "0.0.0.0", "--port", str(port),
                             "--workflow", "icd10cm-nomodel", "--note", "examples/aci_bench_D2N069.txt"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True, env={**os.environ, "MEDCODER_WEB_TOKEN": ""})
    try:
        line = ""
        deadline = time.monotonic() + 120
        while "?token=" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline() if proc.stderr else ""
        token = line.strip().split("?token=")[1]
        base = f"http://127.0.0.1:{port}"
        items = _get_json(f"{base}/api/items", token, deadline)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/api/items", timeout=10)
        assert refused.value.code == 401
        while items[0]["state"] != "ready" and time.monotonic() < deadline:
            time.sleep(0.5)
            items = _get_json(f"{base}/api/items", token, deadline)
        assert items[0]["title"] == "aci_bench_D2N069.txt" and items[0]["status"] == "to review"
        req = urllib.request.Request(f"{base}/sessions/{items[0]['id']}", headers={"authorization": f"Bearer {token}"})
        page = urllib.request.urlopen(req, timeout=30).read().decode()
        assert 'class="code st-proposed"' in page and "mark class=\"ev" in page
    finally:
        proc.send_signal(signal.SIGINT)
        code: int | None
        try:
            code = proc.wait(timeout=120)  # a generous bound: the server ends at once unless the machine is loaded
        except subprocess.TimeoutExpired:
            proc.kill()  # never left running, whatever the test's outcome
            proc.wait()
            code = None
        if proc.stderr:
            proc.stderr.close()
    assert code in (0, 130)


def _get_json(url: str, token: str, deadline: float) -> Any:
    while True:
        try:
            req = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"})
            return json.loads(urllib.request.urlopen(req, timeout=10).read())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_a_chat_or_sdk_session_is_reviewed_in_the_browser_as_the_same_session(nomodel_workspace: Any) -> None:
    """Three faces of one session: decided in Python, adopted into the worklist, decided through the API,
    and Python sees both decisions (no copy anywhere)."""
    from medcoder.session import Session

    client = _client(nomodel_workspace)
    wf = nomodel_workspace.workflow
    s = Session.start("Essential hypertension. Gout of the right knee. Asthma, mild intermittent.", wf)
    codes = [c.code for c in s.codes()]
    assert len(codes) >= 2
    s.accept(codes[0])
    r = client.post("/api/items/adopt", json={"session_id": s.id, "title": "from the REPL"})
    assert r.status_code == 200 and r.json()["source"] == "session"
    row = next(i for i in client.get("/api/items").json() if i["id"] == s.id)
    assert row["status"] == "in progress" and row["counts"]["accepted"] == 1
    view = client.get(f"/api/sessions/{s.id}").json()
    assert view["version"] == 1
    client.post(f"/api/sessions/{s.id}/decisions", json={"action": "reject", "code": codes[1], "reason": "old",
                                                         "version": 1}).raise_for_status()
    assert [(d["action"], d["code"]) for d in Session(wf, s.id).decisions()] == [("accept", codes[0]),
                                                                                  ("reject", codes[1])]
    assert client.post("/api/items/adopt", json={"session_id": "nosuchsession"}).status_code == 404


def test_auto_accept_marks_codes_a_coder_can_still_reject_and_the_worklist_orders_by_need(tmp_path: Path) -> None:
    """A workspace with auto-accept on, over a copy of the shipped ranker whose card says 0.5: the codes at or
    above it are accepted as each note is coded (marked in the audit trail with the threshold and the ranker's
    digest), the coder rejects one, and the "needs review" order puts the nearest-to-threshold note first."""
    import shutil

    import medcoder
    from medcoder.ranking.cards import ranker_card
    from medcoder.ranking.folders import ranker_folder
    from medcoder.web import Workspace
    from medcoder.web.worklist import Worklist

    mine = tmp_path / "ranker"
    shutil.copytree(ranker_folder("icd10cm", "shipped"), mine)
    meta = json.loads((mine / "ranker.json").read_text())
    meta["cv"]["auto_accept_threshold"] = 0.5
    meta["final"]["auto_threshold"] = 0.5  # a visit note's final codes: their own threshold, any decision
    (mine / "ranker.json").write_text(json.dumps(meta))
    card = ranker_card(mine)
    spec = (Path(medcoder.__file__).parent / "engine" / "builtin" / "icd10cm-nomodel.yaml").read_text()
    (tmp_path / "wf.yaml").write_text(spec.replace("ranker: builtin", f"ranker: {mine}"))
    ws = Workspace(str(tmp_path / "wf.yaml"), worklist=Worklist(tmp_path / "w.sqlite"), auto_accept=True)
    try:
        client = _client(ws)
        notes = [(ROOT / "examples" / f"aci_bench_D2N06{n}.txt").read_text(encoding="utf-8") for n in (8, 9)]
        ids = [_coded(client, ws, text) for text in notes]
        # a visit note's final codes are auto-accepted at or above the visit threshold, whatever decided them
        view = client.get(f"/api/sessions/{ids[0]}").json()
        assert [r["digest"] for r in view["rankers"]] == [card.digest]  # the page says which ranker coded it
        auto = [c for c in view["codes"] if c["reason"].startswith("auto-accepted")]
        assert auto and all(c["status"] == "accepted" and c["confidence"] >= 0.5 for c in auto)
        thin = client.get(f"/api/sessions/{ids[1]}").json()
        for c in thin["codes"]:  # a code left open is below the visit threshold
            assert c["status"] != "proposed" or c["confidence"] < 0.5, c
        marked = [p for p in _decisions(ws, ids[0]) if p.get("auto_accepted")]
        assert sorted(p["code"] for p in marked) == sorted(c["code"] for c in auto)
        assert {(p["auto_accepted"]["threshold"], p["auto_accepted"]["ranker"]) for p in marked} == {(0.5, card.digest)}
        first = auto[0]["code"]
        after = client.post(f"/api/sessions/{ids[0]}/decisions",
                            json={"action": "reject", "code": first, "reason": "not documented"}).json()
        assert next(c for c in after["codes"] if c["code"] == first)["status"] == "rejected"
        rows = [r for r in client.get("/api/items", params={"order": "needs review"}).json() if r["state"] == "ready"]
        margins = [r["margin"] for r in rows]
        assert len(rows) == 2 and None not in margins and margins == sorted(margins)
        # the codes each note's ranker policy allows unseen: its diagnosis codes at or above the visit threshold (0.5
        # here) and its drug codes at or above the drug ranker's, whatever a coder did with them since
        drug_auto = ranker_card(ranker_folder("atc", "shipped")).auto_accept["threshold"]
        views = [client.get(f"/api/sessions/{i}").json() for i in ids]
        allowed = {
            v["id"] if "id" in v else i: sum(
                1 for c in v["codes"]
                if c["confidence"] >= (0.5 if c["system"] == "icd10cm" else drug_auto)
            )
            for i, v in zip(ids, views)
        }
        assert sorted(r["auto_acceptable"] for r in rows) == sorted(allowed.values()) and min(allowed.values()) > 0
        page = client.get("/", params={"order": "needs review"}).text
        assert "auto-acceptable" in page and "nearest the threshold" in page
    finally:
        ws.close()


def test_a_relearn_that_fails_says_why_and_leaves_the_ranker_in_use(tmp_path: Path) -> None:
    from medcoder.ranking.cards import active_ranker
    from medcoder.web.relearning import Relearner

    relearner = Relearner()
    job = relearner.start(lambda: [("a", "Hypertension.", ["I10"]), ("b", "Asthma.", ["J45.909"])], "icd10cm",
                          [], adopt=True, out=tmp_path / "new")
    assert job.state == "learning"
    job = relearner.wait(300)
    assert job.state == "failed" and "at least 6 decided notes" in job.error
    assert active_ranker("icd10cm") is None and not (tmp_path / "new").exists()
