"""User-facing errors: one exception type, caught at the command line and printed without a traceback."""
from __future__ import annotations

import functools
import sys


class StrataError(Exception):
    """Bad input from the user (a file, a config field, a value): the message says what and what was expected."""


def exit_on_strata_error(main):
    """Wrap a command's entry point so a StrataError prints `error: ...` and exits with status 2."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except StrataError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapped
