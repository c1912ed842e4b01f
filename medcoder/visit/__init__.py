"""How a visit is read, whatever its layout: the visit parts of its sentences (headers, a learned sentence
classifier, problem lists), visit note or case report, and the doctor–patient conversation as an input.

`read_layout(note)` is the one entry point the ranker, the guideline rules and the drug coder share.
"""

from medcoder.visit.layout import VisitLayout, read_layout

__all__ = ["VisitLayout", "read_layout"]
