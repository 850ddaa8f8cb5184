"""The authors' pretrained Deepcode models (Kim et al., NeurIPS 2018) as plain arrays.

The official code (github.com/hyejikim1/Deepcode) ships eight Keras 2.0.8 models (.h5)
and the encoder's normalisation statistics (pickles). This loader reads their conversion to
``.npz`` (one array per Keras weight, keyed by its layer path, plus ``encoder_norm/mean``
and ``encoder_norm/var``), which must be provided locally as
``<dir>/deepcode-official/<name>.npz`` (``NEURIPS18_DATA_DIR`` or ``data_dir=``): there is
no canonical address for the converted files, so nothing is downloaded. Each file is
verified by the SHA-256 of its bytes, as published with the project's data files
(``shared/data/README.md``), before it is parsed; nothing is unpickled.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

from neurips18.datasets._fetch import FileSpec, ParseError, fetch

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DEEPCODE_OFFICIAL_MODELS", "deepcode_official_spec", "load_deepcode_official"]

_SHA256 = {
    "feedback_snr_-3.0db_forward_snr_0db":
        "4892f94cf318c2f600a30defccc5286064948135ba4f986326021e313da1edf1",
    "feedback_snr_10.0db_forward_snr_0db":
        "3395e82d2a21cc5ac530a87d288fd9d19bb0653d3ba3d4350cc4a94b839ee8c7",
    "feedback_snr_20.0db_forward_snr_0db":
        "7ba3e86624a9fe43fb8b35b4ed6146616dcc28ddea696447fcd5e3effc6fe064",
    "feedback_snr_3.0db_forward_snr_0db":
        "d72245ca30f2f2289bf7dade9b5833cdd9655ae234a3e48ae9b19d0149fe6b24",
    "noiseless_feedback_forward_snr_-1db":
        "c1e54804ca80c3520c607dd91b26085235bad287d4f5fc80ad1dd95fd443daeb",
    "noiseless_feedback_forward_snr_0db":
        "d8b7419b2a479b8f0a40b3753cee91662d37ef6ee417b5bd94dca8281b520c38",
    "noiseless_feedback_forward_snr_1db":
        "3a913b57f732101961aecfe5502e6bf5f7c6bed54d6f6990d39791f434f2ee6b",
    "noiseless_feedback_forward_snr_2db":
        "4b64be1b7bfdd0035d23063e7feff319127c5a7943dbe836d61c64cb65641782",
}
DEEPCODE_OFFICIAL_MODELS: tuple[str, ...] = tuple(sorted(_SHA256))


def deepcode_official_spec(name: str) -> FileSpec:
    """The :class:`FileSpec` of official model ``name`` (one of
    :data:`DEEPCODE_OFFICIAL_MODELS`)."""
    if name not in _SHA256:
        raise ValueError(f"unknown Deepcode model {name!r}; known: "
                         f"{', '.join(DEEPCODE_OFFICIAL_MODELS)}")
    return FileSpec("deepcode-official", f"{name}.npz", (), f"file-sha256:{_SHA256[name]}")


def load_deepcode_official(
    name: str, data_dir: str | os.PathLike[str] | None = None, *, download: bool | None = None
) -> dict[str, np.ndarray]:
    """The arrays of official Deepcode model ``name``, verified, keyed by Keras layer path
    (pass them to ``neurips18.coding.Deepcode.from_official``).

    ``name`` is e.g. ``"noiseless_feedback_forward_snr_0db"`` or
    ``"feedback_snr_10.0db_forward_snr_0db"`` (:data:`DEEPCODE_OFFICIAL_MODELS`).
    """
    import numpy as np

    spec = deepcode_official_spec(name)
    raw = fetch(spec, data_dir, download)
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError) as exc:
        raise ParseError(f"deepcode-official/{spec.name}: not a readable .npz ({exc})") from None
