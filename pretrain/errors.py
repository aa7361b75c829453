"""User-facing errors: one exception type, caught at the command line and printed without a traceback."""
from __future__ import annotations

import errno
import functools
import signal
import sys

from pytorch_lightning.utilities.exceptions import SIGTERMException


DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


class StrataError(Exception):
    """Bad input from the user (a file, a config field, a value): the message says what and what was expected."""


def exit_on_strata_error(main):
    """Wrap a command's entry point so a StrataError prints `error: ...` and exits with status 2.

    Lightning ends a fit that receives SIGTERM with a SystemExit of status 0; that becomes a message and
    status 143 (128 + SIGTERM), so that a stopped run never looks like a finished one. A file that cannot be written
    (a full disk, a quota, a read-only file system) anywhere in a run, strata's writes or a library's, is one line
    naming the file and the cause; strata's own writes leave no half-written file behind (pretrain.files).
    """

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except StrataError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except OSError as err:
            if err.errno not in DISK_ERRORS:
                raise
            print(f"error: cannot write {err.filename or 'a file of the run'}: {err.strerror}", file=sys.stderr)
            sys.exit(2)
        except SIGTERMException:
            print("error: stopped by SIGTERM before the run finished", file=sys.stderr)
            sys.exit(128 + signal.SIGTERM)

    return wrapped
