"""The JSON API under /api: the Workspace's methods, one route each (OpenAPI at /openapi.json, read at /docs)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from medcoder.knowledge.systems import DEFAULT_SYSTEM
from medcoder.records import CoderAction
from medcoder.web.workspace import Decision, Workspace


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoteIn(_In):
    text: str = Field(description="the note; refused when empty, binary or over the workflow's size limit")
    title: str = Field("", max_length=200, description="a name for the worklist (default: the note's first line)")


class DecisionIn(_In):
    action: CoderAction
    code: str = Field(max_length=16, description="the code decided on (for replace: the new code)")
    reason: str = Field("", max_length=2000, description="why (required for reject)")
    old: str | None = Field(None, max_length=16, description="replace: the code it replaces")
    system: str | None = Field(
        None, max_length=32, description="add/replace: the code system (default: by the code's shape)"
    )
    version: int | None = Field(
        None,
        ge=0,
        description="the session version the sender saw (from GET); a "
        "decision on a code changed since is refused with 409",
    )


class SearchIn(_In):
    text: str = Field(max_length=200)
    system: str = Field(DEFAULT_SYSTEM, max_length=32)
    k: int = Field(10, ge=1, le=50)


class AdoptIn(_In):
    session_id: str = Field(max_length=64, description="a session or run id from `medcoder chat` or the SDK")
    title: str = Field("", max_length=200)


class ItemSearchIn(_In):
    q: str = Field("", max_length=200, description="words in the id, title or note text")
    status: str = Field("", description="to review, in progress, done, queued, coding or failed")


class ExportIn(_In):
    format: Literal["json", "csv", "fhir"] = "json"


def _ws(request: Request) -> Workspace:
    return request.app.state.workspace


router = APIRouter(prefix="/api", tags=["api"])


@router.get("/items", summary="The worklist: notes with their review status, counts and coding progress")
def list_items(request: Request, status: str = "", order: str = "arrival") -> list[dict[str, Any]]:
    """`order`: arrival, or `needs review` (the notes whose codes sit nearest the ranker's threshold first)."""
    return _ws(request).items(status=status, order=order)


@router.post(
    "/items/search",
    summary="The worklist items whose id, title or note text holds the words (a post: "
    "words from a note stay out of addresses and logs)",
)
def search_items(request: Request, body: ItemSearchIn) -> list[dict[str, Any]]:
    return _ws(request).items(body.q, body.status)


@router.post("/items", status_code=202, summary="Queue a note for coding (it is coded in the background)")
def add_item(request: Request, note: NoteIn) -> dict[str, Any]:
    item = _ws(request).submit(note.text, note.title)
    return _ws(request).item(item.id)


@router.post("/items/adopt", summary="Put a session coded elsewhere (`medcoder chat`, Python) in the worklist")
def adopt_item(request: Request, body: AdoptIn) -> dict[str, Any]:
    return _ws(request).item(_ws(request).adopt(body.session_id, body.title).id)


@router.get("/items/{item_id}", summary="One item: its state and coding progress")
def get_item(request: Request, item_id: str) -> dict[str, Any]:
    return _ws(request).item(item_id)


@router.get(
    "/sessions/{item_id}",
    summary="The review: note segments with evidence, ranked codes, suggestions, "
    "decisions and the version to send with the next decision",
)
def get_session(request: Request, item_id: str) -> dict[str, Any]:
    return _ws(request).review(item_id)


@router.post(
    "/sessions/{item_id}/decisions",
    summary="Accept, reject (with a reason), add or replace a code",
    responses={409: {"description": "another tab decided on the same code after `version`"}},
)
def decide(request: Request, item_id: str, decision: DecisionIn) -> dict[str, Any]:
    return _ws(request).decide(item_id, Decision(**decision.model_dump()))


@router.post("/sessions/{item_id}/finish", summary="Mark the note done (no more decisions)")
def finish(request: Request, item_id: str) -> dict[str, Any]:
    return _ws(request).finish(item_id)


@router.get(
    "/sessions/{item_id}/why/{code}",
    summary="Why a code: evidence, path, options and probabilities, critic verdict, ranker features, audit events",
)
def why(request: Request, item_id: str, code: str) -> dict[str, Any]:
    return _ws(request).why(item_id, code)


@router.post(
    "/sessions/{item_id}/export", summary="The accepted codes as FHIR, JSON or CSV", response_class=PlainTextResponse
)
def export(request: Request, item_id: str, body: ExportIn) -> PlainTextResponse:
    text = _ws(request).export(item_id, body.format)
    media = "text/csv" if body.format == "csv" else "application/json"
    return PlainTextResponse(text, media_type=media)


@router.post("/search", summary="Hybrid search of the code systems (BM25, vectors, Alphabetic Index)")
def search(request: Request, body: SearchIn) -> list[dict[str, Any]]:
    return _ws(request).search(body.text, body.system, body.k)


@router.get("/runs/{run_id}/audit", summary="A run's audit events as a story, with the hash chain's verdict")
def audit(request: Request, run_id: str) -> dict[str, Any]:
    return _ws(request).audit(run_id)


class RelearnIn(_In):
    adopt: bool = Field(False, description="use the new ranker from now on if it is not worse on the held-back notes")


@router.post("/relearn", status_code=202, summary="Start re-learning the ranker from the site's decided notes")
def relearn_start(request: Request, body: RelearnIn) -> dict[str, Any]:
    return _ws(request).relearn(adopt=body.adopt).to_dict()


@router.get("/relearn", summary="Where the re-learn stands: stage, progress, verdict, the report's folder")
def relearn_status(request: Request) -> dict[str, Any]:
    return _ws(request).relearner.job.to_dict()
