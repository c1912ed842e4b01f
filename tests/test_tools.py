"""The knowledge tools as LangChain tools: schemas, normalisation, validation and errors as answers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from medcoder.tools import make_tools, validate_code


@pytest.fixture(scope="module")
def tools(kb):
    calls: list[tuple] = []
    return {t.name: t for t in make_tools(kb, callback=lambda *a: calls.append(a))}, calls


def test_every_tool_has_a_schema(tools) -> None:
    by_name, _ = tools
    assert set(by_name) == {"lookup_code", "get_children", "get_path", "get_notes", "validate_codes",
                            "excludes1_conflicts", "search_codes", "index_lookup", "drug_lookup",
                            "neoplasm_lookup"}
    for tool in by_name.values():
        assert tool.args_schema is not None and tool.description


@pytest.mark.parametrize("typed", ["e1165", "E11.65", "E1165"])
def test_lookup_normalises(tools, typed: str) -> None:
    by_name, _ = tools
    assert by_name["lookup_code"].invoke({"code": typed})["code"] == "E11.65"


def test_validate(kb) -> None:
    assert validate_code("S22.49XA", kb=kb)["valid"] is True
    needs = validate_code("S22.49", kb=kb)
    assert needs["exists"] and not needs["valid"] and needs["needs_seventh"] and needs["placeholder_x"]
    assert "S22.49XA" in needs["suggestions"]
    missing_x = validate_code("S2249A", kb=kb)
    assert missing_x["suggestion"] == "S22.49XA" and not missing_x["exists"]
    assert validate_code("E11", kb=kb)["valid"] is False
    assert validate_code("E11.99", kb=kb)["nearest"] == "E11.9"
    assert validate_code("A10BA02", "atc", kb=kb)["valid"] is True


def test_errors_come_back_as_answers_and_reach_the_callback(tools) -> None:
    by_name, calls = tools
    before = len(calls)
    out = by_name["get_children"].invoke({"code": "NOPE1"})
    assert "unknown icd10cm code" in out["error"]
    name, args, result, error = calls[before]
    assert name == "get_children" and args["code"] == "NOPE1" and result is None and error


def test_schema_rejects_bad_arguments(tools) -> None:
    by_name, _ = tools
    with pytest.raises(ValidationError):
        by_name["search_codes"].invoke({"text": "x", "system": "snomed"})


def test_excludes1_and_tables(tools) -> None:
    by_name, _ = tools
    [conflict] = by_name["excludes1_conflicts"].invoke({"codes": ["E11.9", "E10.9"]})
    assert "E10" in conflict["note"]
    assert by_name["index_lookup"].invoke({"term": "diabetes, type 2"})["code"] == "E11.9"
    drug = by_name["drug_lookup"].invoke({"term": "metformin"})
    assert drug["walk"][0]["cells"]["Adverse effect"] == "T38.3X5"
    assert by_name["neoplasm_lookup"].invoke({"term": "neoplasm, lung"})["walk"][-1]["term"].startswith("lung")
    hits = by_name["search_codes"].invoke({"text": "metformin", "system": "atc", "k": 3})
    assert hits[0]["code"] == "A10BA02"
