"""`medcoder rankers`: list the ranker versions, show one's card, choose the one this home codes with."""

from __future__ import annotations

import click

from medcoder.cli.output import emit_json, emit_pairs, emit_table


@click.group()
def rankers() -> None:
    """Ranker versions: the shipped ones, those learned here, and which one codes (`ranker: builtin`)."""


@rankers.command(name="list")
@click.argument("folders", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def list_(folders: tuple[str, ...], as_json: bool) -> None:
    """Every ranker known here (and FOLDERS): system, digest, date, cross-validated figures; * marks the one in use."""
    from medcoder.ranking.cards import list_rankers  # deferred: CLI start-up (`medcoder --help` < 1 s)

    cards = list_rankers(folders)
    if as_json:
        return emit_json([c.to_dict() for c in cards])
    rows = [
        {
            "": "*" if c.active else "",
            "system": c.system,
            "name": c.name + (" (shipped)" if c.shipped else ""),
            "digest": c.digest,
            "learned": c.learned_at[:10] or "-",
            "cv": " ".join(f"{k} {v}" for k, v in c.cv.items() if v is not None and k != "notes"),
            "auto-accept": _auto(c.auto_accept, short=True),
        }
        for c in cards
    ]
    # too wide for 80 columns (a pipe, a log): the continuation repeats which ranker each row is
    emit_table(rows, ["", "system", "name", "digest", "learned", "cv", "auto-accept"], title="rankers", key=3)


@rankers.command()
@click.argument("folder")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def show(folder: str, as_json: bool) -> None:
    """The card of the ranker in FOLDER: what it learned from (with digests), when, its figures."""
    from medcoder.ranking.cards import ranker_card  # deferred: CLI start-up (`medcoder --help` < 1 s)

    card = ranker_card(folder)
    if as_json:
        return emit_json(card.to_dict())
    data = [
        f"{d.get('dataset')} ({d.get('notes') or d.get('items') or d.get('sessions')}, {d.get('digest', '-')})"
        for d in card.data
    ]
    emit_pairs(
        [
            ("system", card.system),
            ("digest", card.digest),
            ("learned", card.learned_at or "before ranker cards"),
            ("learned from", "\n".join(data) or "-"),
            ("cross-validated", " ".join(f"{k} {v}" for k, v in card.cv.items() if v is not None)),
            ("auto-accept", _auto(card.auto_accept)),
            ("folder", card.folder),
        ],
        title=card.name,
    )


@rankers.command()
@click.argument("folder")
@click.option("--system", default=None, help="With FOLDER `builtin`: the system that goes back to its shipped ranker.")
def use(folder: str, system: str | None) -> None:
    """Code with the ranker in FOLDER from now on (workflows' `ranker: builtin`); `builtin --system S` goes back."""
    from medcoder.ranking.cards import use_ranker, use_shipped  # deferred: CLI start-up (`medcoder --help` < 1 s)

    if folder in ("builtin", "shipped"):
        if not system:
            raise click.UsageError("say which system goes back to its shipped ranker: --system icd10cm")
        use_shipped(system)
        click.echo(f"{system}: the shipped ranker codes from now on")
        return
    card = use_ranker(folder)
    click.echo(f"{card.system}: ranker {card.name} ({card.digest}) codes from now on")


def _auto(auto: dict[str, object], short: bool = False) -> str:
    if auto.get("threshold") is None:
        return "-"
    text = f"p >= {auto['threshold']}"
    if auto.get("cv_precision") is not None and not short:
        text += f", precision {auto['cv_precision']} on {auto.get('cv_share')} of accepted codes (cross-validated)"
    return text
