"""`medcoder serve-model`: one model behind one OpenAI-compatible URL with N parallel slots, for many workers."""

from __future__ import annotations

import click


@click.command("serve-model")
@click.option("--model", "-m", default="default", show_default=True, help="default, test, or a GGUF path.")
@click.option(
    "--slots",
    "-n",
    default=2,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Requests served at once: one llama.cpp server process (one copy of the model) per slot.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; any other than loopback requires an API key (generated if not given).",
)
@click.option("--port", "-p", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--n-ctx", default=4096, show_default=True, type=click.IntRange(256, 1 << 20), help="Context per slot.")
@click.option(
    "--n-gpu-layers",
    default=0,
    show_default=True,
    type=int,
    help="Layers on the GPU per slot (-1: all; needs llama-cpp-python built with CUDA).",
)
@click.option(
    "--threads-per-slot",
    default=None,
    type=click.IntRange(1, 512),
    help="CPU threads per slot (default: the cores shared out between the slots).",
)
@click.option("--api-key", default=None, envvar="MEDCODER_API_KEY", help="Clients send it as a Bearer token.")
def serve_model(
    model: str,
    slots: int,
    host: str,
    port: int,
    n_ctx: int,
    n_gpu_layers: int,
    threads_per_slot: int | None,
    api_key: str | None,
) -> None:
    """Serve MODEL to batch workers (local or Ray) through the `http` backend, until Ctrl-C.

    Prints the two settings a worker needs (MEDCODER_BACKEND=http, MEDCODER_BASE_URL=...). vLLM or
    llama.cpp's `llama-server -np N` serve the same API: point MEDCODER_BASE_URL at them instead."""
    from medcoder.llm.serving import ModelServer, ServeOptions, stop_on_signals  # deferred: CLI start-up

    stop_on_signals()  # SIGTERM / SIGHUP stop the slots too (and a killed dispatcher takes them with it)

    server = ModelServer(
        ServeOptions(
            model=model,
            slots=slots,
            host=host,
            port=port,
            n_ctx=n_ctx,
            n_gpu_layers=n_gpu_layers,
            threads_per_slot=threads_per_slot,
            api_key=api_key,
        )
    )
    click.echo(f"starting {slots} slot(s) of {model} ...", err=True)
    try:
        url = server.start()
        click.echo(f"serving {model} with {slots} slot(s) at {url}; workers use:", err=True)
        click.echo(f"export MEDCODER_BACKEND=http MEDCODER_BASE_URL={url}")
        if server.generated_key:
            click.echo(f"export MEDCODER_API_KEY={server.options.api_key}  # generated for this run; shown once")
        server.wait()
    finally:
        server.stop()
