"""Batch runs (resume after a kill, bad notes, workers), dataset loaders, metrics against hand-computed
cases, and the eval/bench harness through the real stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medcoder import load_workflow
from medcoder.batch import BatchItem, code_batch, iter_inputs
from medcoder.batch.runner import _done_ids
from medcoder.errors import MedcoderError
from medcoder.ranking import metrics
from medcoder.ranking.datasets import load_codiesp, load_dataset, load_dpd, load_jsonl, sentences

REPO = Path(__file__).resolve().parents[1]
SLOW_SPEC = """
name: slow
nodes:
  - id: work
    agent: tests.flaky_agent:slow
  - id: finalize
    agent: finalize
edges:
  - {from: START, to: work}
  - {from: work, to: finalize}
  - {from: finalize, to: END}
"""


# -- metrics, by hand ---------------------------------------------------------------------------


def test_micro_macro_on_a_hand_computed_case() -> None:
    gold = [{"A00.0", "B01.1"}, {"C02.2"}]
    pred = [{"A00.0", "D03.3"}, {"C02.2", "B01.1"}]
    m = metrics.micro(gold, pred)
    assert (m.tp, m.fp, m.fn) == (2, 2, 1)
    assert m.precision == pytest.approx(0.5) and m.recall == pytest.approx(2 / 3) and m.f1 == pytest.approx(4 / 7)
    # per code: A00.0 f1 1; B01.1 tp0 fp1 fn1 -> 0; C02.2 -> 1; D03.3 -> 0  => macro F1 0.5
    assert metrics.macro(gold, pred).f1 == pytest.approx(0.5)
    assert metrics.micro([set()], [set()]).f1 == 0.0


def test_average_precision_matches_the_codiesp_definition() -> None:
    # relevant at ranks 1 and 3 of 2 gold codes: (1/1 + 2/3) / 2
    assert metrics.average_precision({"A", "B"}, ["A", "X", "B"]) == pytest.approx((1 + 2 / 3) / 2)
    assert metrics.average_precision({"A", "B"}, ["X", "A"]) == pytest.approx((1 / 2) / 2)
    assert metrics.average_precision({"A"}, []) == 0.0
    assert metrics.mean_average_precision([{"A"}, {"B"}, set()], [["A"], ["X", "B"], ["Z"]]) == pytest.approx(0.75)


def test_categories_and_atc_levels() -> None:
    assert metrics.category("E11.65") == "E11"
    r = metrics.icd_report([{"E11.65"}], [{"E11.9"}], [["E11.9"]])
    assert r["micro"]["f1"] == 0.0 and r["category_micro"]["f1"] == 1.0
    assert metrics.atc_level_match("A10BA02", "A10BB01") == [True, True, True, False, False]
    assert metrics.atc_level_match("A10BA02", "A10BA02") == [True] * 5
    assert metrics.atc_level_match("A10BA02", None) == [False] * 5


def test_error_types_against_the_tree(icd) -> None:
    def is_ancestor(a: str, b: str) -> bool:
        return a in {n.code for n in icd.path(b)[:-1]}

    gold = {"E11.65", "I10", "J45.909", "N20.0"}
    pred = {"E11", "I10", "J45.901", "K35.80"}
    errs = metrics.error_types(gold, pred, is_ancestor)
    assert errs == {"correct": 1, "too_general": 1, "wrong_branch": 1, "extra": 1, "missed": 1}
    too_specific = metrics.error_types({"E11"}, {"E11.65"}, is_ancestor)
    assert too_specific["too_specific"] == 1 and too_specific["missed"] == 0


# -- datasets -----------------------------------------------------------------------------------


def test_loaders_read_any_path_in_their_layout(tmp_path: Path) -> None:
    root = tmp_path / "mysplit"
    (root / "text_files_en").mkdir(parents=True)
    (root / "mysplitD.tsv").write_text("doc1\te11.65\ndoc1\ti10\ndoc1\ti10\ndoc2\tn20.0\n")
    (root / "text_files_en" / "doc1.txt").write_text("Diabetic with hyperglycemia.\nHypertensive.")
    (root / "text_files_en" / "doc2.txt").write_text("Kidney stone.")
    ds = load_dataset(root)
    assert ds.layout == "codiesp" and [e.id for e in ds.examples] == ["doc1", "doc2"]
    assert ds.examples[0].codes == ["E11.65", "I10"]  # upper-cased, duplicates dropped
    dpd = tmp_path / "drugs.tsv"
    dpd.write_text("brand_name\tingredients\tatc_code\tdin\nGLUCOPHAGE\tMETFORMIN HYDROCHLORIDE\tA10BA02\t001\n")
    d = load_dataset(dpd)
    assert d.system == "atc" and d.examples[0].meta["brand"] == "GLUCOPHAGE" and d.examples[0].codes == ["A10BA02"]
    jl = tmp_path / "notes.jsonl"
    jl.write_text(json.dumps({"id": 7, "text": "asthma", "codes": ["j45.909"]}) + "\n\n")
    assert load_jsonl(jl).examples[0].codes == ["J45.909"]
    jl.write_text("{not json\n")
    with pytest.raises(MedcoderError, match="notes.jsonl:1"):
        load_jsonl(jl)
    with pytest.raises(MedcoderError, match="missing columns"):
        bad = tmp_path / "bad.csv"
        bad.write_text("name,code\nx,y\n")
        load_dpd(bad)
    with pytest.raises(MedcoderError, match="not a dataset layout"):
        load_dataset(tmp_path / "notes.txt" if (tmp_path / "notes.txt").write_text("x") else tmp_path)
    assert list(sentences("One. Two here.\nThree")) == ["One.", "Two here.", "Three"]


def test_shared_data_loads(shared_data: Path) -> None:
    dev = load_codiesp(shared_data / "codiesp" / "dev")
    assert len(dev) == 250 and sum(len(e.codes) for e in dev.examples) > 2000
    assert len(load_dpd(shared_data / "dpd-sample")) == 600


# -- batch --------------------------------------------------------------------------------------


def _notes_dir(tmp_path: Path, n: int) -> Path:
    d = tmp_path / "notes"
    d.mkdir()
    for i in range(n):
        (d / f"n{i:02d}.txt").write_text(f"Note {i}: patient with hypertension.")
    return d


def test_batch_records_bad_notes_and_skips_done_ones(tmp_path: Path) -> None:
    notes = _notes_dir(tmp_path, 3)
    (notes / "empty.txt").write_text("   ")
    (notes / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    (notes / "huge.txt").write_text("x" * 300_000)
    out = tmp_path / "out.jsonl"
    with load_workflow(text=SLOW_SPEC.replace("0.4", "0"), model="fake", checkpoint_path=tmp_path / "c.sqlite") as wf:
        s = code_batch(wf, notes, out)
        assert (s.done, s.errors) == (3, 3)
        lines = [json.loads(x) for x in out.read_text().splitlines()]
        errors = {x["id"]: x["error"] for x in lines if not x["ok"]}
        assert "empty" in errors["empty"] and "binary" in errors["binary"] and "max_note_chars" in errors["huge"]
        again = code_batch(wf, notes, out)
        assert again.skipped == 6 and again.done == 0 and len(out.read_text().splitlines()) == 6


def test_a_torn_last_line_is_cut_off(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "a", "ok": true}\n{"id": "b", "ok": tr')
    assert _done_ids(out) == {"a"}
    assert out.read_text() == '{"id": "a", "ok": true}\n'


def test_jsonl_input_with_a_broken_line_goes_on(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "text": "asthma"}\nnot json\n{"id": "b", "text": "gout"}\n')
    items = list(iter_inputs(src))
    assert [i.id for i in items] == ["a", "in.jsonl:2", "b"] and items[1].text == ""


def test_batch_killed_half_way_resumes_with_each_note_once(tmp_path: Path) -> None:
    notes = _notes_dir(tmp_path, 12)
    spec = tmp_path / "slow.yaml"
    spec.write_text(SLOW_SPEC)
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MEDCODER_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "medcoder", "batch", str(notes), "--out", str(out), "-w", str(spec), "-m", "fake",
           "--allow-code"]  # the slow agent is a tests module: code, allowed here
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 4):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    written = len(out.read_text().splitlines())
    assert 4 <= written < 12, "the batch should have been killed half-way"
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ids = [json.loads(x)["id"] for x in out.read_text().splitlines()]
    assert sorted(ids) == [f"n{i:02d}" for i in range(12)]  # each exactly once


def test_batch_with_two_worker_processes(tmp_path: Path) -> None:
    notes = _notes_dir(tmp_path, 5)
    out = tmp_path / "out.jsonl"
    seen = []
    with load_workflow("icd10cm-tree", model="fake", checkpoint_path=tmp_path / "c.sqlite") as wf:
        s = code_batch(wf, notes, out, workers=2, progress=lambda x: seen.append(x.finished))
    ids = sorted(json.loads(x)["id"] for x in out.read_text().splitlines())
    assert ids == [f"n{i:02d}" for i in range(5)] and s.done == 5 and seen[-1] == 5


def test_batch_items_from_the_sdk(tmp_path: Path) -> None:
    with load_workflow(text=SLOW_SPEC.replace("0.4", "0"), model="fake", checkpoint_path=tmp_path / "c.sqlite") as wf:
        s = code_batch(wf, [BatchItem("x", "asthma"), BatchItem("x", "asthma again"), BatchItem("y", b"gout")],
                         tmp_path / "o.jsonl")
    assert s.done == 2 and s.skipped == 1  # a repeated id is coded once


# -- eval and bench through the real stack ----------------------------------------------------------


@pytest.mark.slow
def test_eval_codiesp_with_the_test_model_writes_json_and_html(shared_data: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from medcoder.cli import main

    # a CodiEsp-layout split with one short note (the full dev notes take minutes each with a real model)
    split = tmp_path / "short"
    (split / "text_files_en").mkdir(parents=True)
    first = load_codiesp(shared_data / "codiesp" / "dev").examples[0]
    (split / "text_files_en" / f"{first.id}.txt").write_text(first.text.splitlines()[0])
    (split / "shortD.tsv").write_text("".join(f"{first.id}\t{c}\n" for c in first.codes))
    out = tmp_path / "ev"
    strategies = ["retrieval", "flat", "tree", "memory", "ranked-nomodel", "ranked"]
    r = CliRunner().invoke(main, ["eval", "--dataset", str(split), "--limit", "1", "--model", "test", "--out", str(out),
                                  *[x for s in strategies for x in ("--strategy", s)]])
    assert r.exit_code == 0, r.output
    report = json.loads((out / "eval.json").read_text())
    assert set(report["metrics"]) == set(strategies)
    for m in report["metrics"].values():
        assert {"micro", "macro", "category_micro", "map", "per_chapter", "error_types", "cost_per_note"} <= set(m)
    row = report["items"][0]["strategies"]
    assert report["model"]["sha256"] and row["tree"]["model_calls"] > 0
    assert row["ranked-nomodel"]["model_calls"] == 0 and row["ranked-nomodel"]["ranking"]
    assert "calibration" in report["metrics"]["ranked-nomodel"]
    html = (out / "eval.html").read_text()
    assert "<svg" in html and "F1 per ICD-10-CM chapter" in html and "Reliability: ranked-nomodel" in html
    # a second run reuses the scored items instead of coding again
    again = CliRunner().invoke(main, ["eval", "--dataset", str(split), "--limit", "1", "--model", "test",
                                      "--out", str(out), "--json"])
    assert again.exit_code == 0 and json.loads(again.output[again.output.index("{"):again.output.rindex("}") + 1])


@pytest.mark.slow
def test_a_strategy_the_workflow_cannot_run_is_left_out_with_a_reason(shared_data: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from medcoder.cli import main
    from medcoder.evaluation.runner import evaluate

    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": "a", "text": "Assessment: essential hypertension.", "codes": ["I10"]}) + "\n")
    # the default workflow (icd10cm) ranks sentences and extracts no mentions: `retrieval` would score 0.0
    report = evaluate(notes, model="test", strategies=("retrieval", "ranked-nomodel", "ranked"))
    assert set(report["metrics"]) == {"ranked-nomodel", "ranked"} and "extracts none" in report["skipped"]["retrieval"]
    with pytest.raises(MedcoderError, match="extracts none"):
        evaluate(notes, model="test", strategies=("retrieval",))
    r = CliRunner().invoke(main, ["eval", "-d", str(notes), "--model", "test", "--out", str(tmp_path / "ev"),
                                  "--strategy", "retrieval", "--strategy", "ranked"])
    assert r.exit_code == 0 and "strategy retrieval left out: needs extracted mentions" in r.output


@pytest.mark.slow
def test_eval_dpd_with_the_test_model(shared_data: Path, tmp_path: Path) -> None:
    from medcoder.evaluation.runner import evaluate

    report = evaluate(shared_data / "dpd-sample", model="test", limit=2, out_dir=tmp_path,
                      strategies=("retrieval", "flat", "tree"))  # the first version's term strategies, by name
    assert report["workflow"] == "atc-tree"
    keys = {f"{f}/{s}" for f in ("ingredients", "brand") for s in ("retrieval", "flat", "tree")}
    assert set(report["metrics"]) == keys
    assert all(len(v["exact_match_by_level"]) == 5 for v in report["metrics"].values())
    assert (tmp_path / "eval.html").read_text().count("<svg") == 2


@pytest.mark.slow
def test_bench_with_the_test_model(tmp_path: Path) -> None:
    from medcoder.evaluation.bench import run_bench

    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": "n1", "text": "ASSESSMENT:\nType 2 diabetes. Essential hypertension."}) + "\n")
    res = run_bench(notes, ("test",), "icd10cm-tree", 1, tmp_path / "b.json")
    m = res["models"]["test"]
    assert m["notes"] == 1 and m["notes_per_minute"] > 0 and 0 <= m["orchestration_share"] < 1
    assert 0 <= m["prefix_reuse"] <= 1 and m["prompt_tokens_per_note"] > 0
    assert json.loads((tmp_path / "b.json").read_text())["run"]["date"]


def test_a_folder_gives_its_txt_notes_and_other_files_only_when_asked(tmp_path: Path) -> None:
    notes = _notes_dir(tmp_path, 2)
    (notes / "README.md").write_text("# these notes\nThey come from the clinic.")
    assert [i.id for i in iter_inputs(notes)] == ["n00", "n01"]
    assert [i.id for i in iter_inputs(notes, (".txt", ".md"))] == ["README", "n00", "n01"]
    only_md = tmp_path / "md"
    only_md.mkdir()
    (only_md / "a.md").write_text("Asthma.")
    with pytest.raises(MedcoderError, match=r"no \.txt note files.*\.md.*--suffix"):
        list(iter_inputs(only_md))
