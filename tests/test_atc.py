"""ATC: five levels, DDDs, combination products, and a user's own WHOCC file."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from medcoder.errors import DataFileError
from medcoder.knowledge.atc import ATC


def test_levels_and_counts(atc) -> None:
    levels = [0, 0, 0, 0, 0]
    for n in atc.iter_nodes():
        levels[n.depth - 1] += 1
    assert levels == [14, 94, 271, 939, 5678]
    assert nx.is_tree(atc.graph)


def test_metformin(atc) -> None:
    node = atc.node("a10ba02")
    assert node.label == "metformin" and node.depth == 5 and node.billable
    assert [n.code for n in atc.path("A10BA02")] == ["A", "A10", "A10B", "A10BA", "A10BA02"]
    assert node.attrs["ddd"] == [{"ddd": "2", "unit": "g", "route": "O"}]
    assert {"A10A", "A10B"} <= {n.code for n in atc.children("A10")}


def test_combination_products(atc) -> None:
    assert any("Pylera" in t for t in atc.node("A02BD08").notes["combination_products"])


def test_search(atc) -> None:
    assert atc.search("metformin", k=3)[0].code == "A10BA02"


def test_attribution_ships_with_data() -> None:
    from importlib import resources

    data = resources.files("medcoder.knowledge") / "data"
    assert "CC BY-NC-SA" in (data / "PROVENANCE.md").read_text()
    assert (data / "LICENSE-ATC-CC-BY-NC-SA-4.0.txt").is_file()


def test_users_own_file(tmp_path: Path) -> None:
    own = tmp_path / "whocc.csv"
    own.write_text(
        "atc_code,atc_name,ddd,uom,adm_r,note\n"
        "A,ALIMENTARY TRACT AND METABOLISM,NA,NA,NA,NA\n"
        "A10,DRUGS USED IN DIABETES,NA,NA,NA,NA\n"
        "A10B,BLOOD GLUCOSE LOWERING DRUGS,NA,NA,NA,NA\n"
        "A10BA,Biguanides,NA,NA,NA,NA\n"
        "A10BA02,metformin,2,g,O,NA\n"
    )
    onto = ATC(own)
    assert len(onto) == 5 and onto.node("A10BA02").label == "metformin"


def test_bad_user_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name\nA,X\n")
    with pytest.raises(DataFileError, match="missing column"):
        ATC(bad)
    orphan = tmp_path / "orphan.csv"
    orphan.write_text("atc_code,atc_name\nA10BA02,metformin\n")
    with pytest.raises(DataFileError, match="no parent"):
        ATC(orphan)
    with pytest.raises(DataFileError, match="not found"):
        ATC(tmp_path / "missing.csv")
