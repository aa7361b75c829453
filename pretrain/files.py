"""Writing results to disk, one way everywhere: a file or a folder appears whole under its name or not at all, an
earlier result is never overwritten, what is written gets the permissions the user's umask gives (as any file they
write), and a failure (a full disk, no permission) is one line naming the path and its cause, leaving nothing behind.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .errors import StrataError

T = TypeVar("T")


def umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def exists_error(path: Path) -> StrataError:
    return StrataError(f"{path} already exists: an earlier result is never overwritten (choose another name or run directory)")


def _failed(path: Path, err: OSError) -> StrataError:
    return StrataError(f"cannot write {path}: {err.strerror or err}")


def _temporary_file(path: Path) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)  # savez, savefig read it
    except OSError as err:
        raise _failed(path, err) from None
    os.close(fd)
    return Path(name)


def new_file(path: str | Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` fills a temporary file beside `path`, which is then linked into place; `path` must not exist."""
    path = Path(path)
    if path.exists():
        raise exists_error(path)
    tmp = _temporary_file(path)
    try:
        write(tmp)
        tmp.chmod(0o666 & ~umask())  # mkstemp makes the file private
        try:
            os.link(tmp, path)  # unlike rename, fails when `path` appeared in the meantime
        except FileExistsError:
            raise exists_error(path) from None
        except OSError as err:
            if err.errno not in (errno.EPERM, errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP):  # other than: no hard links here
                raise
            if path.exists():
                raise exists_error(path) from None
            os.replace(tmp, path)
    except OSError as err:
        raise _failed(path, err) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def replace_file(path: str | Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)`, then `tmp` replaces `path` in one step: for a file that is updated as a run goes (a checkpoint,
    the partial results), which is the old version or the new one, never a half-written one."""
    path = Path(path)
    tmp = _temporary_file(path)
    try:
        write(tmp)
        tmp.chmod(0o666 & ~umask())
        os.replace(tmp, path)
    except OSError as err:
        raise _failed(path, err) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def new_text_file(path: str | Path, text: str) -> Path:
    return new_file(path, lambda tmp: tmp.write_text(text))


def new_folder(path: str | Path, fill: Callable[[Path], T]) -> tuple[Path, T]:
    """`fill(tmp)` writes into a temporary folder beside `path`, which is then renamed into place; `path` must not
    exist. Returns the folder and what `fill` returned."""
    path = Path(path)
    if path.exists():
        raise exists_error(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    except OSError as err:
        raise _failed(path, err) from None
    try:
        result = fill(tmp)
        tmp.chmod(0o777 & ~umask())  # mkdtemp makes the folder private
        for child in tmp.iterdir():
            if child.is_file():
                child.chmod(0o666 & ~umask())
        if path.exists():
            raise exists_error(path)
        os.rename(tmp, path)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _failed(path, err) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path, result


def plain_name(value, field: str) -> str:
    """A name of something inside a run directory: one path component, no folder above or below it."""
    name = str(value)
    if not name or name in (".", "..") or "/" in name or os.sep in name or (os.altsep and os.altsep in name) or "\0" in name:
        raise StrataError(f"{field}={value!r} is not a plain name (it names something inside the run directory: "
                          "no '/', no '..')")
    return name
