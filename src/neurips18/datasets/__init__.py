"""Loaders for the real data sets the papers use.

Each loader finds its files locally (``data_dir=`` or ``NEURIPS18_DATA_DIR``), in the cache,
or downloads them from the canonical source; verifies their content; and parses the real
format (see :mod:`neurips18.datasets._fetch` for the search order and the checksums).

* :func:`load_mnist` -- LeCun, Bottou, Bengio, Haffner (1998); IDX files, 60,000/10,000.
* :func:`load_adult` -- UCI Adult / census income (Kohavi 1996); 32,561 train / 16,281 test.
* :func:`load_credit_default` -- UCI default of credit card clients (Yeh and Lien 2009).
* :func:`load_mushroom` -- UCI Mushroom (Schlimmer 1981); 8,124 rows.
* :func:`load_tic_tac_toe` -- UCI Tic-Tac-Toe Endgame (Aha 1991); 958 rows.
* :func:`load_covertype` -- UCI Covertype (Blackard and Dean 1999); 581,012 rows.
* :func:`load_movielens100k` -- MovieLens 100k (Harper and Konstan 2015); 100,000 ratings.
* :func:`load_deepcode_official` -- the eight pretrained Deepcode models (Kim et al. 2018)
  as arrays (model weights, not a data set: it returns a mapping of arrays).
* :func:`load_news20` -- 20 Newsgroups, bydate split (Lang 1995); 11,314 / 7,532 posts.

Every loader returns a :class:`Dataset`: features ``X`` and targets ``y`` as named fields,
the feature and target names, the class labels where there are classes, and a ``metadata``
mapping for what is particular to the data set. ``X, y = load_mnist("train")`` unpacks it.
Tabular features are a pandas DataFrame whose categorical columns have a fixed ``category``
dtype (missing values, ``?`` in the files, are NaN).

Synthetic generators shared by users and reproductions live in
:mod:`neurips18.datasets.synthetic`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from neurips18.datasets._fetch import (
    ChecksumError,
    DataError,
    DatasetNotFoundError,
    FileSpec,
    ParseError,
    cache_dir,
    fetch,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "ChecksumError",
    "DEEPCODE_OFFICIAL_MODELS",
    "DataError",
    "Dataset",
    "DatasetNotFoundError",
    "ParseError",
    "cache_dir",
    "load_adult",
    "load_covertype",
    "load_credit_default",
    "load_deepcode_official",
    "load_mnist",
    "load_movielens100k",
    "load_mushroom",
    "load_news20",
    "load_tic_tac_toe",
    "truncate_users",
]

PathLike = str | os.PathLike[str] | None

_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"
_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist", "http://yann.lecun.com/exdb/mnist")


def _startswith(*prefixes: str):  # type: ignore[no-untyped-def]
    return lambda line: line.startswith(prefixes)


# The MD5s are of the uncompressed IDX files (the widely published digests).
_MNIST = {
    ("train", "images"): ("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
    ("train", "labels"): ("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
    ("test", "images"): ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
    ("test", "labels"): ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
}

# Row digests (see _fetch.normalised_rows_digest): header lines, the Adult test file's
# "|1x3 Cross validator" line and blank lines are not rows.
_SPECS = {
    "adult-train": FileSpec(
        "adult", "adult.data", (f"{_UCI}/adult/adult.data",),
        "rows-sha256:f0d0c191f02659cf884c3fa4a5abcb3e08180adab0f2708a07f12699e8bb9b9e",
    ),
    "adult-test": FileSpec(
        "adult", "adult.test", (f"{_UCI}/adult/adult.test",),
        "rows-sha256:bd53375d7235d4c17bc470e8a56119fb975140469e6d0c11e68f2454198586c2",
        skip_line=_startswith("|"),
    ),
    "mushroom": FileSpec(
        "mushroom", "agaricus-lepiota.data", (f"{_UCI}/mushroom/agaricus-lepiota.data",),
        "rows-sha256:e65d082030501a3ebcbcd7c9f7c71aa9d28fdfff463bf4cf4716a3fe13ac360e",
        skip_line=_startswith("edibility,"),
    ),
    "tic-tac-toe": FileSpec(
        "tic-tac-toe", "tic-tac-toe.data", (f"{_UCI}/tic-tac-toe/tic-tac-toe.data",),
        "rows-sha256:a996a756484d0cf8cbad1680d823aadbfcff8ae2d78c450e6999362d580301c5",
        skip_line=_startswith("TL,"),
    ),
    "credit-default": FileSpec(
        "credit-default", "UCI_Credit_Card.csv", (),
        "rows-sha256:e11ad28735b4bb342c3c375b97c5372ea800981c12e2f96b3eb0c5d42062d786",
        skip_line=_startswith("ID,"),
    ),
}


@dataclass(frozen=True)
class Dataset:
    """A data set as every loader returns it.

    Attributes
    ----------
    name : e.g. ``"adult-train"``, ``"mnist-test"``.
    X : the features: a pandas DataFrame for tabular data (categorical columns of dtype
        ``category`` with a fixed set of categories, numeric columns float64, NaN where a
        value is missing), a NumPy array otherwise (MNIST: uint8 ``[n, 28, 28]``).
    y : the targets, a NumPy array of length ``n`` (class indices into ``classes`` for
        classification; the ratings for MovieLens).
    feature_names, target_name : what the columns and the target are.
    classes : ``classes[y[i]]`` is the label as written in the file (``()`` for regression).
    categorical_features : the categorical columns of a tabular ``X``.
    metadata : what is particular to the data set (projection matrices, counts, ...).

    ``X, y = dataset`` unpacks the two arrays.
    """

    name: str
    X: Any
    y: np.ndarray
    feature_names: tuple[str, ...]
    target_name: str
    classes: tuple[str, ...] = ()
    categorical_features: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def __iter__(self) -> Iterator[Any]:
        yield self.X
        yield self.y


def _check_split(split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ValueError(f"split must be one of {allowed}, got {split!r}")


def load_mnist(
    split: str = "train", data_dir: PathLike = None, *, download: bool | None = None
) -> Dataset:
    """MNIST: ``X`` uint8 images ``[n, 28, 28]``, ``y`` int64 digit labels ``[n]``.

    ``split`` is ``"train"`` (60,000) or ``"test"`` (10,000). Files: the four canonical IDX
    files, gzip-compressed or not, under ``<dir>/mnist/``.
    """
    import numpy as np

    _check_split(split, ("train", "test"))
    arrays = {}
    for part, magic, ndim in (("images", 2051, 3), ("labels", 2049, 1)):
        name, md5 = _MNIST[(split, part)]
        spec = FileSpec("mnist", name, tuple(f"{u}/{name}.gz" for u in _MNIST_URLS), f"md5:{md5}")
        raw = fetch(spec, data_dir, download)
        header = np.frombuffer(raw[: 4 * (ndim + 1)], dtype=">u4")
        if len(header) != ndim + 1 or header[0] != magic:
            raise ParseError(f"mnist/{name}: not an IDX file with magic number {magic}")
        shape = tuple(int(s) for s in header[1:])
        body = np.frombuffer(raw, dtype=np.uint8, offset=4 * (ndim + 1))
        if body.size != int(np.prod(shape)):
            raise ParseError(f"mnist/{name}: {body.size} bytes of data for shape {shape}")
        arrays[part] = body.reshape(shape).copy()
    images, labels = arrays["images"], arrays["labels"].astype(np.int64)
    if len(images) != len(labels):
        raise ParseError(f"mnist {split}: {len(images)} images but {len(labels)} labels")
    return Dataset(
        name=f"mnist-{split}", X=images, y=labels,
        feature_names=tuple(f"pixel{i}" for i in range(images[0].size)), target_name="digit",
        classes=tuple(str(d) for d in range(10)),
        metadata={"image_shape": tuple(int(s) for s in images.shape[1:])},
    )


_ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country",
)
# The value sets documented in UCI's adult.names (checked against both files by the tests).
_ADULT_DOMAINS = {
    "workclass": "Federal-gov Local-gov Never-worked Private Self-emp-inc Self-emp-not-inc "
                 "State-gov Without-pay",
    "education": "10th 11th 12th 1st-4th 5th-6th 7th-8th 9th Assoc-acdm Assoc-voc Bachelors "
                 "Doctorate HS-grad Masters Preschool Prof-school Some-college",
    "marital-status": "Divorced Married-AF-spouse Married-civ-spouse Married-spouse-absent "
                      "Never-married Separated Widowed",
    "occupation": "Adm-clerical Armed-Forces Craft-repair Exec-managerial Farming-fishing "
                  "Handlers-cleaners Machine-op-inspct Other-service Priv-house-serv "
                  "Prof-specialty Protective-serv Sales Tech-support Transport-moving",
    "relationship": "Husband Not-in-family Other-relative Own-child Unmarried Wife",
    "race": "Amer-Indian-Eskimo Asian-Pac-Islander Black Other White",
    "sex": "Female Male",
    "native-country": "Cambodia Canada China Columbia Cuba Dominican-Republic Ecuador "
                      "El-Salvador England France Germany Greece Guatemala Haiti "
                      "Holand-Netherlands Honduras Hong Hungary India Iran Ireland Italy "
                      "Jamaica Japan Laos Mexico Nicaragua Outlying-US(Guam-USVI-etc) Peru "
                      "Philippines Poland Portugal Puerto-Rico Scotland South Taiwan Thailand "
                      "Trinadad&Tobago United-States Vietnam Yugoslavia",
}


def _read_table(text: str, spec: FileSpec, columns: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

    from neurips18.datasets._fetch import normalised_rows

    rows = normalised_rows(text, spec.skip_line)
    bad = next((i for i, r in enumerate(rows) if r.count(",") != len(columns) - 1), None)
    if bad is not None:
        raise ParseError(
            f"{spec.dataset}/{spec.name}: row {bad + 1} has {rows[bad].count(',') + 1} fields, "
            f"expected {len(columns)}"
        )
    return pd.read_csv(
        io.StringIO("\n".join(rows)), header=None, names=list(columns), dtype=str,
        na_values=["?"], keep_default_na=False,
    )


def _categorical(df: pd.DataFrame, col: str, domain: list[str], where: str) -> None:
    import pandas as pd

    seen = set(df[col].dropna().unique())
    unknown = sorted(seen - set(domain))
    if unknown:
        raise ParseError(f"{where}: column {col!r} has values outside its domain: {unknown[:5]}")
    df[col] = pd.Categorical(df[col], categories=domain)


def _target(values: pd.Series, classes: tuple[str, str], where: str) -> np.ndarray:
    import numpy as np

    bad = sorted(set(values.unique()) - set(classes))
    if bad:
        raise ParseError(f"{where}: unexpected labels {bad[:5]}; expected {classes}")
    return (values.to_numpy() == classes[1]).astype(np.int64)


def load_adult(
    split: str = "train", data_dir: PathLike = None, *, download: bool | None = None
) -> Dataset:
    """UCI Adult: predict income > 50K. ``split``: ``"train"`` (32,561) or ``"test"`` (16,281).

    Six numeric columns (float64) and eight categorical ones with the documented value sets;
    ``?`` is missing (NaN). The test file's first line and the trailing ``.`` on its labels
    are handled. Target: 1 for ``>50K``.
    """
    _check_split(split, ("train", "test"))
    spec = _SPECS[f"adult-{split}"]
    text = fetch(spec, data_dir, download).decode("utf-8")
    df = _read_table(text, spec, (*_ADULT_COLUMNS, "income"))
    where = f"adult/{spec.name}"
    label = df.pop("income").str.rstrip(".")
    for col in _ADULT_COLUMNS:
        if col in _ADULT_DOMAINS:
            _categorical(df, col, _ADULT_DOMAINS[col].split(), where)
        else:
            df[col] = df[col].astype("float64")
    y = _target(label, ("<=50K", ">50K"), where)
    return Dataset(
        name=f"adult-{split}", X=df, y=y, feature_names=_ADULT_COLUMNS,
        categorical_features=tuple(_ADULT_DOMAINS), target_name="income",
        classes=("<=50K", ">50K"),
    )


_MUSHROOM_COLUMNS = (
    "cap-shape", "cap-surface", "cap-color", "bruises", "odor", "gill-attachment",
    "gill-spacing", "gill-size", "gill-color", "stalk-shape", "stalk-root",
    "stalk-surface-above-ring", "stalk-surface-below-ring", "stalk-color-above-ring",
    "stalk-color-below-ring", "veil-type", "veil-color", "ring-number", "ring-type",
    "spore-print-color", "population", "habitat",
)
# Value codes as documented in UCI's agaricus-lepiota.names.
_MUSHROOM_DOMAINS = (
    "bcfksx", "fgsy", "bcegnprtuwy", "ft", "acflmnpsy", "adfn", "cdw", "bn", "beghknopruwy",
    "et", "bcerzu", "fksy", "fksy", "bcegnopwy", "bcegnopwy", "pu", "nowy", "not",
    "ceflnpsz", "bhknortuwy", "acnsvy", "dglmpuw",
)


def load_mushroom(data_dir: PathLike = None, *, download: bool | None = None) -> Dataset:
    """UCI Mushroom: 8,124 mushrooms, 22 categorical attributes (one-letter codes as in the
    file). ``stalk-root`` has missing values (NaN). Target: 1 for poisonous (``p``)."""
    spec = _SPECS["mushroom"]
    text = fetch(spec, data_dir, download).decode("utf-8")
    df = _read_table(text, spec, ("edibility", *_MUSHROOM_COLUMNS))
    label = df.pop("edibility")
    for col, dom in zip(_MUSHROOM_COLUMNS, _MUSHROOM_DOMAINS, strict=True):
        _categorical(df, col, list(dom), f"mushroom/{spec.name}")
    return Dataset(
        name="mushroom", X=df, y=_target(label, ("e", "p"), "mushroom"),
        feature_names=_MUSHROOM_COLUMNS, categorical_features=_MUSHROOM_COLUMNS,
        target_name="edibility", classes=("e", "p"),
    )


_TTT_COLUMNS = ("TL", "TM", "TR", "ML", "MM", "MR", "BL", "BM", "BR")


def load_tic_tac_toe(
    data_dir: PathLike = None, *, download: bool | None = None
) -> Dataset:
    """UCI Tic-Tac-Toe Endgame: the 958 final boards where x moved first; squares top-left
    (``TL``) to bottom-right (``BR``) hold ``x``, ``o`` or ``b`` (blank). Target: 1 when x
    has three in a row (``positive``)."""
    spec = _SPECS["tic-tac-toe"]
    text = fetch(spec, data_dir, download).decode("utf-8")
    df = _read_table(text, spec, (*_TTT_COLUMNS, "class"))
    label = df.pop("class")
    for col in _TTT_COLUMNS:
        _categorical(df, col, ["b", "o", "x"], f"tic-tac-toe/{spec.name}")
    return Dataset(
        name="tic-tac-toe", X=df, y=_target(label, ("negative", "positive"), "tic-tac-toe"),
        feature_names=_TTT_COLUMNS, categorical_features=_TTT_COLUMNS,
        target_name="class", classes=("negative", "positive"),
    )


# Column names as in the second header row of UCI's spreadsheet.
_CREDIT_COLUMNS = (
    "LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE",
    "PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6",
    *(f"BILL_AMT{i}" for i in range(1, 7)), *(f"PAY_AMT{i}" for i in range(1, 7)),
)
_CREDIT_CATEGORICAL = ("SEX", "EDUCATION", "MARRIAGE")


def load_credit_default(
    data_dir: PathLike = None, *, download: bool | None = None
) -> Dataset:
    """UCI default of credit card clients (Taiwan, 2005): 30,000 clients, 23 attributes
    (X1..X23 in the file, named here as in UCI's documentation). SEX, EDUCATION and MARRIAGE
    are categorical (their integer codes as categories, including the undocumented codes that
    occur); the repayment statuses PAY_* stay numeric (ordinal). Target: 1 for default next
    month.

    The file is the CSV layout ``ID,X1,...,X23,Y``. UCI distributes the data as an Excel
    spreadsheet, which this loader does not download: convert it to that CSV layout (or use
    the widely mirrored ``UCI_Credit_Card.csv``) and put it under ``<dir>/credit-default/``.
    """
    import pandas as pd

    spec = _SPECS["credit-default"]
    text = fetch(spec, data_dir, download=False if download is None else download)
    df = _read_table(text.decode("utf-8"), spec, ("ID", *_CREDIT_COLUMNS, "Y"))
    df = df.drop(columns="ID")
    label = df.pop("Y")
    for col in _CREDIT_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="raise").astype("float64")
    for col in _CREDIT_CATEGORICAL:
        codes = sorted(int(v) for v in df[col].unique())
        df[col] = pd.Categorical(df[col].astype("int64"), categories=codes)
    return Dataset(
        name="credit-default", X=df, y=_target(label, ("0", "1"), "credit-default"),
        feature_names=_CREDIT_COLUMNS, categorical_features=_CREDIT_CATEGORICAL,
        target_name="default next month", classes=("0", "1"),
    )


from neurips18.datasets._covertype import load_covertype  # noqa: E402
from neurips18.datasets._deepcode import (  # noqa: E402
    DEEPCODE_OFFICIAL_MODELS,
    load_deepcode_official,
)
from neurips18.datasets._movielens import load_movielens100k, truncate_users  # noqa: E402
from neurips18.datasets._news20 import load_news20  # noqa: E402
