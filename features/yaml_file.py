"""Read a user-edited YAML file (the pipeline config, the segment rules) so that every way it can
be unreadable becomes ONE line naming the file: the CLI prints errors on one line, and PyYAML's
own messages span several (context, a caret under the text), as an OSError traceback would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def one_line(exc: yaml.YAMLError) -> str:
    """Where and what, from PyYAML's multi-line message."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(exc).split())


def read_yaml(path: Path, what: str, error: type[Exception]) -> Any:
    """The parsed document (None for an empty file); ``error`` says why it cannot be read, on one line.

    ``what`` names the file's role in the messages ("config file", "segment rules file").
    """
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a text (UTF-8) file") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {one_line(exc)}") from None
