"""Fault points: named places where the reliability suite kills the process on purpose.

`MEDCODER_FAULT="batch_append:3"` SIGKILLs the process the 3rd time the batch reaches the
point named `batch_append` (several as `a:2,b:5`). Unset, a point costs one dict lookup. The
points sit where a kill is most harmful: inside a model call, half-way through an output line,
inside an audit transaction, between a session decision and its audit event.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Callable

logger = logging.getLogger(__name__)

ENV = "MEDCODER_FAULT"
POINTS = ("model_call", "batch_append", "audit_append", "session_decision", "eval_append")
_hits: dict[str, int] = {}


def point(name: str, before_kill: Callable[[], None] | None = None) -> None:
    """Count a pass through `name`; on the pass `MEDCODER_FAULT` names, run `before_kill` and SIGKILL ourselves."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    _hits[name] = _hits.get(name, 0) + 1
    for part in spec.split(","):
        target, _, nth = part.partition(":")
        if target.strip() == name and nth.strip().isdigit() and int(nth) == _hits[name]:
            logger.debug("fault point %s reached for the %d. time: killing the process", name, _hits[name])
            if before_kill is not None:
                before_kill()
            os.kill(os.getpid(), signal.SIGKILL)
