"""Plugins by entry points (a real distribution installed with pip, used from a workflow YAML), and one
Workflow coding several notes at once from threads, every event in its own run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from medcoder import plugins
from medcoder.audit.store import SQLiteAuditStore
from medcoder.engine.workflow import RunLog, load_workflow
from medcoder.llm import load_llm
from medcoder.records import check_state
from medcoder.result import CodingResult
from tests.test_workflow_logic import LEXICON, workflow

PLUGIN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "medcoder-keyword-spotter"
version = "0.1.0"

[project.entry-points."medcoder.agents"]
keyword_spotter = "medcoder_keyword_spotter:keyword_spotter"

[project.entry-points."medcoder.llm_backends"]
tallied = "medcoder_keyword_spotter:load_tallied"
"""

PLUGIN_MODULE = '''\
"""A plugin agent: propose a code wherever a word occurs (evidence offsets included); and a plugin model
backend, the package's deterministic model under a name of its own."""
from medcoder.agents import AgentParams, register_agent
from medcoder.llm import FakeLLM
from medcoder.records import Proposal, Span


class TalliedLLM(FakeLLM):
    """Answers every question with the chapter it tallies most words for (here: always endocrine)."""
    backend = "tallied"


def load_tallied(settings):
    return TalliedLLM(lambda messages, schema: {"system": "endocrine"} if schema else "endocrine")


class SpotParams(AgentParams):
    word: str
    code: str
    system: str = "icd10cm"


@register_agent("keyword_spotter", SpotParams)
def keyword_spotter(params, ctx):
    onto = ctx.kb.ontology(params.system)

    def run(state):  # a medcoder.state.CodingState
        at = state.note.lower().find(params.word.lower())
        if at < 0:
            return {}
        span = Span(start=at, end=at + len(params.word), text=state.note[at:at + len(params.word)])
        prop = Proposal(entity_id="spot", code=params.code, system=params.system, label=onto.label(params.code),
                        confidence=1.0, path=[n.code for n in onto.path(params.code)], evidence=[span])
        ctx.emit("proposal", prop.to_state())
        return {"proposals": {"spot": prop}}

    return run
'''

PLUGIN_WORKFLOW = """\
name: plugin-demo
models: {}
knowledge: {systems: [icd10cm], retriever: none}
nodes:
  - {id: spot, agent: keyword_spotter, params: {word: asthma, code: J45.909}}
  - {id: finalize, agent: finalize}
edges:
  - {from: START, to: spot}
  - {from: spot, to: finalize}
  - {from: finalize, to: END}
"""


@pytest.mark.slow
def test_a_plugin_distribution_installed_with_pip_provides_an_agent(tmp_path: Path) -> None:
    src = tmp_path / "plugin"
    (src / "medcoder_keyword_spotter").mkdir(parents=True)
    (src / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (src / "medcoder_keyword_spotter" / "__init__.py").write_text(PLUGIN_MODULE)
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--target", str(target), str(src)], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    assert list(target.glob("medcoder_keyword_spotter-0.1.0.dist-info/entry_points.txt"))
    (tmp_path / "wf.yaml").write_text(PLUGIN_WORKFLOW)
    (tmp_path / "note.txt").write_text("History: childhood asthma, well controlled.\n")
    env = {**os.environ, "PYTHONPATH": str(target), "MEDCODER_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-m", "medcoder", "code", str(tmp_path / "note.txt"), "-w",
                          str(tmp_path / "wf.yaml"), "--format", "json"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    codes = json.loads(out.stdout)["codes"]
    assert [(c["code"], c["evidence"][0]["text"]) for c in codes] == [("J45.909", "asthma")]
    # the plugin's backend passes the contract suite medcoder ships for backends (medcoder.testing)
    suite = ("from medcoder.llm import load_llm\nfrom medcoder.testing import check_llm_backend\n"
             "llm = load_llm('any', backend='tallied')\nassert llm.backend == 'tallied'\n"
             "check_llm_backend(llm)\nprint('contract passed')\n")
    checked = subprocess.run([sys.executable, "-c", suite], capture_output=True, text=True, env=env)
    assert checked.returncode == 0 and "contract passed" in checked.stdout, checked.stderr
    # without the plugin on the path, the same workflow names what is missing
    env.pop("PYTHONPATH")
    bad = subprocess.run([sys.executable, "-m", "medcoder", "code", str(tmp_path / "note.txt"), "-w",
                          str(tmp_path / "wf.yaml")], capture_output=True, text=True, env=env)
    assert bad.returncode != 0 and "unknown agent 'keyword_spotter'" in bad.stderr and "Traceback" not in bad.stderr


def test_the_built_in_agents_and_backends_are_entry_points() -> None:
    assert {"navigator", "ranker", "critic", "finalize", "term"} <= set(plugins.agents.names())
    assert {"llama_cpp", "http", "fake", "replay"} <= set(plugins.llm_backends.names())
    assert load_llm("fake").backend == "fake"
    with pytest.raises(Exception, match="unknown backend 'nope'; installed: .*llama_cpp"):
        load_llm("test", backend="nope")


def test_replay_is_a_backend_settings_can_name(tmp_path: Path) -> None:
    from medcoder.llm import CallRecord, FakeLLM

    fake = FakeLLM()
    records: list[CallRecord] = []
    fake.observe(records.append)
    fake.choose("which?", [("a", "apple"), ("b", "banana")])
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))
    replay = load_llm(str(path), backend="replay")
    assert replay.choose("which?", [("a", "apple"), ("b", "banana")]).best.key == fake.choose(
        "which?", [("a", "apple"), ("b", "banana")]).best.key


