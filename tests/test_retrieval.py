"""Hybrid retrieval through the real stack: the ONNX MiniLM embedder, real ChromaDB stores, real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from medcoder.cli import main
from medcoder.errors import MedcoderError
from medcoder.knowledge import dense
from medcoder.knowledge.dense import DenseIndex, IndexBuildError, IndexDoc
from medcoder.knowledge.embeddings import default_embedder
from medcoder.knowledge.retrieval import HybridRetriever, SearchFilter, make_retriever


def test_embedder_vectors_are_unit_length_and_meaningful() -> None:
    emb = default_embedder()
    v = emb.embed(["high blood pressure", "hypertension", "fracture of the femur", ""])
    assert v.shape == (4, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2  # a lay term sits nearer its clinical name than an unrelated one
    assert np.allclose(emb.embed(["hypertension"])[0], v[1], atol=1e-5)  # batch order and padding do not matter
    assert emb.embed([]).shape == (0, 384)
    assert len(emb.digest) == 64 and emb(["x"])[0].shape == (384,)  # chroma's protocol


def _small_docs(kb):
    """The ATC documents of the A10 (diabetes drugs) and C09 groups: a store that builds in seconds."""
    return (d for d in type(kb.ontology("atc")).index_docs(kb.ontology("atc")) if d.code.startswith(("A10", "C09")))


@pytest.fixture()
def small_index(kb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DenseIndex:
    monkeypatch.setattr(kb.ontology("atc"), "index_docs", lambda: _small_docs(kb))
    return DenseIndex(kb, "atc", root=tmp_path / "chroma")


def test_small_store_builds_reports_and_searches(small_index: DenseIndex) -> None:
    seen: list[tuple[str, int, int]] = []
    info = small_index.build(progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert info["docs"] > 100 and info["codes"] > 50 and info["bytes"] > 0
    assert seen[-1] == ("embedding", info["docs"], info["docs"])
    assert small_index.is_built()
    assert small_index.search("metformin", k=3)[0].code == "A10BA02"
    # a brand name reaches its substance through the RABBITS brands
    assert small_index.search("glucophage", k=5)[0].code == "A10BA02"
    assert small_index.search("losartan", k=5, where={"kind": "level5"})[0].code == "C09CA01"
    assert small_index.build()["seconds"] == info["seconds"]  # cached: not rebuilt


def test_store_leaves_no_vector_unwritten(small_index: DenseIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """Vectors Chroma has not written into its graph on disk are re-inserted at every open, by several threads:
    each process then searched a slightly different graph. The build leaves none behind, whatever the size."""
    import sqlite3

    monkeypatch.setattr(dense, "_ADD_BATCH", 128)  # several chunks, the last one not a full one
    info = small_index.build()
    with sqlite3.connect(small_index.path / "chroma.sqlite3") as db:
        written = [n for _, n in db.execute("SELECT segment_id, seq_id FROM max_seq_id")]
    assert len(written) == 2 and written[0] == written[1] == info["docs"]  # metadata and vector segments agree


def test_many_queries_at_once_stay_under_sqlite_limits(small_index: DenseIndex) -> None:
    """A long note: 400 sentences x 200 results each is more than SQLite's 32,766 variables in one read."""
    texts = [f"metformin {i} mg daily" for i in range(400)]
    hits = small_index.search_many(texts, k=50)
    assert len(hits) == 400 and all(h and h[0].code == "A10BA02" for h in hits)
    assert hits[7] == small_index.search(texts[7], k=50)


