"""Discovery of the paper reproductions.

Every module of :mod:`neurips18.repro` whose name does not start with an underscore and is
not part of the harness itself is a reproduction and defines ``REPRODUCTION``. Adding a paper
means adding one module; nothing else needs to change.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from neurips18.repro.core import Reproduction, validate_profile

REQUIRED_PROFILES = ("smoke", "quick", "full")

_NOT_PAPERS = frozenset({"core", "harness", "registry", "report"})


class UnknownReproductionError(KeyError):
    """Raised for a paper name that is not registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def module_names() -> list[str]:
    import neurips18.repro as pkg

    return sorted(
        m.name
        for m in pkgutil.iter_modules(pkg.__path__)
        if not m.name.startswith("_") and m.name not in _NOT_PAPERS
    )


@cache
def get(name: str) -> Reproduction:
    """The reproduction registered as ``name`` (e.g. ``"fp8"``)."""
    names = module_names()
    if name not in names:
        raise UnknownReproductionError(
            f"unknown paper {name!r}; known: {', '.join(names) or '(none)'}"
        )
    module = importlib.import_module(f"neurips18.repro.{name}")
    repro = getattr(module, "REPRODUCTION", None)
    if not isinstance(repro, Reproduction):
        raise TypeError(f"neurips18.repro.{name} does not define a REPRODUCTION")
    if repro.name != name:
        raise ValueError(f"neurips18.repro.{name}.REPRODUCTION.name is {repro.name!r}")
    missing = [p for p in REQUIRED_PROFILES if p not in repro.profiles]
    if missing:
        raise ValueError(f"neurips18.repro.{name} lacks the profile(s) {missing}")
    kinds = {type(c) for c in repro.profiles.values()}
    if len(kinds) != 1:
        raise TypeError(f"neurips18.repro.{name}: every profile must be an instance of one "
                        f"config class, got {sorted(k.__name__ for k in kinds)}")
    for pname, cfg in repro.profiles.items():
        validate_profile(pname, cfg)
    return repro


def all_reproductions() -> list[Reproduction]:
    return [get(n) for n in module_names()]
