"""One model served to many batch workers over HTTP: llama.cpp's own server, one process per slot, one URL.

llama-cpp-python's server (`python -m llama_cpp.server`) answers one request at a time (an anyio
lock around its single `Llama`), so N parallel slots are N of its processes, each holding the model
once, on private loopback ports; a small dispatcher on the public port hands each request to a free
slot and queues the rest. Workers see what llama.cpp's C++ `llama-server -np N` or vLLM offer: one
OpenAI-compatible URL that serves N requests at once, reached through the `http` backend.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from medcoder import paths
from medcoder.errors import MedcoderError

logger = logging.getLogger(__name__)

_FORWARDED_HEADERS = ("Content-Type", "Accept")
_START_TIMEOUT = 300.0


@dataclass
class ServeOptions:
    """What `medcoder serve-model` starts: which model, how many slots, where it listens."""

    model: str = "default"
    slots: int = 2
    host: str = "127.0.0.1"
    port: int = 8080
    n_ctx: int = 4096
    n_gpu_layers: int = 0  # -1: every layer on the GPU (a CUDA build of llama-cpp-python)
    threads_per_slot: int | None = None  # None: this machine's cores shared out between the slots
    api_key: str | None = None  # required off the loopback interface (generated when not given)
    alias: str | None = None  # the model id the server reports; default: the model's name
    extra_args: list[str] = field(default_factory=list)  # more `llama_cpp.server` flags, passed as given


def is_loopback(host: str) -> bool:
    """Whether a bind address or Host name stays on this machine (`localhost`, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_secret() -> str:
    """A key or token for a server reachable off this machine (`serve-model`'s API key, `serve`'s token)."""
    return secrets.token_urlsafe(24)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Dispatcher(ThreadingHTTPServer):
    """The public port: each request goes to a free slot, the rest wait. Among free slots, the one whose last
    prompt shares the longest start with this one: each slot keeps its last prompt in its KV cache, so the
    option labels of one `choose` or the continuations of one `score` reuse the context instead of
    evaluating it again on the other slot (without this, most requests re-read the whole note)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], slots: list[str], api_key: str | None) -> None:
        super().__init__(address, _Handler)
        self.slots = slots
        self.api_key = api_key
        self._free = set(range(len(slots)))
        self._last: dict[int, str] = {}
        self._cond = threading.Condition()

    def acquire(self, prompt: str) -> int:
        with self._cond:
            while not self._free:
                self._cond.wait()
            slot = max(sorted(self._free), key=lambda i: _shared_start(self._last.get(i, ""), prompt))
            self._free.discard(slot)
            self._last[slot] = prompt
            return slot

    def release(self, slot: int) -> None:
        with self._cond:
            self._free.add(slot)
            self._cond.notify()

    def free_count(self) -> int:
        with self._cond:
            return len(self._free)


def _shared_start(a: str, b: str) -> int:
    return len(os.path.commonprefix([a, b]))


def _prompt_of(body: bytes | None) -> str:
    """What a request's KV cache would hold: its prompt, or its chat messages."""
    if not body:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    prompt = data.get("prompt") if isinstance(data, dict) else None
    if isinstance(prompt, str):
        return prompt
    return json.dumps(data.get("messages", ""), ensure_ascii=False) if isinstance(data, dict) else ""


class _Handler(BaseHTTPRequestHandler):
    server: _Dispatcher
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        logger.debug("%s %s", self.command, self.path.split("?")[0])  # never a body: requests carry notes

    def _reply(
        self, status: int, body: bytes, content_type: str = "application/json", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting; the slot is free again
            logger.info("client left before its answer from %s came", self.path.split("?")[0])

    def _authorised(self) -> bool:
        key = self.server.api_key
        if key is None:
            return True
        given = self.headers.get("Authorization", "")
        return secrets.compare_digest(given.encode(), f"Bearer {key}".encode())

    def _forward(self) -> None:
        if not self._authorised():
            self._reply(401, b'{"error": "missing or wrong API key (Authorization: Bearer ...)"}')
            return
        if self.path == "/health":
            self._reply(200, f'{{"slots": {len(self.server.slots)}, "free": {self.server.free_count()}}}'.encode())
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        slot = self.server.acquire(_prompt_of(body))
        url = self.server.slots[slot]
        try:
            req = urllib.request.Request(
                url + self.path,
                data=body,
                method=self.command,
                headers={h: self.headers[h] for h in _FORWARDED_HEADERS if self.headers[h]},
            )
            try:
                with urllib.request.urlopen(req, timeout=600) as resp:
                    status, data, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "application/json")
            except urllib.error.HTTPError as exc:
                status, data, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "application/json")
            except OSError as exc:
                status, data, ctype = (
                    502,
                    f'{{"error": "slot {slot} failed: {type(exc).__name__}"}}'.encode(),
                    "application/json",
                )
        finally:
            self.server.release(slot)
        self._reply(status, data, ctype, {"X-Medcoder-Slot": str(slot)})

    do_GET = do_POST = _forward


