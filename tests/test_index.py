"""Alphabetic Index, Table of Drugs and Neoplasm Table: term trees linked to the tabular list."""

from __future__ import annotations


def test_alphabetic_index_tree(kb) -> None:
    ai = kb.alphabetic_index
    assert len(ai.entries) == 81_024
    walked = ai.lookup("diabetes, type 2")
    assert [e.term for e in walked] == ["Diabetes, diabetic", "type 2"]
    assert walked[-1].code == "E11.9" and walked[-1].linked == "E11.9"
    assert walked[0].nonessential == "(mellitus) (sugar)"
    assert ai.trail(walked[-1].id) == ["Diabetes, diabetic", "type 2"]


def test_index_cross_references(kb) -> None:
    ai = kb.alphabetic_index
    [abdominalgia] = ai.lookup("abdominalgia")
    assert abdominalgia.see == "Pain, abdominal"
    abdomen = ai.lookup("abdomen")[0]
    assert abdomen.see_also == "condition"
    assert [c.term for c in ai.children(abdomen.id)][:2] == ["acute", "angina"]


def test_index_walks_through_intermediate_levels(kb) -> None:
    walked = kb.alphabetic_index.lookup("fracture, rib, multiple")
    assert walked[-1].code == "S22.4-" and walked[-1].linked == "S22.4"
    assert kb.alphabetic_index.lookup("heart failure")[-1].code == "I50.9"


def test_drug_table(kb) -> None:
    [metformin] = kb.drug_table.lookup("metformin")
    assert metformin.cells["Adverse effect"] == "T38.3X5"
    assert metformin.cells["Underdosing"] == "T38.3X6"
    assert metformin.linked is not None


def test_neoplasm_table(kb) -> None:
    walked = kb.neoplasm_table.lookup("neoplasm, breast")
    assert walked[-1].term == "breast"
    assert walked[-1].cells["Malignant Secondary"] == "C79.81"
    assert walked[-1].linked == "C50.9"


def test_index_search(kb) -> None:
    hits = kb.alphabetic_index.search("hypertension", k=3)
    assert hits and "Hypertension" in kb.alphabetic_index.trail(hits[0].id)[0]
