"""Hostile inputs for every way in: config files, `MEDCODER_*` variables, note bytes, workflow YAML, batch JSONL
lines, dataset files and CLI arguments. Each check returns True when the input was taken or refused with a
clear one-line error, and raises (failing the property) on a traceback-shaped failure. `COUNTS` tallies inputs."""

from __future__ import annotations

import os
import random
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hypothesis import strategies as st

from medcoder.errors import MedcoderError

COUNTS: Counter[str] = Counter()
FIELDS = ["model", "backend", "base_url", "n_gpu_layers", "n_ctx", "n_threads", "n_batch", "seed", "temperature",
          "max_tokens", "cache_dir", "models_dir"]
_TYPOS = ["modle", "n_ctxx", "threads", "gpu_layers", "Model", "temprature", "max-tokens", ""]


def _one_line(exc: BaseException, *must_name: str) -> bool:
    text = str(exc)
    assert isinstance(exc, MedcoderError), f"{type(exc).__name__}: {text}"
    assert text and "\n" not in text.strip() and "Traceback" not in text, text
    for name in must_name:
        assert name in text, (name, text)
    return True


@contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


# -- config files and variables ------------------------------------------------------------------------------
_value = st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True), st.text(max_size=12), st.booleans(),
                   st.just("[1, 2"), st.just('"unterminated'), st.just("{a = 1}"), st.just("[]"))
config_texts = st.one_of(
    st.lists(st.tuples(st.sampled_from(FIELDS + _TYPOS), _value), max_size=5).map(
        lambda kv: "\n".join(f"{k} = {v!r}".replace("'", '"')
                             if not isinstance(v, str) or not v.startswith(("[", "{", '"'))
                             else f"{k} = {v}" for k, v in kv)),
    st.text(max_size=80),
)


def check_config_text(text: str) -> bool:
    """A config file of any content: settings load, or one line naming the file."""
    COUNTS["config files"] += 1
    from medcoder.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass") if _encodable(text) else path.write_bytes(
            text.encode("utf-8", "replace"))
        with _env(MEDCODER_CONFIG=str(path)):
            try:
                load_settings()
            except MedcoderError as exc:
                return _one_line(exc, str(path))
    return True


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


env_pairs = st.lists(st.tuples(st.sampled_from(FIELDS + ["modle", "nctx"]), st.text(max_size=10).filter(
    lambda s: "\x00" not in s and _encodable(s))), max_size=3)


def check_env(pairs: list[tuple[str, str]]) -> bool:
    """`MEDCODER_*` variables of any value: settings load, or one line naming the variable."""
    COUNTS["MEDCODER_* variables"] += 1
    from medcoder.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp, _env(MEDCODER_CONFIG=str(Path(tmp) / "none.toml"),
                                                     **{f"MEDCODER_{k.upper()}": v for k, v in pairs}):
        try:
            load_settings()
        except MedcoderError as exc:
            return _one_line(exc, "MEDCODER_")
    return True


# -- notes -------------------------------------------------------------------------------------------------------
def special_notes() -> dict[str, bytes]:
    """The notes a new user throws at a tool on day one."""
    line = "Assessment: hypertension. "
    return {
        "binary": bytes(range(256)) * 4, "invalid utf-8": b"Assessment: \xff\xfe asthma",
        "nul bytes": b"asthma\x00\x00",
        "only whitespace": b" \n\t\r\n  ", "empty": b"", "1 MB": (line * 40_000).encode(),
        "10 MB": (line * 400_000).encode(),
        "right-to-left": "التشخيص: ارتفاع ضغط الدم. Assessment: hypertension".encode(),
        "emoji": "Assessment: asthma 😷🫁 and hypertension 💊".encode(), "one 100 kB line": (line * 4000).encode(),
        "bom": "\ufeffAssessment: asthma.".encode(), "control chars": b"Assessment:\x1b[31m asthma\x07",
    }


def check_note_bytes(data: bytes) -> bool:
    """Any bytes as a note: read as text, or refused in one line; the injection scan never fails on text."""
    COUNTS["note bytes"] += 1
    from medcoder.injection import coding_text
    from medcoder.notetext import read_note

    try:
        text = read_note(data, 200_000)
    except MedcoderError as exc:
        return _one_line(exc)
    assert len(coding_text(text)) == len(text)
    return True