def test_changed_version_rebuilds_into_a_new_store(small_index: DenseIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    small_index.build()
    old = small_index.path
    monkeypatch.setattr(dense, "DOCS_VERSION", "test-changed")
    assert small_index.path != old and not small_index.is_built()
    assert small_index.search("metformin", k=1)[0].code == "A10BA02"  # built on first use
    assert small_index.is_built() and not old.exists()  # the stale store was removed


def test_empty_store_is_rebuilt_or_reported(small_index: DenseIndex, kb) -> None:
    client = small_index._client()
    client.create_collection("atc", embedding_function=small_index.embedder)
    (small_index.path / dense._MARKER).write_text(json.dumps({"key": small_index.key}))
    fresh = DenseIndex(kb, "atc", root=small_index.root)
    with pytest.raises(IndexBuildError, match="unreadable"):
        fresh.collection(build=False)
    assert fresh.search("metformin", k=1)[0].code == "A10BA02"


def test_corrupted_store_is_rebuilt_not_a_crash(small_index: DenseIndex, kb) -> None:
    small_index.build()
    for f in small_index.path.rglob("*"):
        if f.is_file() and f.name != dense._MARKER:
            f.write_bytes(b"\x00garbage" * 100)
    fresh = DenseIndex(kb, "atc", root=small_index.root)
    assert fresh.search("metformin", k=1)[0].code == "A10BA02"


def test_unbuilt_store_without_build_says_how_to_build(small_index: DenseIndex) -> None:
    with pytest.raises(IndexBuildError, match="medcoder kb build-index"):
        small_index.collection(build=False)


def test_index_docs_cover_labels_inclusion_terms_and_index_paths(kb) -> None:
    docs = [d for d in kb.ontology("icd10cm").index_docs() if d.code == "I10"]
    assert {d.source for d in docs} == {"label", "index", "index-see"}
    # "Blood, pressure, high: see Hypertension" is followed to I10, as a coder turns the page
    assert any(d.source == "index-see" and "blood pressure" in d.text.lower().replace(" high", "") for d in docs)
    assert any(d.source == "inclusion" for d in kb.ontology("icd10cm").index_docs() if d.code == "J45.909")
    assert all(isinstance(d, IndexDoc) and d.chapter == "CH9" and d.billable for d in docs)
    assert not any(d.kind == "extension" for d in kb.ontology("icd10cm").index_docs())


# -- the full indexes (built once per cache folder; the CI set-up builds them) ----------------


@pytest.fixture(scope="module")
def hybrid(kb) -> HybridRetriever:
    return HybridRetriever(kb)


def _codes(hits) -> list[str]:
    return [h.code for h in hits]


@pytest.mark.slow
def test_hybrid_finds_lay_terms_and_specific_codes(hybrid: HybridRetriever) -> None:
    assert "I10" in _codes(hybrid.search("high blood pressure", k=5))
    assert "E11.65" in _codes(hybrid.search("type 2 diabetes with hyperglycemia", k=3))
    assert _codes(hybrid.search("metformin", "atc", k=5))[0] == "A10BA02"
    hit = hybrid.search("high blood pressure", k=5)[0]
    assert hit.sources and all("#" in s for s in hit.sources)  # which ranker found it, at which rank


@pytest.mark.slow
def test_filters_by_chapter_and_kind(hybrid: HybridRetriever, kb) -> None:
    for chapter in ("CH4", "4", "E00-E89"):
        hits = hybrid.search("diabetes", k=10, filt=SearchFilter(chapter=chapter))
        assert hits and all(kb.ontology("icd10cm").path(h.code)[0].code == "CH4" for h in hits)
    cats = hybrid.search("diabetes", k=10, filt=SearchFilter(kinds=("category",)))
    assert cats and all(kb.ontology("icd10cm").node(h.code).kind == "category" for h in cats)
    billable = hybrid.search("asthma", k=10, filt=SearchFilter(billable_only=True))
    assert billable and all(kb.ontology("icd10cm").node(h.code).billable for h in billable)
    level5 = hybrid.search("statin", "atc", k=5, filt=SearchFilter(chapter="c", kinds=("level5",)))
    assert level5 and all(h.code.startswith("C") and len(h.code) == 7 for h in level5)
    with pytest.raises(MedcoderError, match="unknown chapter"):
        hybrid.search("diabetes", filt=SearchFilter(chapter="CH99"))


@pytest.mark.slow
def test_single_rankers_and_fusion_agree_on_easy_queries(kb) -> None:
    lexical = make_retriever("lexical", kb)
    dense_only = make_retriever("dense", kb)
    assert make_retriever("none", kb) is None
    assert lexical is not None and dense_only is not None
    assert "E11.9" in _codes(lexical.candidates("type 2 diabetes mellitus", k=5))
    assert "I10" in _codes(dense_only.candidates("high blood pressure", k=5))
    with pytest.raises(MedcoderError):
        make_retriever("telepathy", kb)


@pytest.mark.slow
def test_kb_search_cli_checks_from_the_issue() -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["kb", "search", "high blood pressure", "--json"])
    assert r.exit_code == 0, r.output
    assert "I10" in [h["code"] for h in json.loads(r.output)[:5]]
    r = runner.invoke(main, ["kb", "search", "type 2 diabetes with hyperglycemia", "--json"])
    assert "E11.65" in [h["code"] for h in json.loads(r.output)[:3]]
    r = runner.invoke(main, ["kb", "search", "metformin", "--system", "atc", "--json"])
    assert json.loads(r.output)[0]["code"] == "A10BA02"
    r = runner.invoke(main, ["kb", "search", "asthma", "--mode", "lexical", "--chapter", "CH10", "--json"])
    assert r.exit_code == 0 and all(h["sources"] == [f"lexical#{i + 1}"] for i, h in enumerate(json.loads(r.output)))
    r = runner.invoke(main, ["kb", "search", "asthma", "--chapter", "nope"])
    assert r.exit_code == 1 and "unknown chapter" in r.output
