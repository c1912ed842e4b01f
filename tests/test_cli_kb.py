"""`medcoder kb` through click, and once through the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from medcoder.cli import main


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_show_json() -> None:
    code, out, _ = run("kb", "show", "E11.65", "--json")
    data = json.loads(out)
    assert code == 0 and data["billable"] is True
    assert data["path"] == ["CH4", "E08-E13", "E11", "E11.6", "E11.65"]


def test_children_notes_validate() -> None:
    children = json.loads(run("kb", "children", "E11", "--json")[1])
    assert [c["code"] for c in children][0] == "E11.0" and children[-2]["code"] == "E11.9"
    notes = json.loads(run("kb", "notes", "E11", "--json")[1])
    assert notes["notes"]["excludes1"]
    code, out, _ = run("kb", "validate", "S22.49", "S22.49XA", "--json")
    first, second = json.loads(out)
    assert first["needs_seventh"] and not first["valid"] and second["valid"]
    assert code == 1  # one invalid code
    assert run("kb", "validate", "S22.49XA")[0] == 0


def test_block_and_category_differ() -> None:
    b10 = json.loads(run("kb", "show", "B10", "--json")[1])
    block = json.loads(run("kb", "show", "B10-B10", "--json")[1])
    assert b10["kind"] == "category" and block["kind"] == "block" and b10["parent"] == "B10-B10"


def test_atc() -> None:
    data = json.loads(run("kb", "show", "A10BA02", "--system", "atc", "--json")[1])
    assert data["label"] == "metformin" and data["path"] == ["A", "A10", "A10B", "A10BA", "A10BA02"]
    kids = {c["code"] for c in json.loads(run("kb", "children", "A10", "--system", "atc", "--json")[1])}
    assert {"A10A", "A10B"} <= kids


def test_index_and_search() -> None:
    data = json.loads(run("kb", "index", "diabetes, type 2", "--json")[1])
    assert data["code"] == "E11.9"
    hits = json.loads(run("kb", "search", "type 2 diabetes with hyperglycemia", "--json")[1])
    assert "E11.65" in [h["code"] for h in hits[:3]]


def test_tables_are_readable() -> None:
    code, out, _ = run("kb", "path", "E11.65")
    assert code == 0 and "Type 2 diabetes mellitus with hyperglycemia" in out


@pytest.mark.parametrize("args", [("kb", "show", "ZZZ9"), ("kb", "children", "Q"), ("kb", "notes", "nope"),
                                  ("kb", "show", "XX", "--system", "atc")])
def test_unknown_code_is_one_line_and_exit_1(args: tuple[str, ...]) -> None:
    code, out, err = run(*args)
    assert code == 1
    assert err.strip().count("\n") == 0 and err.startswith("error: unknown")
    assert "Traceback" not in out + err


def test_console_script() -> None:
    exe = shutil.which("medcoder", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("medcoder console script not installed next to this Python")
    proc = subprocess.run([exe, "kb", "show", "zz"], capture_output=True, text=True, env=os.environ)
    assert proc.returncode == 1 and proc.stderr.strip() == "error: unknown icd10cm code: 'zz'"


def test_kb_read_reads_a_diagnosis_through_the_index_like_a_coder() -> None:
    data = json.loads(run("kb", "read", "Non-cardiac", "chest", "pain", "--json")[1])
    assert data["trail"] == ["Pain", "chest", "non-cardiac"] and data["complete"]
    assert [b["code"] for b in data["billable"]] == ["R07.89"]
    code, out, _ = run("kb", "read", "Bitemporal", "hemianopia")
    assert code == 0 and "H53.47" in out and "bitemporal not read" in out
