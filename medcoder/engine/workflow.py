"""The SDK: load a workflow, run it on a note, stream its steps, resume it by run id.

`Workflow` owns its models, its knowledge and its SQLite checkpointer. Each run compiles the
graph with contexts bound to that run (every node's model handles credit their calls to the
node and the run), so one Workflow can code several notes at once from several threads.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver

from medcoder import paths, storage
from medcoder.agents import AgentContext, BoundLLM
from medcoder.audit.events import NOTE_READ, SUSPECT_TEXT
from medcoder.audit.store import SQLiteAuditStore
from medcoder.engine.compiler import build_graph
from medcoder.engine.spec import WorkflowSpec, code_identity, code_nodes, load_spec, parse_spec
from medcoder.engine.state import CodingState, JsonRecordSerializer, StateUpdate
from medcoder.errors import MedcoderError
from medcoder.injection import suspects
from medcoder.knowledge import KnowledgeBase, default_kb
from medcoder.knowledge.retrieval import Retriever, make_retriever
from medcoder.llm import LLM, CallRecord, load_llm
from medcoder.notetext import note_encoding, read_note
from medcoder.privacy import NoteRedactor
from medcoder.records import RunResult, to_json
from medcoder.result import CodingResult
from medcoder.settings import Settings, load_settings

if TYPE_CHECKING:
    from medcoder.audit.store import AuditStore

logger = logging.getLogger(__name__)


@dataclass
class RunLog:
    """What one run emitted: agent events and model calls, in order."""

    run_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    calls: list[CallRecord] = field(default_factory=list)
    listeners: list[Callable[[str, dict[str, Any]], None]] = field(default_factory=list)
    final: CodingState | None = None  # the state the run ended with (its checkpoints may be gone)

    def event(self, node: str, kind: str, data: dict[str, Any]) -> None:
        ev = {"node": node, "kind": kind, "data": data, "t": time.time()}
        self.events.append(ev)
        for listen in self.listeners:
            listen("event", ev)

    def call(self, node: str, record: CallRecord) -> None:
        self.calls.append(record)
        for listen in self.listeners:
            listen("call", {"node": node, "record": record})

    def stats(self) -> dict[str, Any]:
        s = [c.stats for c in self.calls]
        return {
            "model_calls": len(s),
            "prompt_tokens": sum(x.prompt_tokens for x in s),
            "cached_tokens": sum(x.cached_tokens for x in s),
            "completion_tokens": sum(x.completion_tokens for x in s),
            "model_seconds": round(sum(x.latency_s for x in s), 3),
        }


class _AuditRecorder:
    """Writes a run's events and model calls to the audit store as they happen (note quotes redacted if asked)."""

    def __init__(self, store: "AuditStore", run_id: str, redact: NoteRedactor | None = None) -> None:
        self.store, self.run_id, self.redact = store, run_id, redact

    def __call__(self, what: str, item: dict[str, Any]) -> None:
        payload = item["data"] if what == "event" else item["record"].to_dict()
        if self.redact is not None:
            payload = self.redact(payload)
        self.store.append(self.run_id, item["node"], item["kind"] if what == "event" else "model_call", payload)


class _CheckpointSaver(SqliteSaver):
    """LangGraph's SQLite saver whose every storage failure is one line naming the checkpoint database."""

    def __init__(self, conn: Any, path: Path) -> None:
        super().__init__(conn, serde=JsonRecordSerializer())
        self.path = path

    put = storage.guarded("checkpoint database")(SqliteSaver.put)
    put_writes = storage.guarded("checkpoint database")(SqliteSaver.put_writes)
    get_tuple = storage.guarded("checkpoint database")(SqliteSaver.get_tuple)
    delete_thread = storage.guarded("checkpoint database")(SqliteSaver.delete_thread)
    setup = storage.guarded("checkpoint database")(SqliteSaver.setup)


