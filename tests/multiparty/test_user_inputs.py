"""Inputs a consortium's user hands over that the other tests do not: several text
columns, party submissions whose columns differ from the pooled data's, models whose
classes exceed those of the evaluation records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurips18._validation import ValidationError
from neurips18.multiparty import TokenEncoder


def test_token_encoder_refuses_several_text_columns():
    """Two text columns were interleaved into twice as many documents as rows: 3 rows
    gave a (6, max_length) matrix, silently."""
    df = pd.DataFrame({"title": ["a b", "c d", "e"], "body": ["x", "y", "z"]})
    enc = TokenEncoder(max_length=3)
    with pytest.raises(ValidationError, match=r"Invalid X.*one column of documents.*\(3, 2\)"):
        enc.fit(df)
    enc.fit(df[["title"]])
    with pytest.raises(ValidationError, match="Invalid X.*one column of documents"):
        enc.transform(df)
    assert enc.transform(df[["title"]]).shape == (3, 3)
    assert enc.transform(df["title"]).shape == (3, 3)
    assert np.array_equal(enc.transform(df[["title"]]), enc.transform(list(df["title"])))