# -- workflow YAML -------------------------------------------------------------------------------------------------
def builtin_yaml() -> dict[str, str]:
    from medcoder.engine.spec import BUILTIN, load_spec

    return {name: load_spec(name)[1] for name in BUILTIN}


def mutate(text: str, seed: int) -> str:
    """A random edit a person makes by mistake: a line dropped, duplicated, re-indented, a value or key changed."""
    rng = random.Random(seed)
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        op = rng.randrange(7)
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2:
            lines[i] = " " * rng.randint(0, 5) + lines[i].lstrip()
        elif op == 3 and ":" in lines[i]:
            key, _, _ = lines[i].partition(":")
            lines[i] = f"{key}: {rng.choice(['', '[', '{x: 1}', 'nope', '-1', '999999', 'null', 'true', '[a, b]'])}"
        elif op == 4 and ":" in lines[i]:
            _, _, rest = lines[i].partition(":")
            indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
            lines[i] = f"{indent}{rng.choice(['nodez', 'id', 'agent', 'x'])}:{rest}"
        elif op == 5:
            lines[i] = lines[i].replace("-", "", 1)
        else:
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
        if not lines:
            lines = [""]
    return "\n".join(lines)


def check_workflow_yaml(text: str) -> bool:
    """A mutated workflow: it parses (the edit was harmless) or one line naming the file, line and field."""
    COUNTS["workflow YAML"] += 1
    from medcoder.engine.spec import parse_spec

    try:
        parse_spec(text, "mutated.yaml")
    except MedcoderError as exc:
        return _one_line(exc, "mutated.yaml")
    return True


# -- batch lines and datasets ------------------------------------------------------------------------------------------
jsonl_lines = st.lists(st.one_of(
    st.binary(max_size=60), st.just(b'{"id": 1}'), st.just(b'{"text": "x"}'), st.just(b'{"id": null, "text": 5}'),
    st.just(b"[1, 2]"), st.just(b'{"id": "a", "text": "Assessment: asthma."}'), st.just(b'"just a string"'),
    st.just(b'{"id": "a", "text": ["x"]}')), max_size=6)


def check_batch_lines(lines: list[bytes]) -> bool:
    """A JSONL batch input of any lines: each becomes an item (bad ones recorded as error items), or one line."""
    COUNTS["batch JSONL files"] += 1
    from medcoder.batch.runner import iter_inputs

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.jsonl"
        path.write_bytes(b"\n".join(lines))
        try:
            items = list(iter_inputs(path))
        except MedcoderError as exc:
            return _one_line(exc)
        assert all(isinstance(i.id, str) and isinstance(i.text, (str, bytes)) for i in items)
    return True


def check_dataset(name: str, data: bytes) -> bool:
    """A dataset file of any content: loaded, or one line naming it."""
    COUNTS["dataset files"] += 1
    from medcoder.ranking.datasets import load_dataset

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            load_dataset(path)
        except MedcoderError as exc:
            return _one_line(exc)
    return True


# -- CLI arguments --------------------------------------------------------------------------------------------------
_WORDS = ["kb", "lookup", "search", "children", "ancestors", "models", "list", "verify", "audit", "show", "export",
          "validate", "graph", "doctor", "--only", "config", "--json", "-w", "nope", "full", "--format", "xml", "-n",
          "-1", "0", "99999999999999999999", "I10", "ZZZ.9", "--system", "klingon", "atc", "icd10cm", "--help", "",
          "-", "/nonexistent/file", "--out", "--limit", "é", "\u202e", "code", "-m", "fake", "--run-id", "x" * 300]

cli_args = st.lists(st.sampled_from(_WORDS), min_size=1, max_size=5)


def check_cli(args: list[str]) -> bool:
    """Any command line: exits with a code and at most one error line, never a traceback."""
    COUNTS["CLI argument lists"] += 1
    from click.testing import CliRunner

    from medcoder.cli import main

    if "code" in args and "fake" not in args:
        args = [*args, "-m", "fake"]  # never load a real model from a fuzzed line
    result = CliRunner().invoke(main, args, input="Assessment: asthma.\n")
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), f"{args}: {type(exc).__name__}: {exc}"
    assert "Traceback" not in result.output, (args, result.output[-500:])
    return True
