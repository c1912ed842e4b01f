"""The Ray batch engine on a real local Ray cluster (`ray start --head`, 2 CPUs, token auth), the real test model.

Checks the engine's promises: the same codes as the local engine, one line per note even when an
actor is SIGKILLed mid-run (Ray restarts it and retries its notes), nothing written by a rerun.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from medcoder.batch import code_batch
from medcoder.llm.serving import free_port
from tests.batch_notes import codes_by_id, write_notes
from tests.reliability.harness import env_for

# read by Ray when it is imported (and cached): advertise 127.0.0.1 rather than this machine's address (the
# cluster here is started the same way), so the driver in this process reaches it on the loopback interface;
# and the token the cluster and every client share
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_USAGE_STATS_ENABLED": "0"}
os.environ.update(RAY_ENV)
ray = pytest.importorskip("ray")

RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`ray start --head` on 127.0.0.1 with 2 CPUs and a token; stopped afterwards. Yields the env to reach it."""
    port = free_port()
    env = RAY_ENV
    temp = tmp_path_factory.mktemp("ray")
    full_env = {**os.environ, **env}
    start = subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                            "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
                            f"--temp-dir={temp}"], env=full_env, capture_output=True, timeout=120)
    assert start.returncode == 0, start.stderr.decode(errors="replace")[-2000:]
    try:
        yield {**env, "address": f"127.0.0.1:{port}"}
    finally:
        subprocess.run([RAY, "stop", "--force"], env=full_env, capture_output=True, timeout=120)


def test_ray_engine_codes_like_the_local_engine(ray_cluster: dict[str, str], tmp_path: Path,
                                                local_reference: tuple[Path, dict[str, Any]]) -> None:
    from medcoder.batch import RayOptions
    from medcoder.engine.workflow import load_workflow

    notes, expected = local_reference
    with load_workflow("full", model="test", checkpoint_path=tmp_path / "c.sqlite") as wf:
        seen: list[int] = []
        on_ray = code_batch(wf, notes, tmp_path / "ray.jsonl", engine="ray",
                              ray=RayOptions(address=ray_cluster["address"], actors=2),
                              progress=lambda s: seen.append(s.finished))
    assert (on_ray.done, on_ray.errors) == (11, 1)
    assert seen[-1] == 12 and seen == sorted(seen)  # progress moved note by note
    ray_codes = codes_by_id(tmp_path / "ray.jsonl")
    assert ray_codes == expected
    assert ray_codes["n11"] == "bad_note"


def _actor_pids() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "ray::MapWorker(MapBatches(NoteCoder))" in line]


def test_a_killed_actor_loses_and_duplicates_nothing(ray_cluster: dict[str, str], tmp_path: Path) -> None:
    from medcoder.audit.store import SQLiteAuditStore

    ids = write_notes(tmp_path / "notes")
    home, out = tmp_path / "home", tmp_path / "out.jsonl"
    args = [sys.executable, "-m", "medcoder", "batch", str(tmp_path / "notes"), "--out", str(out), "-w", "full",
            "-m", "test", "--engine", "ray", "--address", ray_cluster["address"], "--actors", "2"]
    env = env_for(home, **{k: v for k, v in ray_cluster.items() if k != "address"})
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline, killed = time.time() + 300, 0
    while time.time() < deadline and proc.poll() is None:  # kill one actor once the first note is written
        if out.exists() and out.read_text().count("\n") >= 1 and _actor_pids():
            os.kill(_actor_pids()[0], signal.SIGKILL)
            killed = 1
            break
        time.sleep(0.1)
    _, err = proc.communicate(timeout=300)
    assert killed and proc.returncode == 0, err.decode(errors="replace")[-2000:]
    lines_before_rerun = out.read_bytes()
    assert sorted(codes_by_id(out)) == ids  # every note exactly once

    again = subprocess.run(args, env=env, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr.decode(errors="replace")[-2000:]
    assert out.read_bytes() == lines_before_rerun  # the rerun wrote nothing
    summary = again.stdout.decode()
    assert re.search(r"skipped\W+12\b", summary) and re.search(r"coded\W+0\b", summary), summary

    store = SQLiteAuditStore(home / "audit.sqlite")
    try:
        done = [r for r in store.runs(limit=100) if r.status == "done"]
        assert len(done) >= 11 and all(store.verify(r.run_id).ok for r in done)
    finally:
        store.close()


def test_an_actor_the_cluster_cannot_hold_is_refused_at_once(ray_cluster: dict[str, str], tmp_path: Path) -> None:
    from medcoder.batch import BatchItem, RayOptions
    from medcoder.engine.workflow import load_workflow
    from medcoder.errors import MedcoderError

    with load_workflow("icd10cm", model="test", checkpoint_path=tmp_path / "c.sqlite", audit=False) as wf:
        with pytest.raises(MedcoderError, match="not enough for one actor"):
            code_batch(wf, [BatchItem("a", "asthma")], tmp_path / "o.jsonl", engine="ray",
                         ray=RayOptions(address=ray_cluster["address"], actors=2, gpus_per_actor=1))
    assert not (tmp_path / "o.jsonl").read_text()
