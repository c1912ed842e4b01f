"""The `medcoder` command: a thin layer over the SDK. Every subcommand calls a Python function."""

from __future__ import annotations

import logging
import sys

import click

from medcoder.errors import MedcoderError

logger = logging.getLogger(__name__)

# commands that must run with a broken config file (they report it or do not read it)
_NO_CONFIG_CHECK = {"doctor"}


class _Group(click.Group):
    """Every failure ends as one line on stderr and an exit code, never a traceback.

    1: a MedcoderError (the user can act on it); 2: bad usage (click's own); 3: an unexpected
    error (a bug: the line says so, `-v` shows the traceback); 130: interrupted.
    """

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except MedcoderError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted; run the same command again to resume", err=True)
            sys.exit(130)
        except OSError as exc:
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            click.echo(f"error: {exc.strerror or exc}{where}", err=True)
            sys.exit(1)
        except Exception as exc:  # noqa: BLE001 - a bug; the user gets one line, -v the traceback
            logger.info("unexpected error", exc_info=True)
            first = str(exc).splitlines()[0] if str(exc) else ""
            click.echo(
                f"error: unexpected {type(exc).__name__}: {first[:300]} (a medcoder bug: rerun with -v "
                "for the traceback and report it)",
                err=True,
            )
            sys.exit(3)


@click.group(cls=_Group)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="medcoder")
@click.pass_context
def main(ctx: click.Context, verbose: int) -> None:
    """medcoder: ICD-10-CM and ATC coding of clinical notes with local models."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if ctx.invoked_subcommand not in _NO_CONFIG_CHECK and not ctx.resilient_parsing:
        from medcoder.settings import check_config  # deferred: CLI start-up (`medcoder --help` < 1 s)

        check_config()


def _register() -> None:
    # deferred: CLI start-up (`medcoder --help` < 1 s)
    from medcoder.cli import (
        audit,
        batch,
        chat,
        coding,
        doctor,
        evaluate,
        kb,
        layout,
        learn,
        models,
        rankers,
        serve,
        serve_model,
    )

    main.add_command(kb.kb)
    main.add_command(models.models)
    main.add_command(rankers.rankers)
    for command in (
        coding.code,
        batch.batch,
        chat.chat,
        evaluate.eval_command,
        evaluate.bench,
        learn.learn_command,
        layout.layout_command,
        coding.validate,
        coding.graph,
        doctor.doctor,
        serve.serve,
        serve_model.serve_model,
        audit.audit_group,
    ):
        main.add_command(command)


_register()
