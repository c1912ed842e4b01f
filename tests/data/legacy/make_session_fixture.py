"""How the legacy review fixture was made (run once with the code of commit c706ac6, when a review's rows
were dicts): session `s-legacy` of `full-tree`, the first code accepted, the second rejected, J45.909
added; `session.sqlite` holds its checkpoints (the coding run's and the review's), `session-expected.json`
the rows as they stood.

    PYTHONPATH=<a checkout of c706ac6> python tests/data/legacy/make_session_fixture.py
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from medcoder import load_workflow
from medcoder.llm import FakeLLM
from medcoder.session import Session
from tests.test_workflow_logic import NOTE, agree, extractor

HERE = Path(__file__).parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wf = load_workflow("full-tree", llms={"default": FakeLLM(extractor, chooser=agree)},
                           checkpoint_path=Path(tmp) / "c.sqlite", audit=None)
        s = Session.start(NOTE, wf, session_id="s-legacy")
        codes = [c.code for c in s.codes()]
        s.accept(codes[0])
        s.reject(codes[1], "not documented as current")
        s.add("J45.909", "wheeze on exam")
        rows = s.codes()
        s.close()
        shutil.copy(Path(tmp) / "c.sqlite", HERE / "session.sqlite")
    (HERE / "session-expected.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(rows)


if __name__ == "__main__":
    main()
