"""The ``bsopt`` command line.

Every failure a user can cause prints one message (what, where, what to do) and exits non-zero:
2 for usage and input errors, 3 for a missing optional dependency, 1 otherwise. ``--debug`` (anywhere
before a ``--``) prints the traceback first, with the same exit code.  A reader of the output that has gone (``| head``) ends
the command quietly with 141.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import typer
from rich.markup import escape

from bsopt import __version__, settings
from bsopt.cli.blueprint import blueprint_app
from bsopt.cli.common import Console
from bsopt.cli.dashboard import dashboard
from bsopt.cli.estimate import estimate, fold
from bsopt.cli.model import model_app
from bsopt.cli.quickstart import quickstart
from bsopt.cli.study import study_app
from bsopt.errors import BsoptError, InputError

err_console = Console(stderr=True)


def _click_classes(name: str) -> tuple[type, ...]:
    """The click exception classes typer raises: typer >= 0.2x vendors its own click (and no longer
    depends on click), older typer uses click itself (then installed as typer's dependency)."""
    classes = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            classes.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(classes)


_EXIT, _ABORT, _CLICK_ERROR = (_click_classes(n) for n in ("Exit", "Abort", "ClickException"))

app = typer.Typer(
    name="bsopt",
    help="Multi-objective design-space exploration of FINN dataflow accelerators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(model_app, name="model")
app.add_typer(blueprint_app, name="blueprint")
app.add_typer(study_app, name="study")
app.command("quickstart")(quickstart)
app.command("estimate")(estimate)
app.command("fold")(fold)
app.command("dashboard")(dashboard)


def _version(value: bool):
    if value:
        print(f"bsopt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    workdir: str = typer.Option(None, "--workdir", help="The study root: default storage, build cache, exported "
                                "models, artifacts and study folders (default $BSOPT_WORKDIR, else ./studies)."),
):
    """bsopt: find Pareto-optimal FINN accelerator configurations for a quantized model."""
    if workdir is not None:
        if not workdir.strip():
            raise InputError("--workdir must not be empty", where="--workdir")
        settings.set_studies_root(workdir)


def _storage_problem(exc: BaseException):
    """A database error from the study storage (read-only, full disk, damaged, locked) as an InputError
    saying what to do; None for anything else."""
    import sqlite3

    sa = sys.modules.get("sqlalchemy.exc")
    seen = 0
    while exc is not None and seen < 10:  # Optuna wraps some (StorageInternalError from a failed commit)
        if isinstance(exc, sqlite3.Error) or (sa is not None and isinstance(exc, sa.DBAPIError)):
            from bsopt.storage.urls import explain_storage_error

            return explain_storage_error(exc)
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _debug_first(argv: list[str]) -> tuple[list[str], bool]:
    """``--debug`` is the root's option: accepted anywhere before a ``--``, moved to the front."""
    end = argv.index("--") if "--" in argv else len(argv)
    if "--debug" not in argv[:end]:
        return argv, False
    return ["--debug"] + [a for a in argv[:end] if a != "--debug"] + argv[end:], True


def _quiet_stdout() -> None:
    """Send what is left for stdout to /dev/null (its reader has gone), so that exit does not fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    argv, debug = _debug_first(list(sys.argv[1:] if argv is None else argv))
    try:
        rv = app(args=argv, prog_name="bsopt", standalone_mode=False)
        sys.stdout.flush()  # a reader that has gone (`bsopt … | head`) shows here, not at exit
        if isinstance(rv, int) and not isinstance(rv, bool):  # click returns typer.Exit codes here
            return rv
    except BrokenPipeError:
        _quiet_stdout()  # as command-line tools do when `| head` has read enough: stop, no message
        return 141  # 128 + SIGPIPE, what a shell reports for a tool the signal ended
    except SystemExit as exc:  # click turns a broken pipe inside a command into exit(1)
        if isinstance(exc.__context__, BrokenPipeError):
            _quiet_stdout()
            return 141
        raise
    except _EXIT as exc:
        return exc.exit_code
    except _ABORT:
        err_console.print("aborted")
        return 130
    except _CLICK_ERROR as exc:
        if debug:
            traceback.print_exc()  # then the message and the usual exit code
        exc.show()
        return 2 if exc.exit_code in (1, 2) else exc.exit_code
    except BsoptError as exc:
        if debug:
            traceback.print_exc()  # then the message and the usual exit code
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as exc:  # an internal error: say so, and how to get details
        if debug:
            traceback.print_exc()  # then the message and the usual exit code
        known = _storage_problem(exc)
        if known is not None:
            err_console.print(f"[bold red]error:[/] {escape(str(known))}", highlight=False, soft_wrap=True)
            return known.exit_code
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}\n"
            + ("  please report it with the traceback above" if debug else
               "  run again with --debug for the traceback, and please report it"),
            highlight=False,
            soft_wrap=True,
        )
        return 1
    return 0
