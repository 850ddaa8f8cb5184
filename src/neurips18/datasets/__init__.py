"""Dataset loaders (placeholder until the loaders land; see issue 6)."""


class DataError(Exception):
    """A data set could not be found, downloaded, verified or parsed."""
