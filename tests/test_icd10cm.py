"""ICD-10-CM graph: counts against the CDC source, every note type, the tree shape and the cache."""

from __future__ import annotations

import pickle
from collections import Counter

import networkx as nx
import pytest

from medcoder.errors import UnknownCodeError
from medcoder.knowledge.icd10cm import load_icd10cm, normalize_icd, parse_code_refs, tabular_xml_path


def test_counts_match_the_cdc_files(icd) -> None:
    kinds = Counter(n.kind for n in icd.iter_nodes())
    assert kinds["chapter"] == 22
    assert kinds["extension"] == 51_305  # the 7th-character codes
    billable = {n.code for n in icd.iter_nodes() if n.billable}
    # the CDC's own list of every valid code, as simple-icd-10-cm ships it
    code_list = tabular_xml_path().parent.glob("code-list-*.txt")
    listed = {normalize_icd(line.strip()) for f in code_list for line in f.open() if line.strip()[:1].isalpha()}
    listed = {c for c in listed if "-" not in c}
    assert billable <= listed
    assert len(billable) == 74_719  # FY2026 billable codes; 74,736 "leaves" in simple-icd-10-cm add 12 pseudo-blocks
    non_billable_listed = listed - billable
    assert all(icd.children(c) for c in non_billable_listed)


def test_tree_without_self_loops_and_blocks_apart_from_categories(icd) -> None:
    assert nx.is_tree(icd.graph)
    assert nx.number_of_selfloops(icd.graph) == 0
    b10 = icd.node("B10")
    assert b10.kind == "category"
    assert b10.parent == "B10-B10"
    assert icd.node("B10-B10").kind == "block"
    assert [n.code for n in icd.children("B10-B10")] == ["B10"]


@pytest.mark.parametrize("typed", ["e1165", "E11.65", "E1165", " e11.65 "])
def test_codes_are_normalised(icd, typed: str) -> None:
    assert icd.node(typed).code == "E11.65"


def test_node_fields_and_path(icd) -> None:
    node = icd.node("E11.65")
    assert node.label == "Type 2 diabetes mellitus with hyperglycemia"
    assert node.billable and node.kind == "code"
    assert [n.code for n in icd.path("E11.65")] == ["CH4", "E08-E13", "E11", "E11.6", "E11.65"]
    assert icd.parent("E11.65").code == "E11.6"
    assert icd.parent("CH4") is None
    assert [n.code for n in icd.children("E11")] == [
        "E11.0", "E11.1", "E11.2", "E11.3", "E11.4", "E11.5", "E11.6", "E11.8", "E11.9", "E11.A"]
    assert len(icd.roots()) == 22


@pytest.mark.parametrize(
    ("code", "kind", "fragment"),
    [
        ("J45.909", "inclusion_terms", "Asthma NOS"),
        ("E11", "includes", "diabetes NOS"),
        ("E11", "excludes1", "type 1 diabetes mellitus (E10.-)"),
        ("I10", "excludes2", None),
        ("H36", "code_first", None),
        ("E11", "use_additional_code", "insulin (Z79.4)"),
        ("J44", "code_also", None),
        ("B03", "notes", "smallpox had been eradicated"),
        ("S22", "seventh_character_note", None),
        ("S22", "seventh_characters", "A: initial encounter for closed fracture"),
        ("S22.49", "placeholder_x", "S22.49XA"),
    ],
)
def test_every_note_type(icd, code: str, kind: str, fragment: str | None) -> None:
    notes = icd.node(code).notes
    assert kind in notes and notes[kind]
    if fragment:
        assert any(fragment in t for t in notes[kind])


def test_inherited_notes_say_where_from(icd) -> None:
    notes = icd.notes("E11.65")
    assert {"text": "type 1 diabetes mellitus (E10.-)", "from": "E11"} in notes["excludes1"]


def test_seventh_characters_and_placeholder(icd) -> None:
    s2249 = icd.node("S22.49")
    assert not s2249.billable and s2249.attrs["needs_seventh"] and s2249.attrs["placeholder_x"]
    assert icd.node("S22.49XA").billable
    assert icd.node("S22.49XA").label.endswith("initial encounter for closed fracture")
    # the CDC list drops subsequent/sequela encounters for death before consciousness
    assert "S06.1X7A" in icd and "S06.1X7D" not in icd


def test_excludes1_conflicts(icd) -> None:
    found = icd.excludes1_conflicts(["E11.9", "E10.9", "I10"])
    assert len(found) == 1 and {found[0]["code"], found[0]["excludes"]} == {"E11.9", "E10.9"}
    assert icd.excludes1_conflicts(["E11.9", "I10"]) == []
    assert parse_code_refs("transitory disorders (P70-P74)") == [("P70", "P74")]
    assert parse_code_refs("herpes zoster (B01.-, B02.-)") == [("B01", "B01"), ("B02", "B02")]


def test_unknown_codes_raise(icd) -> None:
    with pytest.raises(UnknownCodeError, match="ZZZ"):
        icd.node("ZZZ")
    assert "E11.99" not in icd


def test_lexical_search(icd) -> None:
    hits = icd.search("type 2 diabetes mellitus with hyperglycemia", k=3)
    assert hits[0].code == "E11.65"
    assert all(icd.node(h.code).kind == "category" for h in icd.search("diabetes", k=5, kinds=["category"]))


@pytest.mark.slow
def test_cache_rebuilds_when_corrupt(tmp_path, monkeypatch) -> None:
    import medcoder.knowledge.icd10cm as mod

    monkeypatch.setenv("MEDCODER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(mod, "_LOADED", {})
    first = load_icd10cm()
    [cache] = list((tmp_path / "cache").glob("icd10cm-*.pkl"))
    assert pickle.loads(cache.read_bytes()).version == first.version
    cache.write_bytes(b"not a pickle")
    monkeypatch.setattr(mod, "_LOADED", {})
    again = load_icd10cm()
    assert len(again) == len(first)
    assert pickle.loads(cache.read_bytes()).version == first.version  # rewritten
