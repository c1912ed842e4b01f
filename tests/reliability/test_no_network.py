"""No network: a full `code` and `batch` run opens no internet socket (an audit hook watches every connect),
and succeeds inside a network namespace with no interfaces at all (`unshare -rn`)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.reliability import harness

_WATCHING: list[list[str]] = []


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _WATCHING or event not in ("socket.connect", "socket.getaddrinfo", "socket.sendto"):
        return
    if event == "socket.connect" and getattr(args[0], "family", None) == socket.AF_UNIX:
        return  # local IPC (multiprocessing), not the network
    _WATCHING[-1].append(f"{event} {args[1:]!r}"[:200])


sys.addaudithook(_hook)  # hooks cannot be removed: it records only inside `_network_watch`


@contextmanager
def _network_watch() -> Iterator[list[str]]:
    seen: list[str] = []
    _WATCHING.append(seen)
    try:
        yield seen
    finally:
        _WATCHING.pop()


def test_the_hook_sees_a_connect() -> None:
    with _network_watch() as seen:
        with pytest.raises(OSError):
            socket.create_connection(("192.0.2.1", 9), timeout=0.01)  # TEST-NET: never routed
    assert seen


@pytest.mark.slow
def test_code_and_batch_with_the_real_stack_open_no_socket(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from medcoder.cli import main

    note = tmp_path / "note.txt"
    note.write_text(harness.NOTE_TEMPLATE.format(i=1))
    notes = tmp_path / "notes"
    harness.write_notes(notes, 2)
    with _network_watch() as seen:
        coded = CliRunner().invoke(main, ["code", "-m", "test", "-w", "full", "--format", "json", str(note)])
        batched = CliRunner().invoke(main, ["batch", str(notes), "--out", str(tmp_path / "o.jsonl"), "-m", "test",
                                            "-w", "icd10cm"])
    assert coded.exit_code == 0, coded.output[-500:]
    assert batched.exit_code == 0, batched.output[-500:]
    assert seen == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("unshare") is None, reason="no unshare on this machine")
def test_code_and_batch_succeed_inside_a_network_namespace(tmp_path: Path) -> None:
    if subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0:
        pytest.skip("user namespaces are not allowed here")
    home = tmp_path / "home"
    harness.write_notes(tmp_path / "notes", 2)
    env = harness.env_for(home)
    py = [sys.executable, "-m", "medcoder"]
    code = subprocess.run(["unshare", "-rn", *py, "code", "-m", "test", "-w", "full", "-"], env=env,
                          input=harness.NOTE_TEMPLATE.format(i=3).encode(), capture_output=True, timeout=600)
    assert code.returncode == 0, code.stderr.decode()[-800:]
    batch = subprocess.run(["unshare", "-rn", *py, "batch", str(tmp_path / "notes"), "--out", str(tmp_path / "o.jsonl"),
                            "-m", "test", "-w", "icd10cm"], env=env, capture_output=True, timeout=600)
    assert batch.returncode == 0, batch.stderr.decode()[-800:]
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 2
