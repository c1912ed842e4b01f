"""`medcoder serve-model`: llama.cpp's python server, one process per slot, behind one URL; workers share it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from medcoder.batch import code_batch
from medcoder.llm.serving import ModelServer, ServeOptions, free_port, is_loopback
from tests.batch_notes import codes_by_id
from tests.reliability.harness import env_for

pytestmark = pytest.mark.slow
pytest.importorskip("fastapi")  # llama-cpp-python's server: the `server` extra


@pytest.fixture(scope="module")
def served(medcoder_home: Path) -> Iterator[ModelServer]:
    with ModelServer(ServeOptions(model="test", slots=2, port=0, n_ctx=4096, api_key="s3cret")) as server:
        yield server


def _post(url: str, body: dict[str, Any], key: str | None) -> tuple[int, dict[str, str], dict[str, Any]]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


def test_two_slots_answer_two_requests_at_once_and_a_key_is_required(served: ModelServer) -> None:
    body = {"messages": [{"role": "user", "content": "Name one organ."}], "max_tokens": 24, "temperature": 0}
    slots: list[str] = []

    def ask() -> None:
        status, headers, answer = _post(served.url + "/chat/completions", body, "s3cret")
        assert status == 200 and answer["choices"][0]["message"]["content"]
        slots.append(headers["X-Medcoder-Slot"])

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(slots)) == ["0", "1"]  # both slots served
    status, _, answer = _post(served.url + "/chat/completions", body, None)
    assert status == 401 and "API key" in answer["error"]
    assert _post(served.url + "/chat/completions", body, "wrong")[0] == 401


def test_two_workers_sharing_the_server_code_like_in_process(served: ModelServer, tmp_path: Path,
                                                             local_reference: tuple[Path, dict[str, Any]]) -> None:
    from medcoder.engine.workflow import load_workflow
    from medcoder.settings import load_settings

    notes, expected = local_reference
    settings = load_settings(backend="http", base_url=served.url, api_key="s3cret")
    with load_workflow("full", settings=settings, checkpoint_path=tmp_path / "c.sqlite") as wf:
        summary = code_batch(wf, notes, tmp_path / "http.jsonl", workers=2)
    assert (summary.done, summary.errors) == (11, 1)
    assert codes_by_id(tmp_path / "http.jsonl") == expected


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc: Linux)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its exit status waits to be read


def _wait_for(check: Any, bound: float, what: str) -> None:
    """Wait for an event, not for the clock: poll `check` until true, failing after a generous bound."""
    import time

    deadline = time.monotonic() + bound
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in {bound:.0f} s")
        time.sleep(0.2)


def _read_line(proc: subprocess.Popen[str], bound: float = 600) -> str:
    """The command's first stdout line, or a failure naming its stderr if it ends or takes longer than `bound`."""
    import selectors

    sel = selectors.DefaultSelector()
    assert proc.stdout is not None
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout=bound):
        raise AssertionError(f"serve-model printed nothing in {bound:.0f} s")
    return proc.stdout.readline()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGHUP", "SIGKILL"])
def test_serve_model_stops_its_slots_however_it_is_stopped(tmp_path: Path, how: str) -> None:
    """Ctrl-C, `kill`/`systemctl stop`/`docker stop` (TERM), a closed terminal (HUP), and the dispatcher dying
    (KILL: the slots get the kernel's parent-death signal): no slot outlives the command."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "medcoder", "serve-model", "-m", "test", "--slots", "1",
                             "--port", str(port), "--n-ctx", "1024"], env=env_for(tmp_path / "home"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    slots: list[int] = []
    try:
        line = _read_line(proc)
        assert line.strip() == f"export MEDCODER_BACKEND=http MEDCODER_BASE_URL=http://127.0.0.1:{port}/v1", \
            proc.stderr.read() if proc.poll() is not None and proc.stderr else line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=30) as resp:
            assert json.loads(resp.read())["data"][0]["id"] == "test"
        slots = _children(proc.pid)
        assert slots, "no slot process"
        proc.send_signal(getattr(signal, how))
        proc.wait(timeout=120)
        _wait_for(lambda: not any(_alive(p) for p in slots), 60, f"the slot ending after {how}")
    finally:
        for pid in [*slots, proc.pid]:  # whatever happened above, nothing of this test is left running
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.wait(timeout=60)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    expected = {"SIGINT": 130, "SIGTERM": 128 + signal.SIGTERM, "SIGHUP": 128 + signal.SIGHUP,
                "SIGKILL": -signal.SIGKILL}[how]
    assert proc.returncode == expected
    slot_log = (tmp_path / "home" / "logs" / "serve-model-slot0.log").read_text(errors="replace")
    assert "Uvicorn running" in slot_log or "Application startup complete" in slot_log


def test_off_loopback_a_key_is_generated() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    server = ModelServer(ServeOptions(model="test", host="0.0.0.0", port=0))
    assert server.generated_key and server.options.api_key and len(server.options.api_key) >= 24
    assert not ModelServer(ServeOptions(model="test")).generated_key
