"""20 Newsgroups, "bydate" version (Lang 1995; Rennie's 18,846-document split by date):
the News20 text data of Hayes and Ohrimenko (NeurIPS 2018).

The file is ``20news-bydate.tar.gz``: folders ``20news-bydate-train/<group>/<id>`` and
``20news-bydate-test/<group>/<id>``, one plain-text post per file. It is verified by the
SHA-256 of the archive that scikit-learn's ``fetch_20newsgroups`` publishes for the same
file (``sklearn/datasets/_twenty_newsgroups.py``, whose download address is the first one
below; the second is the original address that file names). The archive is read in memory:
nothing is extracted to disk and nothing is unpickled.
"""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np

from neurips18._validation import Options, check
from neurips18.datasets._fetch import FileSpec, ParseError, fetch

SPEC = FileSpec(
    "news20", "20news-bydate.tar.gz",
    ("https://ndownloader.figshare.com/files/5975967",
     "https://people.csail.mit.edu/jrennie/20Newsgroups/20news-bydate.tar.gz"),
    "file-sha256:8f1b2514ca22a5ade8fbb9cfa5727df95fa587f4c87b786e15c759fa66d95610",
)
PathLike = str | os.PathLike[str] | None
_FOLDERS = {"train": "20news-bydate-train", "test": "20news-bydate-test"}


def _strip_headers(text: str) -> str:
    _, blank, body = text.partition("\n\n")
    return body if blank else text


def _parse(raw: bytes, split: str, where: str, remove_headers: bool):  # type: ignore[no-untyped-def]
    from neurips18.datasets import Dataset

    folder = _FOLDERS[split]
    docs: dict[tuple[str, str], str] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tf:
            for m in tf.getmembers():
                parts = m.name.strip("/").split("/")
                if not m.isfile() or len(parts) != 3 or parts[0] != folder:
                    continue
                fh = tf.extractfile(m)
                if fh is None:
                    continue
                text = fh.read().decode("latin-1")
                docs[(parts[1], parts[2])] = _strip_headers(text) if remove_headers else text
    except tarfile.TarError as exc:
        raise ParseError(f"{where}: not a tar archive ({exc})") from None
    if not docs:
        raise ParseError(f"{where}: no documents under {folder}/<group>/<id>")
    groups = tuple(sorted({g for g, _ in docs}))
    order = sorted(docs, key=lambda k: (k[0], int(k[1]) if k[1].isdigit() else -1, k[1]))
    index = {g: i for i, g in enumerate(groups)}
    X = np.array([docs[k] for k in order], dtype=object)
    y = np.array([index[g] for g, _ in order], dtype=np.int64)
    return Dataset(
        name=f"news20-{split}", X=X, y=y, feature_names=("text",), target_name="newsgroup",
        classes=groups,
        metadata={"filenames": tuple(f"{folder}/{g}/{f}" for g, f in order),
                  "headers_removed": bool(remove_headers)},
    )


def load_news20(split: str = "train", data_dir: PathLike = None, *,
                remove_headers: bool = False, download: bool | None = None):  # type: ignore[no-untyped-def]
    """20 Newsgroups (bydate): ``X`` the posts (an object array of str, decoded as
    Latin-1), ``y`` the newsgroup index into ``classes`` (the 20 group names, sorted).
    ``split``: ``"train"`` (11,314 posts in the canonical archive) or ``"test"`` (7,532).
    Documents are ordered by group, then by file number. ``remove_headers`` drops each
    post's header block (everything before the first blank line), which otherwise names
    the newsgroup. ``metadata["filenames"]`` gives each post's path in the archive."""
    from neurips18.datasets import _check_split

    _check_split(split, ("train", "test"))
    # a bool, not any truthy value: remove_headers="False" removed them
    remove_headers = check("remove_headers", remove_headers, Options({True, False}))
    raw = fetch(SPEC, data_dir, download)
    return _parse(raw, split, f"news20/{SPEC.name}", remove_headers)
