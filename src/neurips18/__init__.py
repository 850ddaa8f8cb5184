"""neurips18: ten NeurIPS 2018 papers as tested, reproducible software.

Subpackages are named by capability (``lowprec``, ``compress``, ``sgmcmc``, ``rules``, ...);
paper identifiers appear only in :mod:`neurips18.repro`. Importing this package is cheap: no
subpackage (and no torch) is imported until it is used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
