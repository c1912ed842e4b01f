"""The web review workspace (`medcoder serve`): a worklist, a review page per note and its audit story,
over the same Session SDK and audit store as `medcoder chat` and Python."""

from medcoder.web.workspace import Conflict, Decision, NotFound, Workspace

__all__ = ["Conflict", "Decision", "NotFound", "Workspace"]