class Workflow:
    """A compiled workflow bound to its models; run it on notes one at a time."""

    def __init__(
        self,
        spec: WorkflowSpec,
        source_text: str = "",
        *,
        model: str | None = None,
        settings: Settings | None = None,
        llms: dict[str, LLM] | None = None,
        kb: KnowledgeBase | None = None,
        checkpoint_path: str | Path | None = None,
        audit: "AuditStore | bool | None" = True,
        store_note: bool = True,
    ) -> None:
        self.spec = spec
        self.source_text = source_text
        self.settings = settings or load_settings()
        self._recipe_args: dict[str, Any] = {
            "model": model,
            "checkpoint_path": str(checkpoint_path) if checkpoint_path else None,
            "audit": getattr(audit, "path", audit) if audit else False,
            "store_note": store_note,
            "custom_llms": llms is not None,
        }
        self.kb = kb or default_kb()
        self.llms = llms if llms is not None else self._load_llms(model)
        if audit is True:
            audit = SQLiteAuditStore()
        self.audit: AuditStore | None = audit or None
        self.store_note = store_note
        self._owns_llms = llms is None  # models passed in belong to the caller, who closes them
        # one retriever for the whole workflow, as the spec's `knowledge.retriever` says
        self._retriever = make_retriever(spec.knowledge.retriever, self.kb)
        self.path = Path(checkpoint_path) if checkpoint_path else paths.home() / "checkpoints.sqlite"
        self._conn = storage.connect(self.path, "checkpoint database", check_same_thread=False)
        with storage.guard(self.path, "checkpoint database"):
            self._conn.execute("PRAGMA secure_delete=ON")  # a forgotten note is overwritten, not left in free pages
            self.checkpointer = _CheckpointSaver(self._conn, self.path)
            self.checkpointer.setup()
        # the graph for reading state and drawing; runs compile their own, bound to the run
        self.graph = build_graph(spec, lambda node: self._context(node, None)).compile(checkpointer=self.checkpointer)

    # -- construction ---------------------------------------------------------------
    def _load_llms(self, model: str | None) -> dict[str, LLM]:
        llms: dict[str, LLM] = {}
        cache: dict[tuple[Any, ...], LLM] = {}
        for name, ref in self.spec.models.items():
            overrides = ref.model_dump(exclude_none=True)
            if model is not None:  # --model replaces every model the workflow names
                overrides["model"] = model
            key = tuple(sorted(overrides.items()))
            if key not in cache:
                cache[key] = load_llm(settings=self.settings.with_overrides(**overrides))
            llms[name] = cache[key]
        return llms

    def _context(self, node_id: str, log: RunLog | None) -> AgentContext:
        """A node's context for one run: model handles and an event sink that write to that run's log."""
        if log is None:
            return AgentContext(llms=dict(self.llms), kb=self.kb, retriever=self._retriever, node=node_id)
        llms: dict[str, LLM] = {name: BoundLLM(llm, node_id, log.call) for name, llm in self.llms.items()}
        return AgentContext(
            llms=llms,
            kb=self.kb,
            retriever=self._retriever,
            node=node_id,
            run_id=log.run_id,
            emit=lambda kind, data: log.event(node_id, kind, data),
        )

    def _graph_for(self, log: RunLog) -> Any:
        return build_graph(self.spec, lambda node: self._context(node, log)).compile(checkpointer=self.checkpointer)

    # -- running ----------------------------------------------------------------------
    def _config(self, run_id: str) -> RunnableConfig:
        # one branch at a time: branches share one model, and interleaving them would evict the cached prefix
        return {"configurable": {"thread_id": run_id}, "recursion_limit": 200, "max_concurrency": 1}

    def _start(self, text: str | bytes | None, run_id: str | None) -> tuple[str, dict[str, str] | None]:
        """The run id and the graph's input (`run_id`, `note`; None: resume from the checkpoint)."""
        run_id = run_id or uuid.uuid4().hex[:16]
        snapshot = self._snapshot(run_id)
        if snapshot.values and snapshot.next:  # an interrupted run: resume where it stopped
            return run_id, None
        if _finished(snapshot):
            raise MedcoderError(f"run {run_id} already finished; use a new run id")
        if snapshot.values.get("note") and text is None:  # stopped before its first step: start it again
            return run_id, {"run_id": run_id, "note": str(snapshot.values["note"])}
        if text is None:
            raise MedcoderError(f"no run {run_id} to resume")
        note = read_note(text, self.spec.max_note_chars)
        return run_id, {"run_id": run_id, "note": note}

    def stream(
        self, text: str | bytes | None = None, run_id: str | None = None, log: RunLog | None = None
    ) -> Iterator[dict[str, StateUpdate]]:
        """Yield each node's state update as it happens (node id -> its update); the final state is in the
        checkpointer."""
        run_id, inputs = self._start(text, run_id)
        log = log or RunLog(run_id)
        log.run_id = run_id
        redact = None
        if self.audit is not None:
            if inputs is not None:
                self.audit.create_run(
                    run_id, self.spec.name, self.source_text, self._run_settings(), inputs["note"], self.store_note
                )
            if not self.store_note:
                redact = NoteRedactor(inputs["note"] if inputs else self.note_of(run_id))
            log.listeners.append(_AuditRecorder(self.audit, run_id, redact))
        if inputs is not None:
            log.event(
                "guard",
                NOTE_READ,
                {"encoding": note_encoding(text) if text is not None else "text", "chars": len(inputs["note"])},
            )
            found = suspects(inputs["note"])
            if found:  # what the agents will not read, and why, before any of them runs
                log.event("guard", SUSPECT_TEXT, {"spans": [s.to_dict() for s in found]})
        status = "error"
        try:
            for update in self._graph_for(log).stream(
                inputs, self._config(run_id), stream_mode="updates", durability="sync"
            ):  # a kill loses no finished step
                yield update
            status = "done"
        finally:
            state = log.final = self.state(run_id)
            if self.audit is not None:
                self._finish_audit(run_id, status, state.result if state else None, redact)
            if not self.store_note and status == "done":
                self._forget(run_id)

    def _run_settings(self) -> dict[str, Any]:
        out = {
            "settings": self.settings.model_dump(mode="json"),
            "models": {n: {"name": m.name, "sha256": m.sha256, "backend": m.backend} for n, m in self.llms.items()},
        }
        if self._code_ran:  # a YAML that names module:callable ran that code: which file, which bytes
            out["code"] = self._code_ran
        return out

    @functools.cached_property
    def _code_ran(self) -> dict[str, dict[str, str]]:
        """node id -> the module a `module:callable` node runs (file, sha256): read once, not for every note."""
        return {n.id: code_identity(n.agent) for n in code_nodes(self.spec)}

    def run(
        self, text: str | bytes | None = None, run_id: str | None = None, log: RunLog | None = None
    ) -> CodingResult:
        """Code one note (or resume run `run_id` where it stopped) and return the result."""
        run_id = run_id or uuid.uuid4().hex[:16]
        log = log or RunLog(run_id)
        start = time.perf_counter()
        for _ in self.stream(text, run_id, log):
            pass
        state = log.final or CodingState()  # stream() leaves the final state there (its checkpoints may be gone)
        stats = {
            **log.stats(),
            "seconds": round(time.perf_counter() - start, 3),
            "model": {n: llm.name for n, llm in self.llms.items()},
            "model_sha256": {n: llm.sha256 for n, llm in self.llms.items()},
        }
        return CodingResult.from_state(state, self.spec.name, stats)

    def resume(self, run_id: str) -> CodingResult:
        return self.run(None, run_id)

    def result(self, run_id: str) -> CodingResult:
        """The result of a finished run, from its checkpoint (no model call)."""
        state = self.state(run_id)
        if state is None:
            raise MedcoderError(f"no run {run_id}")
        return CodingResult.from_state(state, self.spec.name, {"model": {n: llm.name for n, llm in self.llms.items()}})

    def run_or_result(self, text: str | bytes | None, run_id: str) -> CodingResult:
        """Run `run_id` to the end: fresh, resumed from its checkpoint, or already finished (then just read)."""
        snapshot = self._snapshot(run_id)
        if _finished(snapshot):
            self._close_audit(run_id)
            return self.result(run_id)
        return self.run(text if not snapshot.values else None, run_id)

    def _close_audit(self, run_id: str) -> None:
        """A run whose last step was checkpointed but whose process died before the audit heard it finish
        (a killed batch worker or actor): the audit run is marked done with the checkpoint's result."""
        if self.audit is None:
            return
        try:
            info = self.audit.run(run_id)
            if info.run_id != run_id or info.status != "running":
                return
        except MedcoderError:
            return  # the audit never heard of it (a run coded without this store)
        state = self.state(run_id) or CodingState()
        self._finish_audit(run_id, "done", state.result, NoteRedactor(state.note) if not self.store_note else None)

    def _finish_audit(self, run_id: str, status: str, result: RunResult | None, redact: NoteRedactor | None) -> None:
        """Tell the audit store the run ended, with its result (redacted when the note is not kept)."""
        if self.audit is not None:
            data = to_json(result) if result is not None else None
            self.audit.finish_run(run_id, status, redact(data) if redact and data is not None else data)

    @property
    def retriever(self) -> Retriever | None:
        """The retriever the workflow's `knowledge.retriever` names (None for `none`): what its agents search."""
        return self._retriever

    @property
    def recipe(self) -> "WorkflowRecipe":
        """What another process needs to build this same workflow (with its own models)."""
        if self._recipe_args["custom_llms"]:
            raise MedcoderError(
                "a workflow built from model objects cannot be copied into worker processes; "
                "give model names instead, or use one worker"
            )
        args = {k: v for k, v in self._recipe_args.items() if k != "custom_llms"}
        return WorkflowRecipe(self.source_text, self.spec.name, self.settings.model_dump(mode="json"), **args)

    def _forget(self, run_id: str) -> None:
        """Drop a finished run's checkpoints (they hold the note) and overwrite them on disk."""
        self.checkpointer.delete_thread(run_id)
        with storage.guard(self.path, "checkpoint database"):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _snapshot(self, run_id: str) -> Any:
        return self.graph.get_state(self._config(run_id))

    def state(self, run_id: str) -> CodingState | None:
        """Run `run_id`'s last checkpointed state (None when this workflow has no such run)."""
        values = self._snapshot(run_id).values
        return CodingState.model_validate(dict(values)) if values else None

    def note_of(self, run_id: str) -> str:
        """The note of run `run_id` ("" when there is no such run here)."""
        state = self.state(run_id)
        return state.note if state else ""

    def finished(self, run_id: str) -> bool:
        """Whether run `run_id` reached its end here (its result is in this workflow's checkpoints)."""
        return _finished(self._snapshot(run_id))

    def mermaid(self) -> str:
        return self.graph.get_graph().draw_mermaid()

    def close(self) -> None:
        if self._owns_llms:
            for llm in {id(x): x for x in self.llms.values()}.values():
                llm.close()
        self._conn.close()
        if self.audit is not None:
            self.audit.close()

    def __enter__(self) -> "Workflow":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finished(snapshot: Any) -> bool:
    """A run that reached its end (finalize wrote a result), not one stopped before its first step."""
    return bool(snapshot.values) and not snapshot.next and snapshot.values.get("result") is not None


@dataclass
class WorkflowRecipe:
    """A picklable description of a workflow: batch workers call it to build their own copy."""

    source_text: str
    name: str
    settings: dict[str, Any]
    model: str | None = None
    checkpoint_path: str | None = None
    audit: Any = True
    store_note: bool = True

    def __call__(self) -> "Workflow":
        audit = SQLiteAuditStore(self.audit) if isinstance(self.audit, (str, Path)) else self.audit
        spec = parse_spec(self.source_text, self.name) if self.source_text else load_spec(self.name)[0]
        return Workflow(
            spec,
            self.source_text,
            model=self.model,
            settings=Settings(**self.settings),
            checkpoint_path=self.checkpoint_path,
            audit=audit,
            store_note=self.store_note,
        )


def load_workflow(name_or_path: str | Path = "full", *, text: str | None = None, **kwargs: Any) -> Workflow:
    """A built-in workflow (`icd10cm`, `atc`, `full`), a YAML file, or YAML `text`."""
    if text is not None:
        return Workflow(parse_spec(text, "<text>"), text, **kwargs)
    spec, source = load_spec(name_or_path)
    return Workflow(spec, source, **kwargs)
