"""The `medcoder` command: a thin layer over the SDK. Every subcommand calls a Python function."""

from __future__ import annotations

import logging
import sys

import click

from medcoder.errors import MedcoderError


class _Group(click.Group):
    """Turns every MedcoderError into one line on stderr and exit code 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MedcoderError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="medcoder")
def main(verbose: int) -> None:
    """medcoder: ICD-10-CM and ATC coding of clinical notes with local models."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _register() -> None:
    # deferred: CLI start-up (`medcoder --help` < 1 s)
    from medcoder.cli import audit, batch, chat, coding, evaluate, kb, learn, models

    main.add_command(kb.kb)
    main.add_command(models.models)
    for command in (coding.code, batch.batch, chat.chat, evaluate.eval_command, evaluate.bench, learn.learn_command,
                    coding.validate, coding.graph,
                    audit.audit_group):
        main.add_command(command)


_register()
