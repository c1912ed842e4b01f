"""Batch coding on a Ray cluster: Ray Data streams the notes through an actor pool, one workflow and model per actor.

This process stays the only writer of the output (`runner.output_writer`), so the contract is the
local engine's: Ray restarts a dead actor and retries its notes, a note that comes back twice is
written once, and a rerun skips the ids already written. Each note keeps the run id the local
engine gives it, so a retried note resumes from its checkpoint on the same node.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
from pathlib import Path
from typing import Any, Callable

from medcoder.batch.items import BatchItem, RayOptions, code_item, run_id_for, with_threads
from medcoder.errors import MedcoderError

logger = logging.getLogger(__name__)

# what the actors need from this process's environment: medcoder's settings and homes, where the caches are
_FORWARDED_PREFIXES = ("MEDCODER_", "XDG_")
# one note per block up to this many notes: a retry re-runs one note, progress moves note by note
_MAX_BLOCKS = 10_000


class _NoteCoder:
    """A Ray Data actor: builds its workflow (and loads its model) once, then codes the rows it is given."""

    factory: Callable[[], Any]  # set on a per-batch subclass (`_coder_class`)

    def __init__(self) -> None:
        self.workflow = type(self).factory()
        self.host = socket.gethostname()  # which node's audit store and checkpoints hold the run

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        lines = []
        for note_id, data, is_text, run_id in zip(batch["id"], batch["data"], batch["is_text"], batch["run_id"]):
            raw = bytes(data)
            item = BatchItem(str(note_id), raw.decode("utf-8") if is_text else raw)
            line = code_item(self.workflow, item, str(run_id))
            line["host"] = self.host
            lines.append(json.dumps(line, ensure_ascii=False))
        return {"line": lines}


def _coder_class(factory: Callable[[], Any]) -> type[_NoteCoder]:
    """The actor class with its recipe inside: it travels with the class, so a restarted actor needs
    nothing from the object store (constructor arguments there can be gone by the time Ray restarts one)."""
    return type("NoteCoder", (_NoteCoder,), {"factory": staticmethod(factory), "__module__": __name__ + "._batch"})


def _quiet_ray_data(verbose: bool) -> None:
    """Ray Data's own INFO lines and progress bars would interleave with the batch's progress line."""
    import ray.data  # lazy: Ray takes seconds to import

    ctx = ray.data.DataContext.get_current()
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled"
    ctx.enable_progress_bars = False
    if not verbose:
        for handler in logging.getLogger("ray.data").handlers:
            if not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.WARNING)


def _runtime_env() -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_PREFIXES)}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return {"env_vars": env}


def _connect(options: RayOptions) -> bool:
    """Join the cluster `options.address` names, or start a private local Ray; True when we started it."""
    import ray  # lazy: Ray takes seconds to import

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
    if ray.is_initialized():
        return False
    common: dict[str, Any] = {"runtime_env": _runtime_env(), "logging_level": logging.WARNING, "log_to_driver": True}
    try:
        if options.address:
            ray.init(address=options.address, **common)
        else:
            need = math.ceil(options.actors * options.cpus_per_actor)
            ray.init(num_cpus=max(os.cpu_count() or 1, need), include_dashboard=False, **common)
    except ConnectionError as exc:
        raise MedcoderError(
            f"cannot reach the Ray cluster at {options.address}: {exc}; start it with "
            "`ray start --head` or leave --address out for a local Ray"
        ) from exc
    return True


def _actors_that_fit(options: RayOptions) -> int:
    """How many actors the cluster can hold at once; fail now rather than wait for resources forever."""
    import ray  # lazy: Ray takes seconds to import

    have = ray.cluster_resources()
    fits = [options.actors]
    for name, per in (("CPU", options.cpus_per_actor), ("GPU", options.gpus_per_actor)):
        if per > 0:
            fits.append(int(have.get(name, 0) // per))
    n = min(fits)
    if n < 1:
        raise MedcoderError(
            f"the Ray cluster has {have.get('CPU', 0):g} CPUs and {have.get('GPU', 0):g} GPUs: "
            f"not enough for one actor with {options.cpus_per_actor:g} CPUs and "
            f"{options.gpus_per_actor:g} GPUs"
        )
    if n < options.actors:
        logger.warning("the Ray cluster fits %d of the %d actors asked for; using %d", n, options.actors, n)
    return n


def _medcoder_error(exc: BaseException) -> MedcoderError | None:
    """The medcoder error (a StorageError, say) an actor raised, from under Ray's wrappers."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, MedcoderError):
            return cur
        cur = getattr(cur, "cause", None) or cur.__cause__
    return None


def run_on_ray(
    factory: Callable[[], Any],
    todo: list[BatchItem],
    out: Path,
    write: Callable[[dict[str, Any]], bool],
    options: RayOptions,
) -> None:
    """Code `todo` on Ray and hand each line to `write` as it arrives."""
    if not todo:
        return
    if not hasattr(factory, "settings"):
        raise MedcoderError("the Ray engine needs a workflow recipe (Workflow.recipe), not a Workflow object")
    try:
        import ray  # lazy: Ray takes seconds to import
        import ray.data  # lazy: as above
    except ImportError as exc:
        raise MedcoderError(
            f"the Ray engine needs Ray Data ({exc}); install it with: pip install -c constraints.txt 'medcoder[ray]'"
        ) from exc

    started = _connect(options)  # each actor's llama.cpp threads match the CPUs Ray gives it (`with_threads`)
    try:
        actors = _actors_that_fit(options)
        _quiet_ray_data(logger.isEnabledFor(logging.INFO))
        rows = [
            {
                "id": item.id,
                "data": item.text.encode("utf-8") if isinstance(item.text, str) else item.text,
                "is_text": isinstance(item.text, str),
                "run_id": run_id_for(out, item),
            }
            for item in todo
        ]
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), _MAX_BLOCKS))
        coded = ds.map_batches(
            _coder_class(with_threads(factory, int(options.cpus_per_actor))),
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=options.cpus_per_actor,
            num_gpus=options.gpus_per_actor or None,
        )
        logger.info("coding %d notes on Ray with %d actors", len(rows), actors)
        try:
            for row in coded.iter_rows():
                write(json.loads(row["line"]))
        except Exception as exc:
            cause = _medcoder_error(exc)
            if cause is not None:
                raise cause from None
            raise MedcoderError(
                f"the Ray batch failed: {type(exc).__name__}: {str(exc)[:500]}; finished notes "
                f"are in {out}: run the same command again to code the rest"
            ) from exc
    finally:
        if started:
            ray.shutdown()
