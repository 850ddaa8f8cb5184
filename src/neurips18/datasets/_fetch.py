"""Finding, downloading and verifying data files.

A file is looked for, in order, in
1. the ``data_dir`` argument of a loader,
2. the directory named by ``NEURIPS18_DATA_DIR``,
3. the cache (``NEURIPS18_CACHE_DIR``, else ``$XDG_CACHE_HOME/neurips18``, else
   ``~/.cache/neurips18``),
each as ``<dir>/<dataset>/<file>`` (a ``.gz`` variant is accepted too). If it is in none of
them it is downloaded from its canonical address into the cache, unless downloads are off
(``download=False``, or ``NEURIPS18_OFFLINE`` set to ``1``, ``true``, ``yes`` or ``on``; a
value that is not a switch is an error). Every file is verified before it is parsed:
MNIST by the MD5 of its uncompressed bytes (the canonical digests), the text tables by a
digest of their rows after normalisation (fields stripped of white space, header and comment
lines and a leading byte-order mark dropped), so the canonical file and a re-serialised copy
of the same rows both pass.
Nothing is ever unpickled.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from neurips18._cache import cache_dir
from neurips18._validation import Options, ValidationError, check, invalid


class DataError(Exception):
    """A data set could not be found, downloaded, verified or parsed."""


class DatasetNotFoundError(DataError, FileNotFoundError):
    """A data file is in none of the places looked at and could not be downloaded."""


class ChecksumError(DataError, ValueError):
    """A data file's content does not match its known digest (corrupt or a different file)."""


class ParseError(DataError, ValueError):
    """A data file's content is not in the expected format."""


@dataclass(frozen=True)
class FileSpec:
    """One data file: where it comes from and how to check it.

    ``digest`` is ``"md5:<hex>"`` of the uncompressed bytes, ``"rows-sha256:<hex>"`` of the
    normalised rows (see :func:`normalised_rows_digest`), or ``"file-sha256:<hex>"`` /
    ``"file-md5:<hex>"`` of the file's bytes exactly as distributed (for archives whose
    published digest is of the compressed file).
    """

    dataset: str
    name: str
    urls: tuple[str, ...]
    digest: str
    skip_line: Callable[[str], bool] | None = None


class _DataSettingError(DataError, ValidationError):
    """An environment setting of the data loaders that is not understood."""


_OFFLINE_ON = frozenset({"1", "true", "yes", "on"})
_OFFLINE_OFF = frozenset({"", "0", "false", "no", "off"})


def _offline() -> bool:
    """``NEURIPS18_OFFLINE`` read as a switch. A value that is neither on nor off (``"y"``,
    ``"offline"``, ``"2"``) used to mean online, so the network was used against the
    user's wish; it is now an error naming the variable and the values allowed."""
    raw = os.environ.get("NEURIPS18_OFFLINE", "")
    value = raw.strip().lower()
    if value in _OFFLINE_ON:
        return True
    if value in _OFFLINE_OFF:
        return False
    err = invalid("NEURIPS18_OFFLINE", raw, "1, true, yes or on to stop downloads; 0, false, "
                  "no, off or unset to allow them")
    # also a DataError, so that the command line reports it as a data set-up problem
    raise _DataSettingError(str(err))


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it is gzip (by magic number, not by name)."""
    with open(path, "rb") as fh:
        head = fh.read(2)
    try:
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as gz:
                return gz.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise ParseError(f"cannot read {path}: {exc}") from None


def normalised_rows(text: str, skip_line: Callable[[str], bool] | None = None) -> list[str]:
    """Data rows with each comma-separated field stripped; blank and skipped lines dropped.

    A leading UTF-8 byte-order mark (what spreadsheet programs write at the start of a
    "CSV UTF-8" export) is not part of the first row: with it, a re-serialised copy of the
    canonical rows failed its checksum, and a header line was not recognised as one."""
    text = text.removeprefix("\ufeff")
    rows = []
    for line in text.splitlines():
        if not line.strip() or (skip_line is not None and skip_line(line)):
            continue
        rows.append(",".join(f.strip() for f in line.split(",")))
    return rows


def normalised_rows_digest(text: str, skip_line: Callable[[str], bool] | None = None) -> str:
    h = hashlib.sha256()
    for row in normalised_rows(text, skip_line):
        h.update(row.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def file_digest(spec: FileSpec, path: Path) -> str | None:
    """The digest of the file's bytes as stored, for the ``file-*`` digest kinds."""
    kind, _, _ = spec.digest.partition(":")
    if not kind.startswith("file-"):
        return None
    h = hashlib.sha256() if kind == "file-sha256" else hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return f"{kind}:{h.hexdigest()}"


def content_digest(spec: FileSpec, content: bytes) -> str:
    kind, _, _ = spec.digest.partition(":")
    if kind == "md5":
        return "md5:" + hashlib.md5(content).hexdigest()
    if kind == "rows-sha256":
        text = content.decode("utf-8", errors="replace")
        return "rows-sha256:" + normalised_rows_digest(text, spec.skip_line)
    raise ValueError(f"unknown digest kind in {spec.digest!r}")


def verify(spec: FileSpec, path: Path, content: bytes) -> None:
    got = file_digest(spec, path) or content_digest(spec, content)
    if got != spec.digest:
        raise ChecksumError(
            f"checksum mismatch for {path}: expected {spec.digest}, got {got}. The file is "
            f"corrupt or not the canonical {spec.dataset}/{spec.name}; delete it and provide "
            f"the original (see neurips18.datasets)."
        )


def _candidates(spec: FileSpec, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    dirs: list[Path] = []
    if data_dir is not None:
        dirs.append(Path(data_dir).expanduser())
    env = os.environ.get("NEURIPS18_DATA_DIR")
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(cache_dir())
    out = []
    for d in dirs:
        for name in (spec.name, spec.name + ".gz"):
            out.append(d / spec.dataset / name)
    return out


def _download(spec: FileSpec, dest: Path, timeout: float = 60.0) -> list[str]:
    """Try each URL; on success the verified file is at ``dest``. Returns the errors seen."""
    if not spec.urls:
        return [f"{spec.dataset}/{spec.name} has no download address"]
    errors = []
    dest.parent.mkdir(parents=True, exist_ok=True)
    for url in spec.urls:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                shutil.copyfileobj(r, out)
            tmp_path = Path(tmp)
            verify(spec, tmp_path, read_bytes(tmp_path))
            os.replace(tmp, dest)
            return []
        except (urllib.error.URLError, OSError, ChecksumError, ParseError) as exc:
            # ParseError: a gzip download cut short; it ended the loop before the next
            # address was tried, naming the deleted temporary file
            errors.append(f"{url}: {exc}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    return errors


def fetch(
    spec: FileSpec,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool | None = None,
) -> bytes:
    """The verified (uncompressed) content of ``spec``'s file, downloading it if needed."""
    # None or a bool: download="no" (truthy) went to the network instead of staying off
    download = check("download", download, Options({True, False}), None)
    looked = _candidates(spec, data_dir)
    for path in looked:
        if path.is_file():
            content = read_bytes(path)
            verify(spec, path, content)
            return content
    allow = (not _offline()) if download is None else download
    errors: Sequence[str] = ["downloads are off (download=False or NEURIPS18_OFFLINE=1)"]
    if allow:
        dest = cache_dir() / spec.dataset / spec.name
        errors = _download(spec, dest)
        if not errors:
            return read_bytes(dest)
    where = "\n  ".join(str(p) for p in looked[::2])
    source = f"; canonical source: {spec.urls[0]}" if spec.urls else ""
    raise DatasetNotFoundError(
        f"data file {spec.dataset}/{spec.name} not found. Looked in:\n  {where}\n"
        f"Download: {'; '.join(errors)}.\n"
        f"To provide it, put the file (or its .gz) at <DIR>/{spec.dataset}/{spec.name} and set "
        f"NEURIPS18_DATA_DIR=<DIR> (or pass data_dir=<DIR>){source}"
    )
