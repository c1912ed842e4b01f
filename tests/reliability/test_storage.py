"""Storage faults: a full disk, a read-only home, damaged databases and model files. Each ends in one line that
names the file and the fix, nothing already written is corrupted, and the run resumes once the fault is gone."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.reliability import harness


def _file_limit(nbytes: int):
    """A child whose files cannot grow past `nbytes` (a full disk, for that process): writes fail with EFBIG."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return apply


@pytest.mark.slow
def test_disk_full_mid_batch_is_one_line_and_the_batch_resumes(tmp_path: Path) -> None:
    ids = harness.write_notes(tmp_path / "notes", 4)
    home, out = tmp_path / "home", tmp_path / "out.jsonl"
    args = ["batch", str(tmp_path / "notes"), "--out", str(out), "-w", "full", "-m", "fake"]
    ok = harness.medcoder(args[:3] + [str(tmp_path / "warm.jsonl")] + args[4:], home)  # stores exist, then fill
    assert ok.returncode == 0, ok.stderr.decode()[-500:]
    size = (home / "audit.sqlite").stat().st_size + (home / "checkpoints.sqlite").stat().st_size
    largest = max(os.path.getsize(home / "audit.sqlite"), os.path.getsize(home / "checkpoints.sqlite"))
    full = harness.medcoder(args, home, preexec=_file_limit(largest + 4096))
    assert harness.one_clear_line(full), full.stderr.decode()[-800:]
    last = full.stderr.decode().strip().splitlines()[-1]
    # whichever file the run writes first past the limit is named: a store, the output, or the search index
    # (Chroma may write when it opens a store; that store is sound and must be kept, not rebuilt)
    assert "free space" in last and any(w in last for w in ("audit", "checkpoint", "out.jsonl", "search index")), last
    assert size > 0
    sqlite3.connect(home / "audit.sqlite").execute("PRAGMA integrity_check").fetchall()
    again = harness.medcoder(args, home)  # space is back
    assert again.returncode == 0, again.stderr.decode()[-500:]
    fig = harness.Figures()
    harness.check_output(out, ids, fig)
    harness.verify_runs(home / "audit.sqlite", fig)
    assert (fig.lost, fig.duplicated, fig.invalid_lines) == (0, 0, 0) and fig.chains_ok == fig.chains


def test_disk_full_writing_the_output_keeps_every_line_already_written(tmp_path: Path) -> None:
    from medcoder.batch.runner import BatchItem, run_batch
    from medcoder.errors import StorageError

    class Quick:
        def run_or_result(self, text: str, run_id: str):
            class R:
                def to_dict(self) -> dict[str, str]:
                    return {"codes": "x" * 3000}
            return R()

    out = tmp_path / "out.jsonl"
    items = [BatchItem(f"n{i}", "note") for i in range(10)]
    coder: Any = Quick()  # run_batch takes a Workflow (anything with run_or_result) or a recipe that makes one
    pid = os.fork()
    if pid == 0:  # the child writes under a 10 kB file limit
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))
        try:
            run_batch(coder, items, out)
            os._exit(0)
        except StorageError as exc:
            os._exit(7 if "free space" in str(exc) and str(out) in str(exc) else 8)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 7
    summary = run_batch(coder, items, out)  # space back: the rest, once
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(i.id for i in items) and summary.skipped > 0


@pytest.mark.parametrize("name", ["audit.sqlite", "checkpoints.sqlite"])
def test_a_truncated_database_is_one_line_naming_it_and_doctor_says_the_fix(tmp_path: Path, name: str) -> None:
    home = tmp_path / "home"
    ok = harness.medcoder(["code", "-m", "fake", "-w", "full", "-"], home,
                          stdin=harness.NOTE_TEMPLATE.format(i=1).encode())
    assert ok.returncode == 0, ok.stderr.decode()[-500:]
    db = home / name
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3] if len(data) > 8192 else b"SQLite format 3\x00" + b"\x07" * 100)
    for ext in ("-wal", "-shm"):
        Path(str(db) + ext).unlink(missing_ok=True)
    bad = harness.medcoder(["code", "-m", "fake", "-w", "full", "-"], home,
                           stdin=harness.NOTE_TEMPLATE.format(i=2).encode())
    assert harness.one_clear_line(bad), bad.stderr.decode()[-800:]
    assert str(db) in bad.stderr.decode() and "doctor" in bad.stderr.decode()
    doc = harness.medcoder(["doctor", "--only", "stores"], home)
    assert doc.returncode == 1 and f"mv {db}" in doc.stdout.decode(), doc.stdout.decode()


def _can_mount_read_only(tmp: Path) -> bool:
    probe = tmp / "probe"
    probe.mkdir()
    cmd = f"mount --bind {probe} {probe} && mount -o remount,bind,ro {probe}"
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "sh", "-c", cmd], capture_output=True).returncode == 0


def test_a_read_only_home_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = harness.medcoder(["code", "-m", "fake", "-w", "full", "-"], home, stdin=b"Assessment: asthma.")
    assert first.returncode == 0, first.stderr.decode()[-500:]
    before = {f.name: f.read_bytes() for f in home.iterdir() if f.is_file()}
    if _can_mount_read_only(tmp_path):  # the home as a read-only file system (root ignores file modes)
        cmd = (f"mount --bind {home} {home} && mount -o remount,bind,ro {home} && "
               f"exec {sys.executable} -m medcoder code -m fake -w full -")
        bad = subprocess.run(["unshare", "-rm", "sh", "-c", cmd], env=harness.env_for(home), capture_output=True,
                             input=b"Assessment: asthma.", timeout=300, cwd=harness.ROOT)
    elif os.geteuid() != 0:
        home.chmod(0o500)
        bad = harness.medcoder(["code", "-m", "fake", "-w", "full", "-"], home, stdin=b"Assessment: asthma.")
    else:
        pytest.skip("root without mount namespaces: a read-only home cannot be made here")
    assert harness.one_clear_line(bad), bad.stderr.decode()[-800:]
    err = bad.stderr.decode()
    assert str(home) in err and ("cannot be written" in err or "read-only" in err.lower()), err
    home.chmod(0o700)
    assert {f.name: f.read_bytes() for f in home.iterdir() if f.is_file() and f.name in before} == before


