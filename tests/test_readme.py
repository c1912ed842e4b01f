"""The README keeps its promises: its quick command blocks run, it stays short, and every relative link of the
README and of docs/*.md points at a file (and heading) that exists.

The convention (docs/install.md, "Tests and CI"): every ```bash / ```sh / ```shell / ```python block of README.md
is preceded by one of two HTML comments, invisible on the rendered page:

    <!-- readme-test: run -->             the block runs here and must exit 0
    <!-- readme-test: skip: REASON -->    reported as skipped with REASON (installs, the whole test suite, servers)

A block runs with cwd the repository root, the venv's `bin` first on the PATH (so `medcoder` is the repository's)
and MEDCODER_HOME a fresh temporary folder; shell blocks run under `bash -e -o pipefail`, so every command of the
block must succeed. A runnable block should take a minute at most on 2 cores.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAX_LINES = 250
SHELLS = ("bash", "sh", "shell")
MARKED = (*SHELLS, "python")  # the languages whose blocks must say whether they run
MARK = re.compile(r"^<!--\s*readme-test:\s*(run|skip)\s*(?::\s*(.*?))?\s*-->$")
BLOCK_TIMEOUT_S = 600


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # the line of the opening fence, 1-based
    mark: str | None  # "run", "skip" or None (no marker)
    reason: str


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced code block with its language and the readme-test marker on the line before its fence."""
    lines = text.splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        opening = lines[i].strip()
        if not opening.startswith("```"):
            i += 1
            continue
        lang = opening[3:].strip().split(" ")[0].lower()
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        before = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        m = MARK.match(before)
        out.append(
            Block(lang, "\n".join(body) + "\n", start + 1, m.group(1) if m else None, (m.group(2) or "") if m else "")
        )
        i += 1
    return out


def _readme_blocks() -> list[Block]:
    return [b for b in fenced_blocks(README.read_text(encoding="utf-8")) if b.lang in MARKED]


def _params() -> list[object]:
    params: list[object] = []
    for b in _readme_blocks():
        marks = [pytest.mark.slow] if b.mark == "run" else []
        params.append(pytest.param(b, id=f"line{b.line}-{b.lang}", marks=marks))
    return params


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    bins = [str(REPO / ".venv" / "bin"), str(Path(sys.executable).parent)]
    env["PATH"] = os.pathsep.join([*dict.fromkeys(bins), env.get("PATH", "")])
    env["MEDCODER_HOME"] = str(home)
    env.pop("MEDCODER_CONFIG", None)  # the fresh home's defaults, not a config file from elsewhere
    return env


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def test_readme_is_at_most_250_lines() -> None:
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines; move detail into docs/ (at most {MAX_LINES})"


def test_every_command_block_says_whether_it_runs() -> None:
    unmarked = [f"line {b.line} ({b.lang})" for b in _readme_blocks() if b.mark is None]
    assert not unmarked, (
        "README blocks without `<!-- readme-test: run -->` or `<!-- readme-test: skip: REASON -->` on the line "
        f"before the fence: {', '.join(unmarked)}"
    )
    reasonless = [f"line {b.line}" for b in _readme_blocks() if b.mark == "skip" and not b.reason]
    assert not reasonless, f"skipped README blocks must give a reason: {', '.join(reasonless)}"


@pytest.mark.parametrize("block", _params())
def test_readme_block(block: Block, tmp_path: Path) -> None:
    if block.mark != "run":
        pytest.skip(f"README line {block.line}: {block.reason or 'not marked readme-test: run'}")
    if block.lang in SHELLS:
        cmd = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    else:
        cmd = [_python(), "-c", block.code]
    home = tmp_path / "home"
    home.mkdir()
    try:
        done = subprocess.run(
            cmd,
            cwd=REPO,
            env=_env(home),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout
        pytest.fail(f"README block at line {block.line} ran past {BLOCK_TIMEOUT_S} s:\n{block.code}\n{out}")
    tail = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, f"README block at line {block.line} exited {done.returncode}:\n{block.code}\n{tail}"


def test_readme_yaml_blocks_are_valid_workflows(tmp_path: Path) -> None:
    """A workflow shown in the README validates, and one named like a file of workflows/ is that file's content."""
    shown = [b for b in fenced_blocks(README.read_text(encoding="utf-8")) if b.lang in ("yaml", "yml")]
    for i, b in enumerate(shown):
        spec = yaml.safe_load(b.code)
        path = tmp_path / f"readme-{i}.yaml"
        path.write_text(b.code, encoding="utf-8")
        done = subprocess.run(
            [_python(), "-m", "medcoder", "validate", str(path)],
            cwd=REPO,
            env=_env(tmp_path / "home"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"README YAML at line {b.line} does not validate:\n{done.stdout}{done.stderr}"
        same_name = REPO / "workflows" / f"{spec['name']}.yaml"
        if same_name.exists():
            assert spec == yaml.safe_load(same_name.read_text(encoding="utf-8")), (
                f"README YAML at line {b.line} differs from {same_name.relative_to(REPO)}"
            )


# --- links -----------------------------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _without_code(text: str) -> str:
    """The text with fenced blocks and inline code spans blanked (a `[x](y)` inside code is not a link)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else re.sub(r"`[^`]*`", "", line))
    return "\n".join(out)


def _markdown_files() -> list[Path]:
    return [README, *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("md", _markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(md: Path) -> None:
    broken = []
    for target in LINK.findall(_without_code(md.read_text(encoding="utf-8"))):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # web addresses are not checked here (no network in the tests)
        path_part, _, anchor = target.partition("#")
        dest = md if not path_part else (md.parent / path_part.split("?")[0]).resolve()
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor.lower() not in _anchors_of(dest):
            broken.append(f"{target} (no heading with that anchor)")
    assert not broken, f"{md.relative_to(REPO)}: broken links: {', '.join(broken)}"


def _anchors_of(md: Path) -> set[str]:
    """Anchors from the headings as written: code spans are part of a heading's text."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in md.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
            continue
        m = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).replace("`", "").lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_fenced_block_parser_reads_markers() -> None:
    text = (
        "<!-- readme-test: run -->\n```bash\necho hi\n```\n\n"
        "<!-- readme-test: skip: needs the network -->\n```sh\ncurl x\n```\n"
        "```python\nprint(1)\n```\n```yaml\na: 1\n```\n"
    )
    got = [(b.lang, b.mark, b.reason, b.line, b.code) for b in fenced_blocks(text)]
    assert got == [
        ("bash", "run", "", 2, "echo hi\n"),
        ("sh", "skip", "needs the network", 7, "curl x\n"),
        ("python", None, "", 10, "print(1)\n"),
        ("yaml", None, "", 13, "a: 1\n"),
    ]
