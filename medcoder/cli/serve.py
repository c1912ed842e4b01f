"""`medcoder serve`: the web review workspace (worklist, review pages, audit story, JSON API) on this machine."""

from __future__ import annotations

import hashlib
from pathlib import Path

import click


@click.command("serve")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; any other than loopback requires a token (generated if not given).",
)
@click.option("--port", "-p", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workflow", "-w", default="full", show_default=True, help="Workflow that codes new notes.")
@click.option("--model", "-m", default=None, help="default, test, or a GGUF path (default: the workflow's).")
@click.option(
    "--token",
    default=None,
    envvar="MEDCODER_WEB_TOKEN",
    help="Required of every browser and API client (also on loopback when given).",
)
@click.option(
    "--batch",
    "batches",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A `medcoder batch --out` file whose notes join the worklist for review (repeatable).",
)
@click.option(
    "--note",
    "notes",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A note file to code and put in the worklist (repeatable; a file already there is not coded again).",
)
@click.option(
    "--session",
    "sessions",
    multiple=True,
    help="A session id from `medcoder chat` (or the SDK) to review in the browser (repeatable).",
)
@click.option(
    "--allow-code",
    is_flag=True,
    help="Run a workflow YAML that names Python callables (module:callable), not only installed agents.",
)
@click.option(
    "--auto-accept",
    is_flag=True,
    help="Accept the codes at or above the ranker's auto-accept threshold as each note is coded (the audit trail "
    "marks them auto-accepted; a coder can still reject them).",
)
def serve(
    host: str,
    port: int,
    workflow: str,
    model: str | None,
    token: str | None,
    batches: tuple[Path, ...],
    notes: tuple[Path, ...],
    sessions: tuple[str, ...],
    allow_code: bool,
    auto_accept: bool,
) -> None:
    """Serve the review workspace until Ctrl-C: paste or upload notes, review their codes, read the audit trail.

    Bound to 127.0.0.1 by default. Another --host needs a token: the address printed once carries it, and
    the browser keeps it as a cookie. The JSON API is under /api, described at /docs."""
    from medcoder.engine.spec import load_spec, require_code_allowed  # deferred: CLI start-up
    from medcoder.llm.serving import is_loopback, new_secret  # deferred: CLI start-up (`medcoder --help` < 1 s)
    from medcoder.web.app import serve as run  # deferred: CLI start-up
    from medcoder.web.security import Guard, token_url  # deferred: CLI start-up
    from medcoder.web.workspace import Workspace  # deferred: CLI start-up

    require_code_allowed(load_spec(workflow)[0], allow_code)  # before anything loads or listens
    generated = False
    if token is None and not is_loopback(host):
        token, generated = new_secret(), True
    click.echo(f"loading workflow {workflow}{f' with model {model}' if model else ''} ...", err=True)
    workspace = Workspace(workflow, model=model, batches=list(batches), auto_accept=auto_accept)
    try:
        for session_id in sessions:
            workspace.adopt(session_id)
        for path in notes:
            data = path.read_bytes()
            workspace.submit(data, path.name, "upload", item_id="f" + hashlib.sha256(data).hexdigest()[:11])
        click.echo(f"medcoder workspace at {token_url(host, port, token)}", err=True)
        if generated:
            click.echo("(the token in that address was generated for this run and is shown only once)", err=True)
        run(workspace, host=host, port=port, guard=Guard(token=token))
    finally:
        workspace.close()
