"""Bad input, fuzzed: every way in ends in a result or one clear line, never a traceback (counts in fuzz.COUNTS)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability import fuzz, harness

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@FAST
@given(fuzz.config_texts)
def test_config_files(text: str) -> None:
    assert fuzz.check_config_text(text)


@FAST
@given(fuzz.env_pairs)
def test_medcoder_variables(pairs: list[tuple[str, str]]) -> None:
    assert fuzz.check_env(pairs)


@FAST
@given(st.binary(max_size=2000))
def test_note_bytes(data: bytes) -> None:
    assert fuzz.check_note_bytes(data)


@pytest.mark.parametrize("name", list(fuzz.special_notes()))
def test_special_notes(name: str) -> None:
    assert fuzz.check_note_bytes(fuzz.special_notes()[name])


@FAST
@given(st.sampled_from(sorted(fuzz.builtin_yaml())), st.integers(0, 10**9))
def test_mutated_workflows(name: str, seed: int) -> None:
    assert fuzz.check_workflow_yaml(fuzz.mutate(fuzz.builtin_yaml()[name], seed))


@FAST
@given(fuzz.jsonl_lines)
def test_batch_jsonl_lines(lines: list[bytes]) -> None:
    assert fuzz.check_batch_lines(lines)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.sampled_from(["d.jsonl", "d.tsv", "d.csv"]), st.binary(max_size=300))
def test_dataset_files(name: str, data: bytes) -> None:
    assert fuzz.check_dataset(name, data)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(fuzz.cli_args)
def test_cli_arguments(args: list[str]) -> None:
    assert fuzz.check_cli(args)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["binary", "invalid utf-8", "only whitespace", "10 MB", "emoji", "right-to-left"])
def test_the_cli_on_special_notes_exits_with_one_line_or_codes(tmp_path: Path, name: str) -> None:
    note = tmp_path / "note.txt"
    note.write_bytes(fuzz.special_notes()[name])
    proc = harness.medcoder(["code", "-m", "fake", "-w", "full", str(note)], tmp_path / "home")
    assert proc.returncode == 0 or harness.one_clear_line(proc), proc.stderr.decode()[-600:]
    if name in ("emoji", "right-to-left"):
        assert proc.returncode == 0


def test_a_misspelt_config_key_is_one_line_for_every_command(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('n_ctx = 2048\nmodle = "x"\n')
    for args in (["code", "-m", "fake", "-"], ["models", "list"], ["kb", "lookup", "I10"]):
        proc = harness.medcoder(args, home, stdin=b"Assessment: asthma.")
        assert proc.returncode == 1 and harness.one_clear_line(proc), proc.stderr.decode()
        err = proc.stderr.decode()
        assert "config.toml:2" in err and "'modle'" in err and "did you mean 'model'" in err
    (home / "config.toml").write_text('model = "x\n')
    proc = harness.medcoder(["models", "list"], home)
    err = proc.stderr.decode()
    assert harness.one_clear_line(proc) and "not valid TOML" in err and "line 1" in err
    doctor = harness.medcoder(["doctor", "--only", "config"], home)  # doctor still runs, and says it
    assert doctor.returncode == 1 and "config.toml" in doctor.stdout.decode()
