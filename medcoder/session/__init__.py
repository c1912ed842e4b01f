"""Interactive coding sessions: a coder and medcoder work through one note together."""

from medcoder.session.core import Answer, Session, SessionError

__all__ = ["Answer", "Session", "SessionError"]
