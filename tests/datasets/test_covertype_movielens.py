"""Covertype and MovieLens-100k loaders on small synthetic files in the canonical formats.

The real archives are verified by their published digests; the synthetic files here get
their own digest patched into the loader's file spec, and a file that does not match is
refused before it is parsed.
"""

import dataclasses
import gzip
import hashlib
import io
import zipfile

import numpy as np
import pytest

from neurips18.datasets import (
    ChecksumError,
    Dataset,
    DatasetNotFoundError,
    ParseError,
    _covertype,
    _movielens,
    load_covertype,
    load_movielens100k,
    truncate_users,
)


def _covtype_rows(n=300, seed=0):
    rng = np.random.default_rng(seed)
    feats = np.column_stack([
        rng.integers(1800, 3900, n), rng.integers(0, 360, n), rng.integers(0, 60, n),
        rng.integers(0, 1400, (n, 7)), rng.integers(0, 2, (n, 44)),
    ])
    label = rng.integers(1, 8, n)
    return np.column_stack([feats, label])


def _write_covtype(root, rows, monkeypatch):
    d = root / "covertype"
    d.mkdir(parents=True, exist_ok=True)
    text = "\n".join(",".join(str(v) for v in r) for r in rows) + "\n"
    raw = gzip.compress(text.encode(), mtime=0)
    (d / "covtype.data.gz").write_bytes(raw)
    digest = "file-sha256:" + hashlib.sha256(raw).hexdigest()
    monkeypatch.setattr(_covertype, "SPEC", dataclasses.replace(_covertype.SPEC, digest=digest))