def _die_with_parent() -> None:
    """In a slot, before it runs: the kernel sends it SIGTERM when the dispatcher dies, however it dies
    (SIGKILL, a crash, the OOM killer), so no slot outlives it holding the model and a port (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


STOP_SIGNALS = ("SIGTERM", "SIGHUP")  # what `kill`, `systemctl stop`, `docker stop` and a closed terminal send


def stop_on_signals() -> None:
    """Turn SIGTERM and SIGHUP into an orderly exit (SystemExit, so `finally` blocks stop the slots), and make
    Ctrl-C (SIGINT) a KeyboardInterrupt even where the parent started us with SIGINT ignored (a script's
    `cmd &`: Python then leaves it ignored, and Ctrl-C or `kill -INT` would do nothing). Call it from the
    main thread."""

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name in STOP_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _exit)


class ModelServer:
    """N `llama_cpp.server` processes behind one dispatcher; `start()` returns the URL workers use."""

    def __init__(self, options: ServeOptions) -> None:
        if options.slots < 1:
            raise MedcoderError("a model server needs at least one slot")
        if not is_loopback(options.host) and not options.api_key:
            options.api_key = new_secret()  # off the loopback interface, never without a key
            self.generated_key = True
        else:
            self.generated_key = False
        self.options = options
        self.procs: list[subprocess.Popen[bytes]] = []
        self.slot_urls: list[str] = []
        self._logs: list[IO[bytes]] = []
        self._dispatcher: _Dispatcher | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.options.host if self.options.host not in ("0.0.0.0", "::") else "127.0.0.1"
        port = self._dispatcher.server_address[1] if self._dispatcher else self.options.port
        return f"http://{host}:{port}/v1"

    def _slot_command(self, path: Path, name: str, port: int) -> list[str]:
        o = self.options
        threads = o.threads_per_slot or max(1, (os.cpu_count() or 1) // o.slots)
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(path),
            "--model_alias",
            o.alias or name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(o.n_ctx),
            "--n_threads",
            str(threads),
            "--n_threads_batch",
            str(threads),
            "--n_gpu_layers",
            str(o.n_gpu_layers),
            *o.extra_args,
        ]

    def start(self, timeout: float = _START_TIMEOUT) -> str:
        """Start every slot, wait until each answers, then open the public port."""
        from medcoder.llm.registry import resolve_model  # deferred: the registry checks model files

        name, path = resolve_model(self.options.model)
        logs = paths.home() / "logs"
        logs.mkdir(exist_ok=True)
        try:
            for i in range(self.options.slots):
                port = free_port()
                log = open(logs / f"serve-model-slot{i}.log", "wb")  # a file: llama.cpp logs enough to block a pipe
                self._logs.append(log)
                self.procs.append(
                    subprocess.Popen(
                        self._slot_command(path, name, port),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        preexec_fn=_die_with_parent,
                    )
                )
                self.slot_urls.append(f"http://127.0.0.1:{port}")
            self._wait_ready(timeout, logs)
            try:
                self._dispatcher = _Dispatcher(
                    (self.options.host, self.options.port), self.slot_urls, self.options.api_key
                )
            except OSError as exc:
                raise MedcoderError(
                    f"cannot listen on {self.options.host}:{self.options.port}: "
                    f"{exc.strerror or exc}; choose another --port"
                ) from exc
            self._thread = threading.Thread(target=self._dispatcher.serve_forever, name="model-dispatcher", daemon=True)
            self._thread.start()
        except BaseException:
            self.stop()
            raise
        logger.info("serving %s with %d slots at %s", name, self.options.slots, self.url)
        return self.url

    def _wait_ready(self, timeout: float, logs: Path) -> None:
        deadline = time.monotonic() + timeout
        waiting = dict(enumerate(self.slot_urls))
        while waiting:
            for i, url in list(waiting.items()):
                if self.procs[i].poll() is not None:
                    tail = (logs / f"serve-model-slot{i}.log").read_text(errors="replace")[-600:]
                    raise MedcoderError(f"model server slot {i} exited (code {self.procs[i].returncode}): {tail}")
                try:
                    urllib.request.urlopen(f"{url}/v1/models", timeout=2).close()
                    del waiting[i]
                except OSError:
                    pass
            if waiting and time.monotonic() > deadline:
                raise MedcoderError(
                    f"model server slots {sorted(waiting)} did not answer in {timeout:.0f} s; "
                    f"see {logs}/serve-model-slot*.log"
                )
            if waiting:
                time.sleep(0.3)

    def wait(self) -> None:
        """Serve until a slot dies (its exit is an error) or the process is interrupted."""
        while True:
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    raise MedcoderError(
                        f"model server slot {i} exited (code {proc.returncode}); "
                        f"see {paths.home() / 'logs'}/serve-model-slot{i}.log"
                    )
            time.sleep(1.0)

    def stop(self) -> None:
        if self._dispatcher is not None:
            self._dispatcher.shutdown()
            self._dispatcher.server_close()
            self._dispatcher = None
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()
        self.procs, self._logs = [], []

    def __enter__(self) -> "ModelServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
