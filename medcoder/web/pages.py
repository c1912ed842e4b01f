"""The server-rendered pages: worklist, review, audit story, API reference. Jinja2 with autoescape on, so
every note and user string reaches the browser as text; the only script is the package's own app.js."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from medcoder.errors import MedcoderError
from medcoder.knowledge.systems import system_class, system_names
from medcoder.notetext import NoteError
from medcoder.web.security import check_form_csrf
from medcoder.web.workspace import ARRIVAL, ORDERS, Workspace

router = APIRouter(include_in_schema=False)
STATUSES = ("to review", "in progress", "done", "queued", "coding", "failed")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("medcoder.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda ts: dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else ""
    env.filters["pct"] = lambda p: f"{100 * float(p):.0f}%"
    return env


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """A page with what every page needs: the CSRF token for its forms and scripts."""
    html = _env().get_template(template).render(csrf=request.app.state.guard.csrf, **values)
    return HTMLResponse(html, status_code=status_code)


def _ws(request: Request) -> Workspace:
    return request.app.state.workspace


def _worklist(
    request: Request, query: str = "", status: str = "", message: str = "", order: str = ARRIVAL
) -> HTMLResponse:
    ws = _ws(request)
    everything = ws.items(order=order if order in ORDERS else ARRIVAL)
    counts = {s: sum(1 for i in everything if i["status"] == s) for s in STATUSES}
    items = ws.select(everything, query, status)
    return render(
        request,
        "worklist.html",
        items=items,
        counts=counts,
        query=query,
        status=status,
        statuses=STATUSES,
        order=order,
        orders=ORDERS,
        message=message,
        total=len(everything),
        workflow=ws.workflow.spec.name,
    )


@router.get("/", response_class=HTMLResponse)
def worklist(request: Request, status: str = "", order: str = ARRIVAL) -> HTMLResponse:
    return _worklist(request, status=status if status in STATUSES else "", order=order)


@router.post("/search", response_class=HTMLResponse, dependencies=[Depends(check_form_csrf)])
def worklist_search(request: Request, q: str = Form(""), status: str = Form("")) -> HTMLResponse:
    """Search by id, title or note text (a form post: the words stay out of the address and the logs)."""
    return _worklist(request, q, status if status in STATUSES else "")


@router.post("/notes", dependencies=[Depends(check_form_csrf)])
async def add_note(
    request: Request, text: str = Form(""), title: str = Form(""), file: UploadFile | None = None
) -> Response:
    """A pasted or uploaded note: queued for coding, then back to the worklist, which shows its progress."""
    data: str | bytes = text
    source = "paste"
    if file is not None and file.filename:
        data, source = await file.read(), "upload"
        title = title or file.filename
    try:
        item = _ws(request).submit(data, title, source)
    except NoteError as exc:
        return _worklist(request, message=f"not coded: {exc}")
    return RedirectResponse(f"/?added={item.id}", status_code=303)


@router.get("/sessions/{item_id}", response_class=HTMLResponse)
def review(request: Request, item_id: str) -> HTMLResponse:
    ws = _ws(request)
    item = ws.item(item_id)
    if item["state"] != "ready":
        return render(request, "waiting.html", item=item)
    systems = [(name, system_class(name).title or name) for name in system_names()]
    return render(request, "review.html", view=ws.review(item_id), systems=systems)


@router.post("/sessions/{item_id}/export", dependencies=[Depends(check_form_csrf)])
def export(request: Request, item_id: str, format: str = Form("fhir")) -> Response:
    text = _ws(request).export(item_id, format)
    suffix = {"fhir": "fhir.json", "json": "json", "csv": "csv"}.get(format, "txt")
    return Response(
        text,
        media_type="text/csv" if format == "csv" else "application/json",
        headers={"content-disposition": f'attachment; filename="{item_id}-codes.{suffix}"'},
    )


@router.get("/runs/{run_id}/audit", response_class=HTMLResponse)
def audit(request: Request, run_id: str) -> HTMLResponse:
    return render(request, "audit.html", story=_ws(request).audit(run_id))


@router.get("/docs", response_class=HTMLResponse)
def api_docs(request: Request) -> HTMLResponse:
    """The OpenAPI description as a page that works offline (FastAPI's own /docs loads Swagger from a CDN)."""
    spec = request.app.openapi()
    routes = []
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            ref = body.get("$ref", "").rsplit("/", 1)[-1]
            schema = spec.get("components", {}).get("schemas", {}).get(ref, {})
            routes.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "params": [
                        {"name": p["name"], "in": p["in"], "required": p.get("required", False)}
                        for p in op.get("parameters", [])
                    ],
                    "body": ref,
                    "fields": [
                        {
                            "name": n,
                            "type": f.get("type")
                            or " | ".join(a.get("type", a.get("const", "")) for a in f.get("anyOf", []))
                            or " | ".join(f.get("enum", [])),
                            "description": f.get("description", ""),
                            "required": n in schema.get("required", []),
                        }
                        for n, f in schema.get("properties", {}).items()
                    ],
                    "responses": sorted(op.get("responses", {})),
                }
            )
    return render(request, "docs.html", routes=routes, title=spec["info"]["title"], version=spec["info"]["version"])


@router.post("/relearn", dependencies=[Depends(check_form_csrf)])
def relearn_start(request: Request, adopt: str = Form("")) -> Response:
    """Start re-learning the ranker from the site's decided notes (the workspace's token holder only, when it
    has one); the job's page shows its progress and report."""
    try:
        _ws(request).relearn(adopt=adopt == "yes")
    except MedcoderError as exc:
        return _worklist(request, message=f"not started: {exc}")
    return RedirectResponse("/relearn", status_code=303)


@router.get("/relearn", response_class=HTMLResponse)
def relearn_page(request: Request) -> HTMLResponse:
    return render(request, "relearn.html", job=_ws(request).relearner.job.to_dict())


@router.get("/relearn/report", response_class=HTMLResponse)
def relearn_report(request: Request) -> HTMLResponse:
    """The before/after report of the last re-learn."""
    job = _ws(request).relearner.job
    report = Path(job.folder) / "report.html" if job.folder else None
    if report is None or not report.is_file():
        return render(request, "relearn.html", status_code=404, job=job.to_dict())
    return HTMLResponse(report.read_text(encoding="utf-8"))