def test_covertype_projection_and_standardisation(tmp_path, monkeypatch):
    rows = _covtype_rows()
    _write_covtype(tmp_path, rows, monkeypatch)
    ds = load_covertype(tmp_path, download=False)
    assert isinstance(ds, Dataset)
    X_raw = rows[:, :54].astype(float)
    comps = ds.metadata["components"]
    assert ds.X.shape == (300, 5) and comps.shape == (54, 5)
    np.testing.assert_allclose(ds.X.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose(ds.X.std(0), 1, atol=1e-10)
    np.testing.assert_array_equal(ds.y, (rows[:, 54] == 2).astype(float))
    np.testing.assert_array_equal(ds.metadata["cover_type"], rows[:, 54])
    # independent reference: the top right singular vectors of the raw X (up to sign)
    _, sv, Vt = np.linalg.svd(X_raw, full_matrices=False)
    for k in range(5):
        assert abs(abs(Vt[k] @ comps[:, k]) - 1) < 1e-8
    np.testing.assert_allclose(ds.metadata["eigenvalues"], sv[:5] ** 2, rtol=1e-8)
    Z = X_raw @ comps
    np.testing.assert_allclose(ds.X, (Z - Z.mean(0)) / Z.std(0), atol=1e-8)
    other = load_covertype(tmp_path, n_components=3, positive_class=1, standardize=False,
                           download=False)
    np.testing.assert_allclose(other.X, X_raw @ other.metadata["components"])
    assert other.y.sum() == (rows[:, 54] == 1).sum()


def test_covertype_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("NEURIPS18_DATA_DIR", raising=False)
    monkeypatch.setenv("NEURIPS18_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError, match="covtype.data"):
        load_covertype(tmp_path, download=False)
    with pytest.raises(ValueError, match="n_components"):
        load_covertype(tmp_path, n_components=0)
    with pytest.raises(ValueError, match="positive_class"):
        load_covertype(tmp_path, positive_class=9)
    bad = _covtype_rows(20)
    bad[3, 54] = 8
    _write_covtype(tmp_path, bad, monkeypatch)
    with pytest.raises(ParseError, match="1..7"):
        load_covertype(tmp_path, download=False)
    _write_covtype(tmp_path, _covtype_rows(20)[:, 1:], monkeypatch)
    with pytest.raises(ParseError, match="55"):
        load_covertype(tmp_path, download=False)


def test_covertype_with_the_wrong_digest_is_refused(tmp_path, monkeypatch):
    _write_covtype(tmp_path, _covtype_rows(20), monkeypatch)
    monkeypatch.setattr(_covertype, "SPEC", dataclasses.replace(
        _covertype.SPEC, digest="file-sha256:" + "0" * 64))
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        load_covertype(tmp_path, download=False)


def _udata(n=500, users=40, items=70, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.integers(1, users + 1, n)
    u[0] = users
    i = rng.integers(1, items + 1, n)
    i[0] = items
    r = rng.integers(1, 6, n)
    t = rng.integers(874724710, 893286638, n)
    return np.column_stack([u, i, r, t])


def _write_zip(root, text, monkeypatch):
    d = root / "movielens"
    d.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", text)
        zf.writestr("ml-100k/u1.base", "1\t1\t1\t1\n")
    (d / "ml-100k.zip").write_bytes(buf.getvalue())
    digest = "file-md5:" + hashlib.md5(buf.getvalue()).hexdigest()
    monkeypatch.setattr(_movielens, "SPEC", dataclasses.replace(_movielens.SPEC, digest=digest))


def test_movielens_zip(tmp_path, monkeypatch):
    a = _udata()
    _write_zip(tmp_path, "\n".join("\t".join(str(v) for v in row) for row in a) + "\n",
               monkeypatch)
    r = load_movielens100k(tmp_path, download=False)
    assert isinstance(r, Dataset)
    assert len(r) == 500 and r.metadata["n_users"] == 40 and r.metadata["n_items"] == 70
    np.testing.assert_array_equal(r.X[:, 0], a[:, 0] - 1)
    np.testing.assert_array_equal(r.X[:, 1], a[:, 1] - 1)
    np.testing.assert_array_equal(r.y, a[:, 2].astype(float))
    t = truncate_users(r, 10)
    assert t.metadata["n_users"] == 10 and np.all(t.X[:, 0] < 10)
    assert len(t) == int((a[:, 0] <= 10).sum()) == len(t.metadata["timestamp"])
    assert len(r) == 500  # the input is not changed
    with pytest.raises(ValueError, match="n_users"):
        truncate_users(r, 0)


def test_movielens_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("NEURIPS18_DATA_DIR", raising=False)
    monkeypatch.setenv("NEURIPS18_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DatasetNotFoundError, match="ml-100k"):
        load_movielens100k(tmp_path, download=False)
    _write_zip(tmp_path, "1\t2\t7\t100\n", monkeypatch)
    with pytest.raises(ParseError, match="1..5"):
        load_movielens100k(tmp_path, download=False)
    _write_zip(tmp_path, "1,2,3,100\n", monkeypatch)
    with pytest.raises(ParseError, match="tab-separated"):
        load_movielens100k(tmp_path, download=False)
    (tmp_path / "movielens" / "ml-100k.zip").write_bytes(b"not a zip")
    with pytest.raises(ChecksumError):
        load_movielens100k(tmp_path, download=False)


def test_switches_take_bools_not_truthy_strings(tmp_path, monkeypatch):
    """standardize="False" standardised the projection, and download="no" (truthy) went to
    the network for a missing file: both read as True, silently."""
    from neurips18._validation import ValidationError
    from neurips18.datasets import _fetch

    rows = _covtype_rows()
    _write_covtype(tmp_path, rows, monkeypatch)
    raw = load_covertype(tmp_path, standardize=False, download=False)
    assert not np.allclose(raw.X.std(0), 1)
    with pytest.raises(ValidationError, match="Invalid standardize: 'False'"):
        load_covertype(tmp_path, standardize="False", download=False)
    tried = []
    monkeypatch.setattr(_fetch, "_download", lambda spec, dest: tried.append(dest) or ["x"])
    monkeypatch.setenv("NEURIPS18_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NEURIPS18_DATA_DIR", raising=False)
    with pytest.raises(ValidationError, match="Invalid download: 'no'"):
        load_movielens100k(tmp_path / "empty", download="no")
    assert tried == []
