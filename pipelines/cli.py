"""The ``slotcast`` command line: one typer app with a sub-app per area.

Exit codes: 0 ok, 1 the work failed (for example too many rows quarantined, a model that would not
fit), 2 bad usage or bad input (unknown option, unreadable or garbled input file).

Each area lives in ``pipelines/commands/<area>.py`` and exposes ``register(app)``; heavy imports
(feast, mlflow, bentoml) stay inside the command functions so that ``--help`` is instant.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import typer
from rich.console import Console

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

AREAS = ("data", "features", "train", "evaluate", "serve", "pipeline", "privacy")

app = typer.Typer(
    name="slotcast",
    help="slotcast: recommendations for livestream carousels and community pushes.\n\n"
    "Exit codes: 0 ok, 1 failed, 2 bad usage or input.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """slotcast: recommendations for livestream carousels and community pushes."""


@app.command()
def version() -> None:
    """Print slotcast's version and the versions of the libraries it is built on."""
    from importlib.metadata import version as v

    for name in ("slotcast", "implicit", "lightgbm", "feast", "bentoml", "mlflow"):
        typer.echo(f"{name} {v(name)}")


def _register_areas() -> None:
    for area in AREAS:
        module = importlib.import_module(f"pipelines.commands.{area}")
        module.register(app)


def _quiet_libraries() -> None:
    """Library chatter that says nothing to a slotcast user (set SLOTCAST_LOG_LEVEL=DEBUG to see it)."""
    import warnings

    if os.environ.get("SLOTCAST_LOG_LEVEL", "").upper() == "DEBUG":
        return
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # Feast resets the filters on import (simplefilter "once"), so drop its chatter where warnings
    # are shown rather than where they are filtered.
    quiet = ("On demand feature view is an experimental feature", "loader strategy is deprecated")
    shown = warnings.showwarning

    def _showwarning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
        if not any(q in str(message) for q in quiet):
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = _showwarning
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # distributed sets its own loggers to INFO when imported (train --dask-scheduler local:N
    # printed ~30 lines of scheduler and nanny life); dask reads DASK_* config at import.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    for name in ("mlflow", "alembic", "feast"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _expand_state_dir() -> None:
    """``~`` in SLOTCAST_STATE_DIR, as a .env file, a systemd unit or quotes leave it. The settings
    classes expand it themselves (``features.settings.StateDir``); this is for what reads the variable
    as it is: `serve` and the environment it hands BentoML's processes."""
    state = os.environ.get("SLOTCAST_STATE_DIR")
    if state and state.startswith("~"):
        os.environ["SLOTCAST_STATE_DIR"] = os.path.expanduser(state)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn known errors into a message and an exit code."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    logging.basicConfig(
        level=os.environ.get("SLOTCAST_LOG_LEVEL", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    _quiet_libraries()
    _expand_state_dir()
    _register_areas()
    with _noting_sigint() as sigint:
        try:
            code = app(args=argv, standalone_mode=False)
        except SystemExit as exc:  # typer/click exits (e.g. --help) pass through
            code = exc.code if isinstance(exc.code, int) else EXIT_FAILED
            return code
        except KeyboardInterrupt:
            code = EXIT_INTERRUPTED
        except Exception as exc:  # noqa: BLE001 - the CLI boundary: every error becomes a message and a code
            if not sigint.is_set():
                return _report(exc)
            # Ctrl-C that a library turned into its own error (DuckDB: RuntimeError "Query interrupted")
            code = EXIT_INTERRUPTED
    # Outside standalone mode typer *returns* the code of a `typer.Exit` raised in a command, and
    # turns Ctrl-C into Exit(130): ignored, both ended as exit 0. No command returns another int.
    if code == EXIT_INTERRUPTED:
        err_console.print("[yellow]interrupted[/yellow]")
    return code if isinstance(code, int) else EXIT_OK


@contextlib.contextmanager
def _noting_sigint() -> Iterator[threading.Event]:
    """Notes a SIGINT (then handled as before: KeyboardInterrupt), so that an error a library made
    of it is reported as the interruption it is rather than as a traceback."""
    seen = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield seen  # signal handlers belong to the main thread; an ignored SIGINT stays ignored
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        seen.set()
        previous(signum, frame)  # type: ignore[operator]

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


# An OS error on a path the user chose (an option, SLOTCAST_STATE_DIR): bad input, not a failed run.
_PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError)


def _report(exc: Exception) -> int:
    """Print a known error as one message and return its exit code; re-raise an unknown one.

    typer bundles its own click, so usage errors are recognised by their ``show`` method rather
    than by class; their message names the option (``Invalid value for '--users': ...``).
    """
    import typer as _typer
    from rich.markup import escape

    if isinstance(exc, _typer.Abort):
        return EXIT_FAILED
    if isinstance(exc, _typer.Exit):
        return int(getattr(exc, "exit_code", EXIT_OK))
    code = getattr(exc, "exit_code", None)
    show = getattr(exc, "show", None)
    if callable(show) and callable(getattr(exc, "format_message", None)):
        show()
        return code if isinstance(code, int) else EXIT_BAD_INPUT
    if isinstance(code, int):
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return code
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):  # a bad SLOTCAST_* variable: one line naming it
        from pipelines.messages import one_line

        err_console.print(f"[red]error:[/red] {escape(one_line(exc))}", highlight=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        # An unusable state directory or output path: one line naming it (was a traceback).
        logging.getLogger(__name__).debug("OS error at the CLI boundary", exc_info=exc)
        msg = f"{exc.filename}: {exc.strerror}"
        err_console.print(f"[red]error:[/red] {escape(msg)}", highlight=False, soft_wrap=True)
        return EXIT_BAD_INPUT if isinstance(exc, _PATH_ERRORS) else EXIT_FAILED
    if isinstance(exc, (FileNotFoundError, ValueError)):
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    raise exc


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
