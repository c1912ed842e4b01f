"""`medcoder chat`: a terminal REPL over a `Session` (history, tab completion, readable tables).

Every decision is checkpointed before the prompt comes back, so Ctrl-C, Ctrl-D or a closed
terminal loses nothing: `medcoder chat --session ID` continues where the coder stopped.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click
from rich.console import Console
from rich.text import Text

from medcoder.cli.output import Cell, print_table
from medcoder.errors import MedcoderError
from medcoder.notetext import apart, snippet
from medcoder.records import CodeStatus, Span

if TYPE_CHECKING:
    from medcoder.session import Session

HELP = """commands (CODE: E11.65, e1165, A10BA02):
  codes                     the codes and their status (proposed, accepted, rejected)
  suggestions               codes found below the threshold or set aside by a guideline ('add CODE' takes one)
  why CODE                  why medcoder chose it: evidence, path, options, critic
  accept CODE [CODE ...]    accept codes ('accept all' accepts every proposed code)
  reject CODE REASON        reject a code, saying why
  add CODE [REASON]         add a code medcoder missed
  replace OLD NEW [REASON]  swap a code for another
  children CODE | path CODE | notes CODE | lookup CODE     explore the code tree
  search TEXT | index TERM  search codes / the Alphabetic Index
  note                      show the note
  export FILE               accepted codes to FILE (.json, .csv or .fhir)
  feedback FILE             the decisions as JSONL feedback records
  done                      mark the note finished
  help | quit
