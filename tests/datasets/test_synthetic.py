"""Loaders on small synthetic files in the canonical formats: they run without the shared
data, and they exercise the checksum, the cache, the download path and the error messages."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib

import numpy as np
import pytest

from neurips18 import datasets
from neurips18.datasets import _fetch

ADULT_ROWS = (
    "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, "
    "Male, 2174, 0, 40, United-States, <=50K\n"
    "52, ?, 209642, HS-grad, 9, Married-civ-spouse, ?, Husband, White, Male, 0, 0, 45, ?, >50K\n"
)
ADULT_TEST = "|1x3 Cross validator\n" + ADULT_ROWS.replace("<=50K", "<=50K.").replace(
    ">50K\n", ">50K.\n") + "\n"


def _patch_spec(monkeypatch, key, text):
    spec = datasets._SPECS[key]
    digest = "rows-sha256:" + _fetch.normalised_rows_digest(text, spec.skip_line)
    monkeypatch.setitem(datasets._SPECS, key, dataclasses.replace(spec, digest=digest))
    return spec


def _write(root, dataset, name, text):
    d = root / "data" / dataset
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(text)
    return d / name


def test_adult_format(isolated_cache, monkeypatch):
    _patch_spec(monkeypatch, "adult-train", ADULT_ROWS)
    _patch_spec(monkeypatch, "adult-test", ADULT_TEST)
    _write(isolated_cache, "adult", "adult.data", ADULT_ROWS)
    _write(isolated_cache, "adult", "adult.test", ADULT_TEST)
    tr = datasets.load_adult("train", data_dir=isolated_cache / "data")
    te = datasets.load_adult("test", data_dir=isolated_cache / "data")
    assert tr.y.tolist() == [0, 1] and te.y.tolist() == [0, 1]
    assert tr.X.loc[1, ["workclass", "occupation", "native-country"]].isna().all()
    assert tr.X.loc[0, "capital-gain"] == 2174.0
    assert te.X.loc[0, "workclass"] == "State-gov"


def test_corrupted_file_is_rejected_with_a_clear_message(isolated_cache, monkeypatch):
    _patch_spec(monkeypatch, "adult-train", ADULT_ROWS)
    _write(isolated_cache, "adult", "adult.data", ADULT_ROWS.replace("77516", "77517"))
    with pytest.raises(datasets.ChecksumError, match=r"checksum mismatch for .*adult\.data"):
        datasets.load_adult("train", data_dir=isolated_cache / "data")


def test_whitespace_reserialisation_still_verifies(isolated_cache, monkeypatch):
    _patch_spec(monkeypatch, "adult-train", ADULT_ROWS)
    _write(isolated_cache, "adult", "adult.data", ADULT_ROWS.replace(", ", ",") + "\n\n")
    assert len(datasets.load_adult("train", data_dir=isolated_cache / "data")) == 2


def test_a_byte_order_mark_and_windows_line_ends_still_verify(isolated_cache, monkeypatch):
    """A spreadsheet's "CSV UTF-8" export starts with a byte-order mark: the copy was refused
    as corrupt (the mark was part of the first field), and a header after it was not seen
    as a header."""
    _patch_spec(monkeypatch, "adult-train", ADULT_ROWS)
    path = _write(isolated_cache, "adult", "adult.data", "")
    path.write_bytes(b"\xef\xbb\xbf" + ADULT_ROWS.replace("\n", "\r\n").encode())
    tr = datasets.load_adult("train", data_dir=isolated_cache / "data")
    assert tr.X.loc[0, "age"] == 39.0 and tr.y.tolist() == [0, 1]
    ttt = "x,x,x,o,o,b,b,b,b,positive\no,o,o,x,x,b,x,b,b,negative\n"
    _patch_spec(monkeypatch, "tic-tac-toe", ttt)
    path = _write(isolated_cache, "tic-tac-toe", "tic-tac-toe.data", "")
    path.write_bytes(b"\xef\xbb\xbfTL,TM,TR,ML,MM,MR,BL,BM,BR,class\r\n" + ttt.encode())
    d = datasets.load_tic_tac_toe(data_dir=isolated_cache / "data")
    assert d.y.tolist() == [1, 0] and d.X.loc[0, "TL"] == "x"


def test_value_outside_domain_is_a_parse_error(isolated_cache, monkeypatch):
    bad = ADULT_ROWS.replace("State-gov", "Space-agency")
    _patch_spec(monkeypatch, "adult-train", bad)
    _write(isolated_cache, "adult", "adult.data", bad)
    with pytest.raises(datasets.ParseError, match="workclass.*Space-agency"):
        datasets.load_adult("train", data_dir=isolated_cache / "data")


def test_wrong_field_count_is_a_parse_error(isolated_cache, monkeypatch):
    bad = ADULT_ROWS + "1, 2, 3\n"
    _patch_spec(monkeypatch, "adult-train", bad)
    _write(isolated_cache, "adult", "adult.data", bad)
    with pytest.raises(datasets.ParseError, match="row 3 has 3 fields, expected 15"):
        datasets.load_adult("train", data_dir=isolated_cache / "data")


def test_tic_tac_toe_and_mushroom_formats_with_and_without_header(isolated_cache, monkeypatch):
    ttt = "x,x,x,o,o,b,b,b,b,positive\no,o,o,x,x,b,x,b,b,negative\n"
    _patch_spec(monkeypatch, "tic-tac-toe", ttt)
    header = "TL,TM,TR,ML,MM,MR,BL,BM,BR,class\n"
    _write(isolated_cache, "tic-tac-toe", "tic-tac-toe.data", header + ttt)
    d = datasets.load_tic_tac_toe(data_dir=isolated_cache / "data")
    assert d.y.tolist() == [1, 0] and d.X.loc[0, "TL"] == "x"
    mush = ("p,x,s,n,t,p,f,c,n,k,e,e,s,s,w,w,p,w,o,p,k,s,u\n"
            "e,x,s,y,t,a,f,c,b,k,e,?,s,s,w,w,p,w,o,p,n,n,g\n")
    _patch_spec(monkeypatch, "mushroom", mush)
    _write(isolated_cache, "mushroom", "agaricus-lepiota.data", mush)  # UCI: no header
    m = datasets.load_mushroom(data_dir=isolated_cache / "data")
    assert m.y.tolist() == [1, 0]
    assert m.X["stalk-root"].isna().tolist() == [False, True]


def _idx(arr: np.ndarray, magic: int) -> bytes:
    header = np.array([magic, *arr.shape], dtype=">u4").tobytes()
    return header + arr.astype(np.uint8).tobytes()


def _mnist_files(root, monkeypatch, n=5):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    table = dict(datasets._MNIST)
    for part, arr, magic in (("images", images, 2051), ("labels", labels, 2049)):
        raw = _idx(arr, magic)
        name, _ = table[("train", part)]
        table[("train", part)] = (name, hashlib.md5(raw).hexdigest())
        (root / "mnist").mkdir(parents=True, exist_ok=True)
        (root / "mnist" / f"{name}.gz").write_bytes(gzip.compress(raw))
    monkeypatch.setattr(datasets, "_MNIST", table)
    return images, labels


def test_mnist_idx_format(isolated_cache, monkeypatch):
    images, labels = _mnist_files(isolated_cache / "data", monkeypatch)
    X, y = datasets.load_mnist("train", data_dir=isolated_cache / "data")
    np.testing.assert_array_equal(X, images)
    np.testing.assert_array_equal(y, labels)
    assert y.dtype == np.int64


def test_mnist_truncated_file(isolated_cache, monkeypatch):
    _mnist_files(isolated_cache / "data", monkeypatch)
    path = isolated_cache / "data" / "mnist" / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())[:-7]
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(datasets.ChecksumError):
        datasets.load_mnist("train", data_dir=isolated_cache / "data")


def test_missing_file_says_which_where_and_how(isolated_cache):
    with pytest.raises(datasets.DatasetNotFoundError) as err:
        datasets.load_tic_tac_toe()
    msg = str(err.value)
    assert "tic-tac-toe/tic-tac-toe.data" in msg
    assert str(isolated_cache / "cache") in msg
    assert "NEURIPS18_DATA_DIR" in msg and "downloads are off" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_download_verifies_and_caches(isolated_cache, monkeypatch):
    ttt = "x,x,x,o,o,b,b,b,b,positive\n"
    spec = _patch_spec(monkeypatch, "tic-tac-toe", ttt)
    src = _write(isolated_cache, "remote", "ttt.data", ttt)
    monkeypatch.setitem(
        datasets._SPECS, "tic-tac-toe",
        dataclasses.replace(datasets._SPECS["tic-tac-toe"], urls=(src.as_uri(),)),
    )
    d = datasets.load_tic_tac_toe(download=True)
    assert len(d) == 1
    cached = isolated_cache / "cache" / "tic-tac-toe" / spec.name
    assert cached.read_text() == ttt
    src.unlink()
    assert len(datasets.load_tic_tac_toe(download=False)) == 1  # served from the cache


def test_download_of_a_wrong_file_is_refused_and_not_cached(isolated_cache, monkeypatch):
    _patch_spec(monkeypatch, "tic-tac-toe", "x,x,x,o,o,b,b,b,b,positive\n")
    src = _write(isolated_cache, "remote", "ttt.data", "o,o,o,x,x,b,b,b,b,negative\n")
    monkeypatch.setitem(
        datasets._SPECS, "tic-tac-toe",
        dataclasses.replace(datasets._SPECS["tic-tac-toe"], urls=(src.as_uri(),)),
    )
    with pytest.raises(datasets.DatasetNotFoundError, match="checksum mismatch"):
        datasets.load_tic_tac_toe(download=True)
    assert not (isolated_cache / "cache" / "tic-tac-toe" / "tic-tac-toe.data").exists()


def test_planted_rule_set_refuses_non_integer_values_per_condition():
    """Each bound went through int(): (1.9, 2.7) drew conditions of 1 or 2 values (2.7
    truncated to 2), True counted as 1 and the strings "1", "2" as numbers, silently."""
    from neurips18._validation import ValidationError
    from neurips18.datasets.synthetic import make_planted_rule_set

    for bad in [(1.9, 2.7), (True, 2), ("1", "2")]:
        with pytest.raises(ValidationError, match=r"Invalid values_per_condition\[0\]"):
            make_planted_rule_set(100, 6, 5, values_per_condition=bad, generator=0)
    with pytest.raises(ValidationError, match="Invalid values_per_condition: .*pair"):
        make_planted_rule_set(100, 6, 5, values_per_condition="12", generator=0)
    a = make_planted_rule_set(100, 6, 5, values_per_condition=(np.int64(1), 2), generator=0)
    b = make_planted_rule_set(100, 6, 5, values_per_condition=[1, 2], generator=0)
    assert a.rules == b.rules and (a.y == b.y).all()


def test_news20_remove_headers_takes_a_bool(monkeypatch):
    """remove_headers="False" removed the headers (any truthy value did)."""
    from neurips18._validation import ValidationError
    from neurips18.datasets import _news20

    monkeypatch.setattr(_news20, "fetch", lambda *a, **k: pytest.fail("fetched"))
    with pytest.raises(ValidationError, match="Invalid remove_headers: 'False'"):
        datasets.load_news20("train", remove_headers="False")


def test_a_cut_short_gzip_download_falls_back_to_the_next_address(isolated_cache, monkeypatch):
    """A .gz download cut short raised ParseError ("cannot read <temporary file>") out of
    the download loop, so the next address was never tried."""
    ttt = "x,x,x,o,o,b,b,b,b,positive\n"
    _patch_spec(monkeypatch, "tic-tac-toe", ttt)
    cut = isolated_cache / "remote" / "ttt.gz"
    cut.parent.mkdir(parents=True, exist_ok=True)
    cut.write_bytes(gzip.compress(ttt.encode() * 50)[:-12])
    good = _write(isolated_cache, "remote", "ttt.data", ttt)
    monkeypatch.setitem(
        datasets._SPECS, "tic-tac-toe",
        dataclasses.replace(datasets._SPECS["tic-tac-toe"], urls=(cut.as_uri(), good.as_uri())),
    )
    assert len(datasets.load_tic_tac_toe(download=True)) == 1
    monkeypatch.setitem(
        datasets._SPECS, "tic-tac-toe",
        dataclasses.replace(datasets._SPECS["tic-tac-toe"], urls=(cut.as_uri(),)),
    )
    (isolated_cache / "cache" / "tic-tac-toe" / "tic-tac-toe.data").unlink()
    with pytest.raises(datasets.DatasetNotFoundError, match="ttt.gz: cannot read"):
        datasets.load_tic_tac_toe(download=True)


@pytest.mark.parametrize(("value", "offline"), [
    ("1", True), ("TRUE", True), (" yes ", True), ("on", True),
    ("", False), ("0", False), ("off", False), ("No", False),
])
def test_offline_switch_values(isolated_cache, monkeypatch, value, offline):
    tried = []
    monkeypatch.setattr(_fetch, "_download", lambda spec, dest: tried.append(dest) or ["x"])
    monkeypatch.setenv("NEURIPS18_OFFLINE", value)
    with pytest.raises(datasets.DatasetNotFoundError):
        datasets.load_tic_tac_toe()
    assert bool(tried) is not offline


@pytest.mark.parametrize("value", ["on", "y", "offline", "2"])
def test_an_offline_switch_not_understood_never_downloads(isolated_cache, monkeypatch, value):
    """NEURIPS18_OFFLINE=on, =y or =offline meant online: the missing file was downloaded
    against the user's wish. "on" now stops downloads, the others are refused."""
    from neurips18._validation import ValidationError

    tried = []
    monkeypatch.setattr(_fetch, "_download", lambda spec, dest: tried.append(dest) or ["x"])
    monkeypatch.setenv("NEURIPS18_OFFLINE", value)
    if value == "on":
        with pytest.raises(datasets.DatasetNotFoundError, match="downloads are off"):
            datasets.load_tic_tac_toe()
    else:
        with pytest.raises(ValidationError, match=rf"Invalid NEURIPS18_OFFLINE: '{value}'") as e:
            datasets.load_tic_tac_toe()
        assert isinstance(e.value, datasets.DataError)  # the CLI's "data error", not a crash
    assert tried == []
