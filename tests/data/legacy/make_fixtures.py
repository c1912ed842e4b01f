"""How the legacy fixtures were made (run once, at commit 96d31df, when the workflow state was dicts):

- `checkpoints.sqlite`: run `crash-1` of `full-tree` with a node that fails between the critic and finalize,
  so its last checkpoint holds sections, entities, candidates, proposals and verdicts in the dict state.
- `audit.sqlite`: run `recorded-1` of `full-tree` to the end, every model answer in its audit trail.
- `expected.json`: the codes each run gave (the crashed one when it was resumed then).

    python tests/data/legacy/make_fixtures.py
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[2]))

from medcoder import load_workflow  # noqa: E402
from medcoder.audit.store import SQLiteAuditStore  # noqa: E402
from medcoder.engine.spec import load_spec  # noqa: E402
from medcoder.llm import FakeLLM  # noqa: E402
from tests import flaky_agent  # noqa: E402
from tests.test_workflow_logic import NOTE, agree, extractor  # noqa: E402


def crash_spec() -> str:
    """full-tree with `tests.flaky_agent:flaky` between the critic and finalize."""
    text = load_spec("full-tree")[1]
    text = re.sub(r"  - id: finalize\n", "  - id: flaky\n    agent: tests.flaky_agent:flaky\n  - id: finalize\n", text)
    return text.replace("to: finalize, when: otherwise}",
                        "to: flaky, when: otherwise}\n  - {from: flaky, to: finalize}")


def _codes(result) -> list[str]:
    return sorted(f"{c.system}:{c.code}" for c in result.codes)


def main() -> None:
    expected = {}
    with tempfile.TemporaryDirectory() as tmp:
        flaky_agent.CALLS["n"] = 0
        wf = load_workflow(text=crash_spec(), llms={"default": FakeLLM(extractor, chooser=agree)},
                           checkpoint_path=Path(tmp) / "c.sqlite", audit=None)
        try:
            wf.run(NOTE, run_id="crash-1")
        except RuntimeError:
            pass
        wf.close()
        shutil.copy(Path(tmp) / "c.sqlite", HERE / "checkpoints.sqlite")
        wf = load_workflow(text=crash_spec(), llms={"default": FakeLLM(extractor, chooser=agree)},
                           checkpoint_path=Path(tmp) / "c.sqlite", audit=None)
        expected["crash-1"] = _codes(wf.run(None, run_id="crash-1"))
        wf.close()
        audit = HERE / "audit.sqlite"
        audit.unlink(missing_ok=True)
        wf = load_workflow("full-tree", llms={"default": FakeLLM(extractor, chooser=agree)},
                           checkpoint_path=Path(tmp) / "r.sqlite", audit=SQLiteAuditStore(audit))
        expected["recorded-1"] = _codes(wf.run(NOTE, run_id="recorded-1"))
        wf.close()
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(expected)


if __name__ == "__main__":
    main()