anything else is a question for the model, answered from the note and the code tools"""

COMMANDS = [
    "codes",
    "suggestions",
    "why",
    "accept",
    "reject",
    "add",
    "replace",
    "children",
    "path",
    "notes",
    "lookup",
    "search",
    "index",
    "note",
    "export",
    "feedback",
    "done",
    "help",
    "quit",
    "exit",
]
_STATUS_STYLE = {"accepted": "green", "rejected": "red strike", "proposed": "yellow"}


class ChatREPL:
    """Reads commands, calls the session, prints tables; no coding logic lives here."""

    def __init__(self, session: "Session", console: Console | None = None) -> None:
        self.session = session
        self.console = console or Console(highlight=False)
        self._cmd = ""
        self.handlers: dict[str, Callable[[list[str], str], None]] = {
            "codes": self._codes,
            "suggestions": self._suggestions,
            "why": self._why,
            "accept": self._accept,
            "reject": self._reject,
            "add": self._add,
            "replace": self._replace,
            "children": self._explore,
            "path": self._explore,
            "notes": self._explore,
            "lookup": self._explore,
            "search": self._explore,
            "index": self._explore,
            "note": self._note,
            "export": self._export,
            "feedback": self._feedback,
            "done": self._done,
            "help": lambda a, r: self.console.print(HELP),
        }

    # -- the loop -------------------------------------------------------------------------------------
    def loop(self, read: Callable[[str], str] = input) -> None:
        self.console.print(
            f"session [bold]{self.session.id}[/]: {len(self.session.codes())} codes, "
            f"{len(self.session.suggestions())} suggestions (type suggestions). "
            "Type help for commands; resume later with "
            f"[bold]medcoder chat --session {self.session.id}[/]"
        )
        self._codes([], "")
        while True:
            try:
                line = read("medcoder> ")
            except KeyboardInterrupt:
                self.console.print("\n(Ctrl-C: nothing is lost; type quit to leave)")
                continue
            except EOFError:
                self.console.print(f"\nsaved; resume with medcoder chat --session {self.session.id}")
                return
            if not self.handle(line):
                self.console.print(f"saved; resume with medcoder chat --session {self.session.id}")
                return

    def handle(self, line: str) -> bool:
        """Run one line; False means quit. Errors become one helpful line, never a traceback."""
        line = line.strip()
        if not line:
            return True
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        cmd, args = words[0].lower(), words[1:]
        rest = line[len(words[0]) :].strip()
        self._cmd = cmd
        if cmd in ("quit", "exit", "q"):
            return False
        try:
            if cmd in self.handlers:
                self.handlers[cmd](args, rest)
            elif len(words) <= 2 and "?" not in line:
                self.console.print(
                    f"unknown command {words[0]!r}; type help for the commands, or ask a question in words"
                )
            else:
                self._ask(line)
        except (MedcoderError, click.UsageError) as exc:
            self.console.print(f"[red]error:[/] {exc}")
        return True

    # -- commands ---------------------------------------------------------------------------------------
    def _codes(self, args: list[str], rest: str) -> None:
        codes = self.session.codes()
        if not codes:
            self.console.print("no codes yet: add one with `add CODE`, or `search TEXT` to find one")
            return
        note = self.session.note
        rows: list[list[Cell]] = []
        evidence = self.session.evidence()
        for c in codes:
            ev = self._evidence(note, evidence.get((c.system, c.code), []))
            if c.origin == "coder":
                ev.append(f"added by coder {c.reason}".strip(), style="italic")
            status = Text(
                c.status.value + (f" ({c.reason})" if c.status == CodeStatus.REJECTED and c.reason else ""),
                style=_STATUS_STYLE.get(c.status.value, ""),
            )
            rows.append([c.code, c.system, status, f"{c.confidence:.2f}", c.label, ev])
        print_table(
            ("code", "system", "status", "conf.", "label", "evidence"),
            rows,
            f"session {self.session.id}",
            console=self.console,
        )

    def _suggestions(self, args: list[str], rest: str) -> None:
        rows = self.session.suggestions()
        if not rows:
            self.console.print("no suggestions: every code the run found is in `codes`")
            return
        note = self.session.note
        print_table(
            ("code", "system", "conf.", "label", "why not coded", "evidence"),
            [
                [
                    r.code,
                    r.system,
                    f"{r.confidence:.2f}",
                    r.label,
                    r.reason or "below the threshold",
                    self._evidence(note, r.evidence),
                ]
                for r in rows[: int(args[0]) if args and args[0].isdigit() else 15]
            ],
            f"suggestions for session {self.session.id} (add CODE takes one)",
            console=self.console,
        )

    @staticmethod
    def _evidence(note: str, spans: list[Span]) -> Text:
        """Up to two evidence spans, highlighted, with whole words around them."""
        ev = Text()
        spans = [spans[i] for i in apart((e.start, e.end) for e in spans)]
        for i, e in enumerate(spans[:2]):
            before, span, after = snippet(note, e.start, e.end, context=25)
            ev.append(("\n" if i else "") + before)
            ev.append(span, style="bold yellow")
            ev.append(after)
        return ev

    def _need(self, args: list[str], n: int, usage: str) -> None:
        if len(args) < n:
            raise click.UsageError(f"usage: {usage}")

    def _why(self, args: list[str], rest: str) -> None:
        self._need(args, 1, "why CODE")
        w = self.session.why(args[0])
        self.console.print(f"[bold]{w['code']}[/] {w['label']} ({w['system']}, {w['status']})")
        if "explanation" in w:
            self.console.print(w["explanation"])
            return
        self.console.print(f"mention: {w['mention']!r}, confidence {w['confidence']:.2f}")
        for e in w["evidence"]:
            self.console.print(f"  evidence: [bold yellow]{e}[/]")
        self.console.print("  path: " + " > ".join(f"{p['code']} {p['label']}" for p in w["path"]))
        for step in w["choices"]:
            opts = ", ".join(
                f"{o.get('code', o.get('key', '?'))} {o.get('p', o.get('probability', 0)):.2f}"
                for o in step["options"]
                if isinstance(o, dict)
            )
            if opts:
                self.console.print(f"  at {step['at']}: {opts}")
        critic = w.get("critic") or {}
        if critic:
            self.console.print(f"  critic: {critic.get('decision', '')}; " + "; ".join(critic.get("reasons", [])))
            for r in critic.get("reminders", [])[:4]:
                self.console.print(f"    reminder: {r}")
        self.console.print(f"  audit events: {', '.join(str(e['seq']) for e in w['audit_events']) or 'none'}")

    def _accept(self, args: list[str], rest: str) -> None:
        self._need(args, 1, "accept CODE [CODE ...] | accept all")
        targets = [c.code for c in self.session.codes(CodeStatus.PROPOSED)] if args == ["all"] else args
        for code in targets:
            self.console.print(f"accepted {self.session.accept(code)['code']}")

    def _reject(self, args: list[str], rest: str) -> None:
        self._need(args, 2, "reject CODE REASON")
        turn = self.session.reject(args[0], " ".join(args[1:]))
        self.console.print(f"rejected {turn['code']}: {turn['reason']}")

    def _add(self, args: list[str], rest: str) -> None:
        self._need(args, 1, "add CODE [REASON]")
        turn = self.session.add(args[0], " ".join(args[1:]))
        self.console.print(f"added {turn['code']} {turn['label']}")

    def _replace(self, args: list[str], rest: str) -> None:
        self._need(args, 2, "replace OLD NEW [REASON]")
        turn = self.session.replace(args[0], args[1], " ".join(args[2:]))
        self.console.print(f"replaced {turn['old']} with {turn['code']} {turn['label']}")

    def _explore(self, args: list[str], rest: str) -> None:
        words = rest.split()
        what = self._cmd
        self._need(words, 1, f"{what} {'TEXT' if what in ('search', 'index') else 'CODE'}")
        arg = rest if what in ("search", "index") else words[0]
        from medcoder.knowledge.systems import DEFAULT_SYSTEM, guess_system  # deferred: CLI start-up

        system = DEFAULT_SYSTEM if what == "index" else guess_system(arg)
        data = self.session.explore(what, arg, system)
        if what in ("children", "search"):
            cols = ["code", "label", "billable"] if what == "children" else ["code", "label", "sources"]
            self._table(data, cols, f"{what} {arg}")
        elif what == "path":
            self._table(data, ["depth", "code", "label"], f"path {arg}")
        elif what == "notes":
            rows = [{"note": k, "text": n["text"], "from": n["from"]} for k, ns in data["notes"].items() for n in ns]
            self._table(rows, ["note", "text", "from"], f"notes {data['code']}")
        elif what == "index":
            rows = [
                {"path": " > ".join(e["path"]), "code": e.get("code", ""), "see": e.get("see", "")}
                for e in data["walk"]
            ]
            self._table(rows, ["path", "code", "see"], f"index: {arg}")
        else:
            self.console.print_json(json.dumps(data, default=str))

    def _note(self, args: list[str], rest: str) -> None:
        self.console.print(self.session.note)

    def _export(self, args: list[str], rest: str) -> None:
        self._need(args, 1, "export FILE (.json, .csv or .fhir)")
        fmt = Path(args[0]).suffix.lstrip(".").lower() or "json"
        self.session.export(args[0], fmt)
        self.console.print(f"wrote {len(self.session.accepted())} accepted codes to {args[0]}")

    def _feedback(self, args: list[str], rest: str) -> None:
        self._need(args, 1, "feedback FILE")
        self.session.feedback_jsonl(args[0])
        self.console.print(f"wrote {len(self.session.decisions())} decisions to {args[0]}")

    def _done(self, args: list[str], rest: str) -> None:
        self.session.finish()
        self.console.print(f"session finished: {len(self.session.accepted())} accepted codes")

    def _ask(self, question: str) -> None:
        answer = self.session.ask(question)
        for call in answer.tool_calls:
            self.console.print(f"[dim]tool {call['name']}({json.dumps(call['args'])})[/]")
        self.console.print(answer.text)

    def _table(self, rows: list[dict[str, Any]], cols: list[str], title: str) -> None:
        print_table(cols, [[str(r.get(c, "")) for c in cols] for r in rows], title, console=self.console)


def _install_readline(repl: ChatREPL, history: Path) -> None:
    """History across sessions and tab completion of commands and codes (where readline exists)."""
    try:
        import readline
    except ImportError:  # pragma: no cover - Windows without pyreadline
        return
    try:
        readline.read_history_file(history)
    except OSError:
        pass
    import atexit

    atexit.register(lambda: _save_history(readline, history))

    def complete(text: str, state: int) -> str | None:
        buf = readline.get_line_buffer().lstrip()
        if " " not in buf:
            options = [c for c in COMMANDS if c.startswith(text.lower())]
        else:
            codes = [c.code for c in repl.session.codes()]
            options = [c for c in codes if c.lower().startswith(text.lower())]
            if not options and len(text) >= 3:
                onto = repl.session.workflow.kb.ontology()  # the default system: what a coder types most
                options = sorted(c for c in onto.graph if isinstance(c, str) and c.lower().startswith(text.lower()))[
                    :50
                ]
        return options[state] if state < len(options) else None

    readline.set_completer(complete)
    readline.set_completer_delims(" ")
    readline.parse_and_bind("tab: complete")


def _save_history(readline: Any, history: Path) -> None:
    try:
        readline.write_history_file(history)
    except OSError:
        pass


@click.command()
@click.argument("note", required=False)
@click.option("--session", "session_id", default=None, help="Resume this session (or name a new one).")
@click.option("--workflow", "-w", default="full", show_default=True, help="icd10cm, atc, full, or a YAML file.")
@click.option("--model", "-m", default=None, help="default, test, fake, or a GGUF path.")
def chat(note: str | None, session_id: str | None, workflow: str, model: str | None) -> None:
    """Review a NOTE's codes with medcoder, interactively (or resume one with --session ID)."""
    from medcoder import paths  # deferred: CLI start-up (`medcoder --help` < 1 s)
    from medcoder.cli.coding import _read_input  # deferred: CLI start-up (`medcoder --help` < 1 s)
    from medcoder.session import Session, SessionError  # deferred: CLI start-up (`medcoder --help` < 1 s)

    if note is None and session_id is None:
        raise click.UsageError("give a NOTE to start, or --session ID to resume")
    console = Console(highlight=False)
    if note is None:
        session = Session.open(session_id, workflow, model)  # type: ignore[arg-type]
    else:
        data = _read_input(note)
        console.print(f"coding {note} with the {workflow} workflow ...")
        found: Session | None = None
        try:
            found = Session.open(session_id, workflow, model) if session_id else None
        except SessionError:
            pass
        session = found or Session.start(data, workflow, model, session_id=session_id)
    with session:
        repl = ChatREPL(session, console)
        _install_readline(repl, paths.home() / "chat_history")
        repl.loop()