def test_model_files_truncated_or_not_the_expected_one(tmp_path: Path) -> None:
    from medcoder.errors import MedcoderError
    from medcoder.llm import load_llm, registry

    real = registry.MODELS["test"].path()
    cut = tmp_path / "cut.gguf"
    with open(real, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(5_000_000))
    with pytest.raises(MedcoderError) as err:
        load_llm(str(cut))
    assert str(cut) in str(err.value) and "GGUF" in str(err.value) and "\n" not in str(err.value)

    # a named model whose file was replaced: wrong size, then right size and wrong sha256
    models = tmp_path / "models"
    models.mkdir()
    spec = registry.MODELS["default"]
    fake = models / spec.filename
    fake.write_bytes(b"GGUF" + b"\0" * 100)
    env = {"MEDCODER_MODELS_DIR": str(models)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with pytest.raises(MedcoderError) as err:
            registry.resolve_model("default")
        assert str(fake) in str(err.value) and "models assemble --force" in str(err.value)
        with open(fake, "r+b") as fh:
            fh.truncate(spec.size)  # sparse: the right size, the wrong content
        with pytest.raises(MedcoderError) as err:
            registry.resolve_model("default")
        assert "sha256" in str(err.value) and "models assemble --force" in str(err.value)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_a_damaged_search_index_is_rebuilt_or_named(tmp_path: Path) -> None:
    from medcoder.knowledge import KnowledgeBase, register_system
    from medcoder.knowledge.dense import DenseIndex
    from tests.toy_system import ToyFindings

    register_system(ToyFindings)
    index = DenseIndex(KnowledgeBase(), ToyFindings.system, root=tmp_path / "chroma")
    index.build()
    for f in index.path.rglob("*.sqlite3"):
        f.write_bytes(f.read_bytes()[:1000])  # truncated
    from chromadb.api.client import SharedSystemClient
    SharedSystemClient.clear_system_cache()
    fresh = DenseIndex(KnowledgeBase(), ToyFindings.system, root=tmp_path / "chroma")
    assert fresh.search("cough", k=1)[0].code  # rebuilt once, then searched
    shutil.rmtree(tmp_path / "chroma")


_INDEX_CHILD = """
import pathlib, resource, signal, sys
from medcoder.knowledge import KnowledgeBase, register_system
from medcoder.knowledge.dense import DenseIndex
from tests.toy_system import ToyFindings

register_system(ToyFindings)
if sys.argv[2] != "unlimited":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))
index = DenseIndex(KnowledgeBase(), ToyFindings.system, root=pathlib.Path(sys.argv[1]))
try:
    print(index.search("cough", k=1)[0].code)
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def _index_child(root: Path, mode: str) -> str:
    """Search a toy index in a fresh process (Chroma writes when a process first opens a store)."""
    proc = subprocess.run([sys.executable, "-c", _INDEX_CHILD, str(root), mode], capture_output=True, text=True,
                          cwd=harness.ROOT, env=harness.env_for(root.parent / "home"), timeout=300)
    return proc.stdout.strip().splitlines()[-1]


def test_a_full_disk_keeps_a_sound_search_index_and_says_so(tmp_path: Path) -> None:
    root = tmp_path / "chroma"
    said = _index_child(root, "limited")  # nothing built yet: the build cannot write
    assert said.startswith("StorageError cannot build the search index at") and "free space" in said, said
    assert not any(root.glob("*/chroma.sqlite3"))  # no half-built store left taking space
    assert _index_child(root, "unlimited").startswith("F")  # space back: built, searched
    store = next(root.glob("*/chroma.sqlite3")).parent
    marker = (store / "medcoder-index.json").read_text()
    said = _index_child(root, "limited")  # a sound store that a full disk stops Chroma opening
    assert said.startswith("StorageError cannot open the search index at") and "free space" in said, said
    assert (store / "medcoder-index.json").read_text() == marker  # kept, not removed to be rebuilt
    assert _index_child(root, "unlimited").startswith("F")


@pytest.mark.slow
def test_doctor_on_a_healthy_installation_finds_nothing_to_fail(tmp_path: Path) -> None:
    proc = harness.medcoder(["doctor", "--json"], tmp_path / "home")
    checks = json.loads(proc.stdout.decode())
    names = {c["name"] for c in checks}
    assert {"config", "home", "audit store", "checkpoints", "llama-cpp-python", "model test"} <= names
    assert [c for c in checks if c["status"] == "fail"] == [] and proc.returncode == 0, checks
    assert all(c["fix"] for c in checks if c["status"] != "ok")


def test_an_in_memory_checkpoint_database_makes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medcoder.engine.workflow import load_workflow

    monkeypatch.chdir(tmp_path)
    with load_workflow("icd10cm-nomodel", audit=False, checkpoint_path=":memory:") as wf:
        assert wf.run("Assessment: essential hypertension.").codes
    assert list(tmp_path.iterdir()) == []