NOTES = {
    "a": "HISTORY OF PRESENT ILLNESS:\nHypertension for years.\n\nMEDICATIONS:\nLisinopril 20 mg daily.\n",
    "b": "HISTORY OF PRESENT ILLNESS:\nType 2 diabetes, new.\n\nMEDICATIONS:\nMetformin 500 mg twice daily.\n",
    "c": "HISTORY OF PRESENT ILLNESS:\nAsthma since childhood.\n",
}


def test_one_workflow_codes_several_notes_at_once_from_threads(tmp_path: Path) -> None:
    store = SQLiteAuditStore(tmp_path / "audit.sqlite")
    wf, fake = workflow(checkpoint_path=tmp_path / "c.sqlite", audit=store)
    alone = {k: {(c.system, c.code) for c in wf.run(text, run_id=f"alone-{k}").codes} for k, text in NOTES.items()}
    logs = {k: RunLog(f"thread-{k}") for k in NOTES}
    results: dict[str, CodingResult] = {}
    start = threading.Barrier(len(NOTES))

    def code(k: str) -> None:
        start.wait()
        results[k] = wf.run(NOTES[k], run_id=logs[k].run_id, log=logs[k])

    threads = [threading.Thread(target=code, args=(k,)) for k in NOTES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert set(results) == set(NOTES)
    for k, text in NOTES.items():
        assert {(c.system, c.code) for c in results[k].codes} == alone[k]
        words = {w for w, _ in LEXICON if w in text.lower()}
        # every model call and event of the run is about its own note only
        for call in logs[k].calls:
            prompt = " ".join(re.findall(r'"""(.*?)"""', " ".join(m["content"] for m in call.messages), re.S)).lower()
            assert not any(w in prompt for w, _ in LEXICON if w not in words), (k, prompt[:200])
        mentions = {e["mention"] for ev in logs[k].events if ev["kind"] == "entities" for e in ev["data"]["entities"]}
        assert mentions == words
        assert store.verify(logs[k].run_id).ok
        assert check_state(wf.state(logs[k].run_id)) == []  # every record in the state is a typed record
        stored_calls = [ev for ev in store.events(logs[k].run_id) if ev.kind == "model_call"]
        assert len(stored_calls) == len(logs[k].calls) and all(ev.node for ev in stored_calls)
    wf.close()


CODE_YAML = """name: calls-python
nodes:
  - id: shout
    agent: builtins:print
  - id: rank
    agent: ranker
    params: {system: icd10cm, verify: false}
edges:
  - {from: START, to: shout}
  - {from: shout, to: rank}
  - {from: rank, to: END}
"""


def test_a_workflow_that_names_python_code_is_said_to_be_code_and_servers_refuse_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`agent: builtins:print` is code: validate says so, serve and batch refuse it without --allow-code,
    and a run records which module (file and sha256) ran."""
    from click.testing import CliRunner

    from medcoder.cli import main

    monkeypatch.setenv("MEDCODER_HOME", str(tmp_path))
    spec = tmp_path / "calls-python.yaml"
    spec.write_text(CODE_YAML)
    ok = CliRunner().invoke(main, ["validate", str(spec)])
    assert ok.exit_code == 0 and "node shout runs Python code (builtins:print)" in ok.output
    assert "--allow-code" in ok.output
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("Assessment: essential hypertension.")
    for args in (["serve", "-w", str(spec), "--port", "0"], ["batch", str(notes), "-o", str(tmp_path / "o.jsonl"),
                                                            "-w", str(spec)]):
        refused = CliRunner().invoke(main, args)
        assert refused.exit_code == 1 and "runs Python code (shout: builtins:print)" in refused.output, refused.output
        assert "--allow-code" in refused.output
    assert not (tmp_path / "o.jsonl").exists()
    allowed = CliRunner().invoke(main, ["batch", str(notes), "-o", str(tmp_path / "o.jsonl"), "-w", str(spec),
                                        "--allow-code"])
    assert allowed.exit_code == 0, allowed.output
    with load_workflow(spec, checkpoint_path=tmp_path / "c.sqlite", audit=SQLiteAuditStore(tmp_path / "a.sqlite")) \
            as wf:
        wf.run("Assessment: essential hypertension.", run_id="code-1")
        assert wf.audit is not None
        run = wf.audit.run("code-1")
    code = run.settings["code"]["shout"]
    assert code["module"] == "builtins" and code["agent"] == "builtins:print"
    assert {"file", "sha256"} <= set(code)
