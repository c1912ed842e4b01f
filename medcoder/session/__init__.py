"""Interactive coding sessions: a coder and medcoder work through one note together."""

from medcoder.session.core import Answer, Session, SessionError
from medcoder.session.review import ReviewState

__all__ = ["Answer", "ReviewState", "Session", "SessionError"]
