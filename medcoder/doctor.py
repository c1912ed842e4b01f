"""`medcoder doctor`: check an installation and say what is wrong and how to repair it.

Each check is one function returning `Check`s; none writes anything except a probe file in the
home. The CLI prints them; Python callers (and the reliability suite) read the list.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import stat
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from medcoder import paths
from medcoder.errors import MedcoderError

logger = logging.getLogger(__name__)

_GGUF_MAGIC = b"GGUF"


@dataclass
class Check:
    """One finding: `ok`, `warn` (works, but worth fixing) or `fail` (something will not work)."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _config() -> list[Check]:
    # deferred: each check imports only what it checks, so a broken part cannot stop the others
    from medcoder.settings import check_config, config_file

    try:
        check_config()
    except MedcoderError as exc:
        return [Check("config", "fail", str(exc), f"edit or remove {config_file()}")]
    where = config_file()
    return [Check("config", "ok", f"{where}" if where.is_file() else "no config file (defaults)")]


def _home() -> list[Check]:
    try:
        home = paths.home()
    except MedcoderError as exc:
        return [Check("home", "fail", str(exc), "set MEDCODER_HOME to a folder you can write")]
    try:
        fd, probe = tempfile.mkstemp(dir=home, prefix=".doctor-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return [
            Check(
                "home",
                "fail",
                f"{home}: cannot be written ({exc.strerror})",
                "make it writable, or set MEDCODER_HOME to a folder you can write",
            )
        ]
    mode = stat.S_IMODE(home.stat().st_mode)
    out = [Check("home", "ok", f"{home} (mode {mode:o})")]
    if mode & 0o077:
        out.append(
            Check(
                "home permissions",
                "warn",
                f"{home} can be read by other users (mode {mode:o}); it holds notes and audit trails",
                f"chmod 700 {home}",
            )
        )
    free = shutil.disk_usage(home).free
    if free < 1 << 30:
        out.append(Check("disk space", "warn", f"{free >> 20} MiB free under {home}", "free space before a batch"))
    return out


def _sqlite(name: str, path: Path) -> list[Check]:
    if not path.exists():
        return [Check(name, "ok", f"{path} (not created yet)")]
    if path.stat().st_size == 0:
        return [Check(name, "ok", f"{path} (empty)")]
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        rows = [str(exc)]
    if rows != ["ok"]:
        return [
            Check(
                name,
                "fail",
                f"{path} is damaged: {'; '.join(rows)[:200]}",
                f"move {path.name} aside (mv {path} {path}.damaged); medcoder starts a new one",
            )
        ]
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return [Check(name, "warn", f"{path} readable by other users (mode {mode:o})", f"chmod 600 {path}")]
    return [Check(name, "ok", f"{path} ({path.stat().st_size >> 10} KiB)")]


def _stores() -> list[Check]:
    home = paths.home()
    return _sqlite("audit store", home / "audit.sqlite") + _sqlite("checkpoints", home / "checkpoints.sqlite")


def _models() -> list[Check]:
    from medcoder.llm import registry  # deferred: each check imports only what it checks

    out = []
    for name in registry.MODELS:
        v = registry.verify_model(name)
        if v["ok"]:
            out.append(Check(f"model {name}", "ok", f"{v['path']} (sha256 verified)"))
            continue
        fix = registry.repair_hint(name)
        missing = str(v.get("reason", "")).startswith("missing") or v.get("path") is None
        out.append(Check(f"model {name}", "warn" if missing and name == "test" else "fail", str(v["reason"]), fix))
        path = Path(str(v["path"])) if v.get("path") else None
        if path and path.is_file():
            with open(path, "rb") as fh:
                if fh.read(4) != _GGUF_MAGIC:
                    out.append(Check(f"model {name} header", "fail", f"{path} is not a GGUF file", fix))
    return out


def _runtime() -> list[Check]:
    try:
        import llama_cpp  # deferred: its absence is a finding, not an import error
    except ImportError as exc:
        return [Check("llama-cpp-python", "fail", f"cannot import llama_cpp ({exc})", "bash scripts/install.sh")]
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    return [
        Check("llama-cpp-python", "ok", f"{llama_cpp.__version__}, GPU offload {'on' if gpu else 'off (CPU build)'}")
    ]


def _index() -> list[Check]:
    # deferred: each check imports only what it checks (ChromaDB is heavy)
    from medcoder.knowledge import default_kb, system_names
    from medcoder.knowledge.dense import DenseIndex  # deferred: ChromaDB

    out = []
    for system in system_names():
        index = DenseIndex(default_kb(), system)
        if not index.is_built():
            out.append(
                Check(
                    f"index {system}",
                    "warn",
                    f"not built at {index.path}",
                    f"medcoder kb build-index --system {system}",
                )
            )
            continue
        try:
            n = index.collection(build=False).count()
            out.append(Check(f"index {system}", "ok", f"{index.path} ({n} texts)"))
        except Exception as exc:  # noqa: BLE001 - any Chroma failure is a damaged store
            out.append(
                Check(
                    f"index {system}",
                    "fail",
                    f"{index.path} unreadable: {str(exc)[:160]}",
                    f"medcoder kb build-index --system {system} --force",
                )
            )
    return out


CHECKS: dict[str, Callable[[], list[Check]]] = {
    "config": _config,
    "home": _home,
    "stores": _stores,
    "runtime": _runtime,
    "models": _models,
    "index": _index,
}


def run_checks(only: list[str] | None = None) -> list[Check]:
    """Every check (or those named), each failure caught and reported as a finding."""
    out: list[Check] = []
    for name, check in CHECKS.items():
        if only and name not in only:
            continue
        try:
            out.extend(check())
        except Exception as exc:  # noqa: BLE001 - doctor reports, never crashes
            logger.info("check %s raised", name, exc_info=True)
            out.append(Check(name, "fail", f"{type(exc).__name__}: {str(exc)[:200]}", "run with -v for details"))
    return out
