"""`medcoder kb`: read the code systems from the terminal."""

from __future__ import annotations

from typing import Any, Callable

import click

from medcoder.cli.output import DEFAULT_SYSTEM, emit_json, emit_pairs, emit_table, installed_system, progress_bar
from medcoder.tools import functions as fn

system_option = click.option(
    "--system",
    default=DEFAULT_SYSTEM,
    show_default=True,
    callback=installed_system,
    help="Code system: icd10cm, atc, or one a plugin installs.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


@click.group()
def kb() -> None:
    """Look up, walk, validate and search the ICD-10-CM and ATC code systems."""


@kb.command()
@click.argument("code")
@system_option
@json_option
def show(code: str, system: str, as_json: bool) -> None:
    """A code's label, kind, billable flag and path."""
    data = fn.lookup_code(code, system)
    if as_json:
        return emit_json(data)
    emit_pairs([(k, data[k]) for k in ("code", "label", "kind", "billable", "path")], title=system)


@kb.command()
@click.argument("code")
@system_option
@json_option
def children(code: str, system: str, as_json: bool) -> None:
    """The children of a code."""
    data = fn.children(code, system)
    if as_json:
        return emit_json(data)
    emit_table(data, ["code", "label", "kind", "billable"])


@kb.command()
@click.argument("code")
@system_option
@json_option
def path(code: str, system: str, as_json: bool) -> None:
    """The path from the top of the tree down to a code."""
    data = fn.path_to_root(code, system)
    if as_json:
        return emit_json(data)
    emit_table(data, ["depth", "code", "label", "kind"])


@kb.command()
@click.argument("code")
@system_option
@json_option
def notes(code: str, system: str, as_json: bool) -> None:
    """Every instructional note that applies to a code (inherited ones say where from)."""
    data = fn.code_notes(code, system)
    if as_json:
        return emit_json(data)
    rows = [{"note": kind, "text": n["text"], "from": n["from"]} for kind, ns in data["notes"].items() for n in ns]
    emit_table(rows, ["note", "text", "from"], title=f"{data['code']} {data['label']}")


@kb.command()
@click.argument("codes", nargs=-1, required=True)
@system_option
@json_option
def validate(codes: tuple[str, ...], system: str, as_json: bool) -> None:
    """Check codes: exist, billable, need a 7th character or placeholder X. Exit 1 if any is invalid."""
    data = fn.validate_codes(list(codes), system)
    valid = [d["code"] for d in data if d["exists"]]
    conflicts = fn.excludes1_conflicts(valid, system=system) if len(valid) > 1 else []
    if as_json:
        emit_json({"codes": data, "excludes1_conflicts": conflicts} if conflicts else data)
    else:
        emit_table(data, ["input", "code", "valid", "message"])
        for c in conflicts:
            click.echo(f"Excludes1: {c['code']} and {c['excludes']} ({c['note']}, from {c['from']})")
    if not all(d["valid"] for d in data):
        raise SystemExit(1)


@kb.command()
@click.argument("text", nargs=-1, required=True)
@system_option
@click.option("-k", "--top", "k", default=10, show_default=True, help="How many results.")
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "lexical", "dense", "index"]),
    default="hybrid",
    show_default=True,
    help="Fused search, or one ranker alone.",
)
@click.option("--chapter", help="Only this chapter: ICD-10-CM 'CH4', '4' or 'E00-E89'; ATC 'A'.")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    help="Only these levels (ICD: chapter, block, category, "
    "subcategory, code, extension; ATC: level1..level5). Repeatable.",
)
@click.option("--billable", is_flag=True, help="Only billable codes.")
@json_option
def search(
    text: tuple[str, ...],
    system: str,
    k: int,
    mode: str,
    chapter: str | None,
    kinds: tuple[str, ...],
    billable: bool,
    as_json: bool,
) -> None:
    """Search codes by the words a clinician writes (lay terms too)."""
    data = fn.search_codes(
        " ".join(text), system, k=k, billable_only=billable, mode=mode, chapter=chapter, kinds=list(kinds)
    )
    if as_json:
        return emit_json(data)
    emit_table(data, ["code", "label", "score", "sources"])


@kb.command("build-index")
@click.option(
    "--system",
    "systems",
    multiple=True,
    callback=installed_system,
    help="Which code system (default: every installed one).",
)
@click.option("--force", is_flag=True, help="Rebuild even when the cached index is current.")
@json_option
def build_index(systems: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Build the vector search index (ChromaDB) once; later searches reuse it from the cache folder."""
    from medcoder.knowledge import default_kb, system_names  # deferred: CLI start-up (`medcoder --help` < 1 s)
    from medcoder.knowledge.dense import DenseIndex  # deferred: CLI start-up (`medcoder --help` < 1 s)

    infos = []
    for system in systems or system_names():
        index = DenseIndex(default_kb(), system)
        with progress_bar(f"embedding {system}") as advance:
            infos.append(index.build(progress=lambda _stage, done, total: advance(done, total), force=force))
    if as_json:
        return emit_json(infos)
    emit_table(infos, ["system", "docs", "codes", "seconds", "bytes", "path"])


@kb.command()
@click.argument("phrase", nargs=-1, required=True)
@json_option
def read(phrase: tuple[str, ...], as_json: bool) -> None:
    """Read a diagnosis phrase through the Alphabetic Index as a coder does ('non-cardiac chest pain')."""
    data = fn.read_diagnosis(" ".join(phrase))
    if as_json:
        return emit_json(data)
    emit_pairs(
        [
            ("trail", " > ".join(data["trail"]) or "(no main term of the Index in the phrase)"),
            ("code", data["code"] or ""),
            ("billable", ", ".join(f"{b['code']} {b['label']}" for b in data["billable"])),
            ("complete", "yes" if data["complete"] else f"no: {', '.join(data['unread'])} not read"),
        ],
        title=f"index reading: {data['phrase']}",
    )


def _table_command(name: str, func: Callable[..., Any], help_text: str) -> Any:
    @kb.command(name=name, help=help_text)
    @click.argument("term", nargs=-1, required=True)
    @click.option("-k", "--top", "k", default=5, show_default=True, help="How many search results.")
    @json_option
    def command(term: tuple[str, ...], k: int, as_json: bool) -> None:
        data = func(" ".join(term), k=k)
        if as_json:
            return emit_json(data)
        rows = [
            {
                "path": " > ".join(e["path"]),
                "code": e.get("code") or e.get("cells") or "",
                "see": e.get("see", ""),
                "see also": e.get("see_also", ""),
                "modifiers": e.get("nonessential", ""),
            }
            for e in data["walk"]
        ]
        emit_table(rows, ["path", "code", "see", "see also", "modifiers"], title=f"{name}: {data['query']}")
        emit_table(
            [{"path": " > ".join(e["path"]), "code": e.get("code") or e.get("cells") or ""} for e in data["search"]],
            ["path", "code"],
            title="word search",
        )

    return command


_table_command("index", fn.index_lookup, "Look a term up in the ICD-10-CM Alphabetic Index ('diabetes, type 2').")
_table_command("drug", fn.drug_lookup, "Look a substance up in the Table of Drugs and Chemicals.")
_table_command("neoplasm", fn.neoplasm_lookup, "Look a site up in the Neoplasm Table.")
