"""Dense search: a persistent ChromaDB collection per code system, built once and cached on disk.

Each code is indexed under several texts: its label, its inclusion terms and, for ICD-10-CM,
the Alphabetic Index paths that lead to it; for ATC, combination-product brands and the RABBITS
US brand names of its substance. The store lives under the cache folder, keyed by the data
version, the document recipe and the embedder's digest, so a change of any of them rebuilds it.
A store that is empty, half-built or unreadable is rebuilt, never trusted; one that cannot be written
(a full disk, a read-only cache) is left as it is and said in one line, never removed to be rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medcoder.errors import MedcoderError
from medcoder.knowledge.embeddings import MiniLMEmbedder, default_embedder
from medcoder.knowledge.lexical import SearchHit
from medcoder.knowledge.ontology import IndexDoc
from medcoder.knowledge.systems import DEFAULT_SYSTEM
from medcoder.paths import cache_dir, file_digest
from medcoder.progress import Progress
from medcoder.storage import is_write_fault, storage_error

if TYPE_CHECKING:
    from medcoder.knowledge import KnowledgeBase

logger = logging.getLogger(__name__)

DOCS_VERSION = "6"  # bump when the texts indexed per code, or how they are stored, change
_MARKER = "medcoder-index.json"
# Opening a Chroma store is not thread-safe: threads that open one at once got half-made clients, took the store
# for damaged and rebuilt it (6 minutes for ICD-10-CM) under each other. One opener at a time per process.
_OPENING = threading.RLock()
_OPEN_RETRIES = (0.2, 0.5, 1.0)  # seconds between tries before a store that will not open counts as damaged
_ADD_BATCH = 2048  # texts embedded and added per Chroma call
_SQL_VARIABLES = 16_000  # results per Chroma query, well under SQLite's limit of 32,766 bound variables


class IndexBuildError(MedcoderError):
    """The dense index could not be built or read."""


class DenseIndex:
    """Nearest-neighbour search over one code system's texts, grouped back to codes."""

    def __init__(
        self,
        kb: "KnowledgeBase",
        system: str = DEFAULT_SYSTEM,
        embedder: MiniLMEmbedder | None = None,
        root: Path | None = None,
    ) -> None:
        self.kb, self.system = kb, system
        self.embedder = embedder or default_embedder()
        self.root = root or cache_dir() / "chroma"
        self._collection: Any = None
        self._collection_key = ""

    @property
    def key(self) -> str:
        """Data version + document recipe + embedder: what the vectors depend on."""
        return hashlib.sha256("|".join([self.system, DOCS_VERSION, *self._inputs]).encode()).hexdigest()[:16]

    @cached_property
    def _inputs(self) -> list[str]:
        onto = self.kb.ontology(self.system)
        return [onto.cache_key, self.embedder.digest, *(file_digest(p) for p in onto.index_sources())]

    @property
    def path(self) -> Path:
        return self.root / f"{self.system}-{self.key}"

    def is_built(self) -> bool:
        marker = self.path / _MARKER
        try:
            return json.loads(marker.read_text())["key"] == self.key
        except (OSError, ValueError, KeyError):
            return False

    # -- building -------------------------------------------------------------------
    def build(self, progress: Progress | None = None, force: bool = False) -> dict[str, Any]:
        """Embed every text and store it; returns what was built (docs, codes, seconds, bytes)."""
        with self._lock():
            if self.is_built() and not force:
                return self.info()
            self._reset()
            try:
                return self._build(progress)
            except Exception as exc:
                shutil.rmtree(self.path, ignore_errors=True)  # a half-built store only takes space
                if is_write_fault(exc):
                    raise storage_error(self.path, "cannot build the search index at", exc) from exc
                raise

    def _build(self, progress: Progress | None) -> dict[str, Any]:
        """Create the collection and embed every text into it (the lock is held; the store is empty)."""
        started = time.perf_counter()
        docs = _dedupe(self.kb.ontology(self.system).index_docs())
        # Chroma writes its HNSW graph to disk after an add() that brings `sync_threshold` new vectors; vectors
        # added after the last write are re-inserted on every open, by several threads, so that each process
        # searched a slightly different graph (one note's candidates were 520 or 522 codes). Even chunks, each
        # at least the threshold, leave nothing unwritten: every process opens the same graph.
        chunks = max(1, math.ceil(len(docs) / _ADD_BATCH))
        bounds = [round(i * len(docs) / chunks) for i in range(chunks + 1)]
        collection = self._client().create_collection(
            name=self.system,
            embedding_function=self.embedder,
            configuration={
                "hnsw": {
                    "space": "cosine",
                    "ef_search": 100,
                    "batch_size": 100,
                    "sync_threshold": max(100, min(1000, bounds[1])),
                }
            },
        )
        embed = _EmbedOnce(self.embedder, docs)
        for lo, hi in zip(bounds, bounds[1:]):
            chunk = docs[lo:hi]
            vectors = embed([d.text for d in chunk])
            collection.add(
                ids=[str(lo + i) for i in range(len(chunk))],
                embeddings=vectors,
                documents=[d.text for d in chunk],
                metadatas=[
                    {"code": d.code, "source": d.source, "kind": d.kind, "chapter": d.chapter, "billable": d.billable}
                    for d in chunk
                ],
            )
            if progress:
                progress("embedding", hi, len(docs))
        info = {
            "key": self.key,
            "system": self.system,
            "docs": len(docs),
            "codes": len({d.code for d in docs}),
            "texts_embedded": embed.embedded,
            "seconds": round(time.perf_counter() - started, 1),
            "embedder": MiniLMEmbedder.name(),
        }
        (self.path / _MARKER).write_text(json.dumps(info))
        self._collection, self._collection_key = collection, self.key
        logger.info("built %s dense index: %d texts in %.0f s", self.system, len(docs), info["seconds"])
        return self.info()

    def info(self) -> dict[str, Any]:
        data = json.loads((self.path / _MARKER).read_text()) if self.is_built() else {"key": self.key}
        data["path"] = str(self.path)
        data["bytes"] = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()) if self.path.exists() else 0
        return data

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One builder at a time per store (other processes wait, then find it built)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{self.system}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _reset(self) -> None:
        """Remove this store and any stale ones of the same system (older data, recipe or embedder)."""
        from chromadb.api.client import SharedSystemClient

        self._collection = None
        for old in self.root.glob(f"{self.system}-*"):
            if old.is_dir() and (old == self.path or not old.name.endswith(self.key)):
                logger.warning("removing stale or unfinished dense index %s", old)
                shutil.rmtree(old, ignore_errors=True)
        SharedSystemClient.clear_system_cache()  # chroma keeps clients per path; a removed store must not linger

    def _forget_client(self) -> None:
        """Drop Chroma's cached client for this store only (a client whose start failed stays cached, broken)."""
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient._identifier_to_system.pop(str(self.path), None)
        SharedSystemClient._identifier_to_refcount.pop(str(self.path), None)

    def _client(self) -> Any:
        import chromadb
        from chromadb.config import Settings

        self.path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(self.path), settings=Settings(anonymized_telemetry=False))

    # -- searching ------------------------------------------------------------------
    def collection(self, build: bool = True, progress: Progress | None = None) -> Any:
        """The Chroma collection; built on first use when `build`, else `IndexBuildError`."""
        if self._collection is not None and self._collection_key == self.key:
            return self._collection
        with _OPENING:
            return self._open(build, progress)

    def _open(self, build: bool, progress: Progress | None) -> Any:
        if self._collection is not None and self._collection_key == self.key:  # another thread opened it meanwhile
            return self._collection
        for attempt in range(2):
            if not self.is_built():
                if not build:
                    raise IndexBuildError(f"the {self.system} search index is not built; run: medcoder kb build-index")
                self.build(progress=progress)
            try:
                col = self._get_collection()
                self._collection, self._collection_key = col, self.key
                return col
            except Exception as exc:  # corrupt or empty store: rebuild once, then give up with a clear error
                if is_write_fault(exc):  # a full disk or read-only cache: the store is sound, keep it
                    raise storage_error(self.path, "cannot open the search index at", exc) from exc
                if attempt or not build:
                    raise IndexBuildError(
                        f"the {self.system} search index at {self.path} is unreadable: {exc}"
                    ) from exc
                logger.warning("dense index %s unreadable (%s); rebuilding", self.path, exc)
                (self.path / _MARKER).unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def _get_collection(self) -> Any:
        """Open the stored collection, trying again a few times first: many processes (batch workers, Ray
        actors) open one index at once, and a failure that passes is no reason to rebuild it under them."""
        for wait in (*_OPEN_RETRIES, None):
            try:
                col = self._client().get_collection(self.system, embedding_function=self.embedder)
                if col.count() == 0:
                    raise IndexBuildError("empty collection")
                return col
            except Exception as exc:  # noqa: BLE001 - tried again, then judged by the caller
                self._forget_client()  # else the next try gets the half-started client back, not the real error
                if wait is None or is_write_fault(exc):
                    raise
                logger.info("opening dense index %s failed (%s); trying again in %.1f s", self.path, exc, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def search(self, text: str, k: int = 10, where: dict[str, Any] | None = None) -> list[SearchHit]:
        return self.search_many([text], k, where)[0]

    def search_many(self, texts: list[str], k: int = 10, where: dict[str, Any] | None = None) -> list[list[SearchHit]]:
        """Top codes per text by cosine similarity of their best-matching indexed text."""
        col = self.collection()
        vectors = self.embedder.embed(texts)
        n_results = max(k * 4, 20)
        metadatas: list[Any] = []
        distances: list[Any] = []
        # Chroma reads every result's metadata in one SQL statement: queries x results must stay under
        # SQLite's 32,766 variables, or a long note fails ("too many SQL variables")
        step = max(1, _SQL_VARIABLES // n_results)
        for lo in range(0, len(texts), step):
            res = col.query(
                query_embeddings=vectors[lo : lo + step],
                n_results=n_results,
                where=where or None,
                include=["metadatas", "distances"],
            )
            metadatas += res["metadatas"]
            distances += res["distances"]
        onto = self.kb.ontology(self.system)
        out: list[list[SearchHit]] = []
        for metas, dists in zip(metadatas, distances):
            seen: dict[str, SearchHit] = {}
            for meta, dist in zip(metas, dists):
                code = str(meta["code"])
                if code not in seen:
                    seen[code] = SearchHit(
                        code, round(1.0 - float(dist), 4), onto.label(code), [f"dense:{meta['source']}"]
                    )
            out.append(list(seen.values())[:k])
        return out


class _EmbedOnce:
    """Embeds each distinct text once across a build (ATC repeats half its texts: brands, levels),
    keeping only the vectors of texts that come again."""

    def __init__(self, embedder: MiniLMEmbedder, docs: list[IndexDoc]) -> None:
        self.embedder = embedder
        self.left = Counter(d.text for d in docs)
        self.kept: dict[str, Any] = {}
        self.embedded = 0

    def __call__(self, texts: list[str]) -> list[Any]:
        new = [t for t in dict.fromkeys(texts) if t not in self.kept]
        fresh = dict(zip(new, self.embedder.embed(new)))
        self.embedded += len(new)
        out = []
        for t in texts:
            v = self.kept.get(t)
            if v is None:
                v = fresh[t]
            out.append(v)
            self.left[t] -= 1
            if self.left[t] > 0:
                self.kept[t] = v
            else:
                self.kept.pop(t, None)
        return out


def _dedupe(docs: Iterator[IndexDoc]) -> list[IndexDoc]:
    seen: set[tuple[str, str]] = set()
    out = []
    for d in docs:
        key = (d.code, d.text.strip().lower())
        if d.text.strip() and key not in seen:
            seen.add(key)
            out.append(d)
    return out
