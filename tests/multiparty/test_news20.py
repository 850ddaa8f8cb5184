"""The News20 loader on a tiny archive in the canonical layout (the real archive is verified
by its published SHA-256)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile

import numpy as np
import pytest

from neurips18.datasets import ChecksumError, DatasetNotFoundError, ParseError, _news20, load_news20

POSTS = {
    "20news-bydate-train/sci.space/61010": "From: a@b\nSubject: orbit\n\nThe shuttle flew.",
    "20news-bydate-train/sci.space/60999": "From: c@d\nSubject: moon\n\nApollo landed.",
    "20news-bydate-train/alt.atheism/49960": "From: e@f\nSubject: q\n\nA question \xe9.",
    "20news-bydate-test/sci.space/62000": "From: g@h\nSubject: mars\n\nRovers.",
    "20news-bydate-test/alt.atheism/53068": "From: i@j\n\nNo subject here.",
}


def _write(root, monkeypatch, posts=POSTS):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, text in posts.items():
            data = text.encode("latin-1")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    d = root / "news20"
    d.mkdir(parents=True, exist_ok=True)
    (d / "20news-bydate.tar.gz").write_bytes(raw)
    monkeypatch.setattr(_news20, "SPEC", dataclasses.replace(
        _news20.SPEC, digest="file-sha256:" + hashlib.sha256(raw).hexdigest()))


def test_published_digest_is_kept():
    assert _news20.SPEC.digest == ("file-sha256:8f1b2514ca22a5ade8fbb9cfa5727df95fa587f4c87b"
                                   "786e15c759fa66d95610")
    assert _news20.SPEC.name == "20news-bydate.tar.gz"


def test_loads_both_splits(tmp_path, monkeypatch, isolated_cache):
    _write(tmp_path, monkeypatch)
    tr = load_news20("train", tmp_path, download=False)
    assert tr.name == "news20-train" and tr.classes == ("alt.atheism", "sci.space")
    np.testing.assert_array_equal(tr.y, [0, 1, 1])
    # ordered by group, then by file number
    assert tr.metadata["filenames"][1:] == ("20news-bydate-train/sci.space/60999",
                                            "20news-bydate-train/sci.space/61010")
    assert tr.X[0].endswith("A question \xe9.") and tr.X[0].startswith("From: e@f")
    te = load_news20("test", tmp_path, download=False, remove_headers=True)
    assert list(te.X) == ["No subject here.", "Rovers."]
    X, y = te
    assert len(X) == len(y) == 2


def test_errors(tmp_path, monkeypatch, isolated_cache):
    with pytest.raises(DatasetNotFoundError, match="20news-bydate.tar.gz"):
        load_news20("train", tmp_path, download=False)
    with pytest.raises(ValueError, match="split"):
        load_news20("dev", tmp_path)
    _write(tmp_path, monkeypatch, {"other/x/1": "nothing"})
    with pytest.raises(ParseError, match="no documents"):
        load_news20("train", tmp_path, download=False)
    _write(tmp_path, monkeypatch)
    monkeypatch.setattr(_news20, "SPEC", dataclasses.replace(
        _news20.SPEC, digest="file-sha256:" + "0" * 64))
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        load_news20("train", tmp_path, download=False)
