"""Privacy budgets: the ledger of one release and the accountant across releases.

Two levels, both explicit objects (there is no global default):

* :class:`Ledger` -- the plan and the record of one private computation (one ``fit``). It is
  created with the computation's (epsilon, delta) and charges every mechanism before its
  noise is drawn; a charge that would exceed the plan raises :class:`BudgetExceededError`
  and nothing is released. Two accounting modes:

  - ``"zcdp"`` (delta > 0): Gaussian mechanisms are charged in zero-concentrated DP (rho)
    and thresholded histograms also charge an approximate part delta_i (each is
    delta_i-approximately zCDP: a mixture, with weight 1 - delta_i, of a zCDP release; Bun
    and Steinke, TCC 2016, Section 8, where such parts compose by adding rho and delta).
    The total is converted once: rho-zCDP is Renyi DP of every order alpha at level alpha
    rho, which implies (epsilon, delta_conv)-DP by Canonne, Kamath and Steinke's conversion
    (NeurIPS 2020, Proposition 12; :func:`zcdp_epsilon`), and the approximate parts add
    (delta = delta_conv + sum delta_i). The plan's rho is the largest one whose conversion
    gives the requested epsilon.
  - ``"pure"`` (delta = 0): Laplace mechanisms only, charged in epsilon; basic composition
    (the epsilons add).

* :class:`PrivacyAccountant` -- a budget spent by a sequence of computations (several fits,
  a fit and a later query ...), with basic composition of their (epsilon, delta). A
  computation asks the accountant for its whole (epsilon, delta) before touching the data;
  an overspend raises and nothing is computed.
"""

from __future__ import annotations

import functools
import math
import sys
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from neurips18._validation import Interval, check, invalid

__all__ = [
    "BudgetExceededError",
    "Ledger",
    "PrivacyLeakWarning",
    "LedgerEntry",
    "PrivacyAccountant",
    "rho_for_epsilon",
    "zcdp_epsilon",
]

_TOL = 1e-12  # relative slack for float sums of shares that add up to the plan


class BudgetExceededError(RuntimeError):
    """A computation would spend more privacy budget than is left; nothing was released."""


class PrivacyLeakWarning(UserWarning):
    """The privacy of a release may be weaker than its accounting says (for instance two
    releases charged to one accountant drew the same noise)."""


def _rdp_to_dp(rho: float, log_inv_delta: float, alpha: float) -> float:
    """epsilon of (epsilon, delta)-DP implied by Renyi DP of order ``alpha`` > 1 at level
    ``alpha * rho`` (Canonne, Kamath, Steinke 2020, Proposition 12; also Asoodeh et al.
    2020): ``alpha rho + ln(1 - 1/alpha) - (ln alpha - ln(1/delta)) / (alpha - 1)``."""
    return (alpha * rho + math.log1p(-1.0 / alpha)
            + (log_inv_delta - math.log(alpha)) / (alpha - 1.0))


def _log_inv(delta: float) -> float:
    """ln(1 / delta); for a subnormal delta, whose 1 / delta overflows (ln(inf) made the
    conversion NaN), -ln(delta)."""
    inv = 1.0 / delta
    return math.log(inv) if inv < math.inf else -math.log(delta)


_ALPHA_MIN = 1.01  # the conversion is numerically delicate as alpha -> 1 (and useless there)


def zcdp_epsilon(rho: float, delta: float) -> float:
    """epsilon of (epsilon, delta)-DP implied by rho-zCDP.

    rho-zCDP is Renyi DP of every order alpha > 1 at level alpha rho, and each order gives
    a valid epsilon (Canonne-Kamath-Steinke 2020, Prop. 12); the one returned is the
    smallest found by a golden-section search over ln(alpha - 1), and never more than Bun
    and Steinke's closed form rho + 2 sqrt(rho ln(1/delta)) (TCC 2016, Prop. 1.3), which
    is the same family without the last two terms. Any order searched gives a sound bound,
    so the search need not find the exact optimum."""
    if not 0 <= rho < math.inf or not 0 < delta < 1:  # (a NaN rho came back as NaN)
        raise ValueError(f"need a finite rho >= 0 and 0 < delta < 1, got rho={rho}, "
                         f"delta={delta}")
    L = _log_inv(delta)
    rl = rho * L
    # (rho * L overflows past about 1e305: the closed form was then inf, and the search's
    # bracket edge, 1 % above rho, came out as the epsilon)
    closed = rho + 2.0 * (math.sqrt(rl) if rl < math.inf else math.sqrt(rho) * math.sqrt(L))
    if rho == 0:
        return 0.0
    # Bun-Steinke's optimum alpha - 1 = sqrt(L / rho) brackets the search
    u0 = 0.5 * math.log(L / rho)
    # (for a huge rho the optimum lies below _ALPHA_MIN: the bracket closes on it, and no
    # order reaches 1, where the conversion is undefined)
    lo = max(math.log(_ALPHA_MIN - 1.0), u0 - 6.0)
    hi = max(u0 + 6.0, lo)
    g = (math.sqrt(5.0) - 1.0) / 2.0

    def f(u: float) -> float:
        return _rdp_to_dp(rho, L, 1.0 + math.exp(u))

    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = f(a), f(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = f(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = f(b)
    return min(closed, fa, fb, f(lo), f(hi))


@functools.lru_cache(maxsize=256)
def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """The largest rho (to float precision) with ``zcdp_epsilon(rho, delta) <= epsilon``,
    by bisection from Bun-Steinke's closed-form inverse (sqrt(rho) = sqrt(L + epsilon) -
    sqrt(L), L = ln(1/delta)), which always satisfies it."""
    if not 0 < epsilon < math.inf or not 0 < delta < 1:
        raise ValueError(f"need a finite epsilon > 0 and 0 < delta < 1, got {epsilon}, "
                         f"{delta}")
    L = _log_inv(delta)
    lo = (math.sqrt(L + epsilon) - math.sqrt(L)) ** 2
    while lo > 0 and zcdp_epsilon(lo, delta) > epsilon:  # guard against rounding
        lo = math.nextafter(lo, 0.0)
    top = sys.float_info.max
    hi = min(2.0 * lo + epsilon, top)
    while hi < top and zcdp_epsilon(hi, delta) <= epsilon:
        lo, hi = hi, min(2.0 * hi, top)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid == math.inf:  # lo + hi overflows near the largest float
            mid = lo + 0.5 * (hi - lo)
        if mid in (lo, hi):
            break
        if zcdp_epsilon(mid, delta) <= epsilon:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class LedgerEntry:
    """One mechanism's release, everything a reviewer needs to recompute its charge.

    ``sensitivity`` and ``noise`` are in data units after the release's grid rounding
    (``sensitivity`` includes the rounding term); for ``gaussian`` entries ``noise`` is
    sigma and ``rho = sensitivity**2 / (2 sigma**2)``; for ``laplace`` entries ``noise`` is
    the scale b and ``epsilon = sensitivity / b``. ``charged_*`` is what the plan reserved
    for the step (at least the effective value). ``delta`` is the approximate part of a
    thresholded histogram (the probability bound of releasing a cell that exists in only
    one of two neighbouring data sets); such a histogram also records its ``threshold`` and
    ``floor`` (cells with fewer points take no part), with
    ``delta >= 2 exp(-(threshold - floor)^2 / (2 noise^2))``. ``size`` is the number of
    values released (for a thresholded histogram, of cells that passed the threshold)."""

    step: str
    mechanism: Literal["gaussian", "laplace"]
    norm: Literal["l1", "l2"]
    sensitivity: float
    noise: float
    size: int
    rho: float = 0.0
    epsilon: float = 0.0
    delta: float = 0.0
    charged_rho: float = 0.0
    charged_epsilon: float = 0.0
    threshold: float | None = None
    floor: int | None = None
    granularity: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Ledger:
    """The privacy plan and record of one computation with (``epsilon``, ``delta``)-DP.

    ``delta_threshold`` is the part of delta kept for thresholded histograms (zcdp mode);
    the rest converts zCDP to approximate DP. :meth:`charge_rho` / :meth:`charge_epsilon` /
    :meth:`charge_delta` reserve a share before the mechanism runs and raise
    :class:`BudgetExceededError` past the plan.
    """

    epsilon: float
    delta: float = 0.0
    delta_threshold: float = 0.0
    entries: list[LedgerEntry] = field(default_factory=list)
    _rho_used: float = 0.0
    _eps_used: float = 0.0
    _delta_used: float = 0.0

    def __post_init__(self) -> None:
        self.epsilon = check("epsilon", self.epsilon, Interval(float, 0, None, closed="neither"))
        self.delta = check("delta", self.delta, Interval(float, 0, 1, closed="left"))
        self.delta_threshold = check("delta_threshold", self.delta_threshold,
                                     Interval(float, 0, 1, closed="left"))
        if self.delta == 0 and self.delta_threshold > 0:
            raise invalid("delta_threshold", self.delta_threshold, "0 when delta is 0")
        if self.delta > 0 and not self.delta_threshold < self.delta:
            raise invalid("delta_threshold", self.delta_threshold,
                          f"a value in [0, delta={self.delta:g})")

    @property
    def mode(self) -> str:
        return "zcdp" if self.delta > 0 else "pure"

    @property
    def delta_conversion(self) -> float:
        return self.delta - self.delta_threshold

    @property
    def rho(self) -> float:
        """The plan's total rho (zcdp mode), 0 in pure mode."""
        if self.mode == "pure":
            return 0.0
        return rho_for_epsilon(float(self.epsilon), float(self.delta_conversion))

    # -- charging -------------------------------------------------------------------
    def charge_rho(self, rho: float, what: str, *, delta: float = 0.0) -> None:
        """Reserve ``rho`` and, for a thresholded histogram, its approximate part ``delta``
        (as :meth:`charge_delta`). Both are checked before either is reserved: a refused
        ``delta`` left its ``rho`` spent, so the plan shrank by a release that never
        happened and a later release within the plan was refused."""
        if self.mode != "zcdp":
            raise BudgetExceededError(f"{what}: a Gaussian (zCDP) mechanism needs delta > 0")
        if not 0 < rho < math.inf:  # a NaN passed every later comparison: no limit left
            raise ValueError(f"{what}: rho must be a finite number > 0, got {rho}")
        if self._rho_used + rho > self.rho * (1 + _TOL):
            raise BudgetExceededError(
                f"{what}: rho {rho:.6g} exceeds what is left ({self.rho - self._rho_used:.6g} "
                f"of {self.rho:.6g}); nothing was released")
        if delta:
            self._check_delta(delta, what)
            self._delta_used += delta
        self._rho_used += rho

    def charge_epsilon(self, eps: float, what: str) -> None:
        if self.mode != "pure":
            raise BudgetExceededError(f"{what}: pure-epsilon charges belong to delta = 0 plans")
        if not 0 < eps < math.inf:
            raise ValueError(f"{what}: epsilon must be a finite number > 0, got {eps}")
        if self._eps_used + eps > self.epsilon * (1 + _TOL):
            raise BudgetExceededError(
                f"{what}: epsilon {eps:.6g} exceeds what is left "
                f"({self.epsilon - self._eps_used:.6g} of {self.epsilon:.6g}); nothing was "
                "released")
        self._eps_used += eps

    def _check_delta(self, delta: float, what: str) -> None:
        if not 0 <= delta < math.inf:
            raise ValueError(f"{what}: delta must be a finite number >= 0, got {delta}")
        if self._delta_used + delta > self.delta_threshold * (1 + _TOL):
            raise BudgetExceededError(
                f"{what}: delta {delta:.3g} exceeds the thresholding share left "
                f"({self.delta_threshold - self._delta_used:.3g}); nothing was released")

    def charge_delta(self, delta: float, what: str) -> None:
        self._check_delta(delta, what)
        self._delta_used += delta

    def record(self, entry: LedgerEntry) -> None:
        self.entries.append(entry)

    def charge_unused(self, rho: float, step: str) -> None:
        """Charge a planned Gaussian step that released nothing (no heavy cell, no
        candidate): the share stays spent, so the plan does not depend on the data."""
        self.charge_rho(rho, step)
        self.record(LedgerEntry(step=step, mechanism="gaussian", norm="l2", sensitivity=0.0,
                                noise=math.inf, size=0, rho=0.0, charged_rho=rho))

    # -- audit ----------------------------------------------------------------------
    def totals(self) -> dict[str, float]:
        """Sums over the entries and the (epsilon, delta) they imply.

        ``epsilon``/``delta`` are computed from the *charged* shares (what the plan
        reserved); ``epsilon_effective`` from the effective values of the realised noise
        (never larger)."""
        charged_rho = math.fsum(e.charged_rho for e in self.entries)
        eff_rho = math.fsum(e.rho for e in self.entries)
        charged_eps = math.fsum(e.charged_epsilon for e in self.entries)
        eff_eps = math.fsum(e.epsilon for e in self.entries)
        dthr = math.fsum(e.delta for e in self.entries)
        if self.mode == "zcdp":
            eps = zcdp_epsilon(charged_rho, self.delta_conversion)
            eps_eff = zcdp_epsilon(eff_rho, self.delta_conversion)
            delta = self.delta_conversion + dthr
        else:
            eps, eps_eff, delta = charged_eps, eff_eps, 0.0
        return {"rho": charged_rho, "rho_effective": eff_rho, "epsilon_charged": charged_eps,
                "delta_threshold": dthr, "epsilon": eps, "epsilon_effective": eps_eff,
                "delta": delta}

    def to_dict(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "delta": self.delta, "mode": self.mode,
                "delta_threshold": self.delta_threshold, "rho_plan": self.rho,
                "totals": self.totals(), "entries": [e.to_dict() for e in self.entries]}


def _outside_stacklevel() -> int:
    """The ``stacklevel`` of a warning issued by the caller of this function that names
    the first frame outside ``neurips18.privacy``: the user's call of ``spend`` or of
    ``PrivateKMeans.fit`` (or scikit-learn's, in a search). A fixed level named a line of
    ``PrivateKMeans.fit`` itself (since fit wraps _fit) or, for a direct ``spend``, a
    frame above the user's."""
    frame = sys._getframe(1)  # the warning's issuer (stacklevel 1)
    level = 1
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(
            "neurips18.privacy"):
        frame = frame.f_back
        level += 1
    return level


class PrivacyAccountant:
    """A privacy budget (``epsilon``, ``delta``) spent by successive computations, with
    basic composition: the epsilons add and the deltas add.

    >>> acc = PrivacyAccountant(epsilon=2.0, delta=1e-6)
    >>> acc.spend(1.0, 5e-7, "first fit"); acc.remaining
    (1.0, 5e-07)

    :meth:`spend` raises :class:`BudgetExceededError` (and records nothing) when the
    request does not fit in what is left. :attr:`ledger` lists every spend.

    An accountant is one budget, so copying it must not create a second one: an estimator
    that holds it and is cloned (``sklearn.base.clone``, ``cross_val_score``,
    ``GridSearchCV``) or deep-copied shares the same accountant, and every fit of every
    copy is charged to it. A copy made by pickling (a worker process of
    ``n_jobs > 1``, ``copy.copy``, a file) is another budget: it refuses to spend until
    :meth:`claim` is called on it.
    """

    def __sklearn_clone__(self) -> PrivacyAccountant:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> PrivacyAccountant:
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)  # a lock cannot be pickled; a copy gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A copy made by pickling (joblib's worker processes for n_jobs > 1, copy.copy, a
        # file) is a second budget: what it spends is not charged to the original. It
        # refuses to spend until claim() says it is the budget itself.
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._copy = True

    def claim(self) -> PrivacyAccountant:
        """Declare this accountant, made by unpickling, to be the budget itself (say, a
        budget saved to disk and loaded in a new session, the original gone) and return
        it. Until then it refuses to spend: a copy that spends leaves the original's record
        short of what was released (``n_jobs > 1`` in ``cross_val_score`` or
        ``GridSearchCV`` pickles the estimator, and its accountant, into other
        processes)."""
        self.__dict__.pop("_copy", None)
        return self

    def __init__(self, epsilon: float, delta: float = 0.0) -> None:
        self.epsilon = check("epsilon", epsilon, Interval(float, 0, None, closed="neither",
                                                          allow_inf=False))
        self.delta = check("delta", delta, Interval(float, 0, 1, closed="left"))
        self.ledger: list[dict[str, Any]] = []
        self._noise_keys: set[Any] = set()
        # spend() checks what is left and records the charge under this lock: fits of
        # shared clones in threads (joblib's threading backend) could otherwise both pass
        # the check before either was recorded, and together overspend the budget
        self._lock = threading.Lock()

    @property
    def spent(self) -> tuple[float, float]:
        return (math.fsum(e["epsilon"] for e in self.ledger),
                math.fsum(e["delta"] for e in self.ledger))

    @property
    def remaining(self) -> tuple[float, float]:
        e, d = self.spent
        return (max(self.epsilon - e, 0.0), max(self.delta - d, 0.0))

    def check(self, epsilon: float, delta: float) -> None:
        """Raise :class:`BudgetExceededError` unless (epsilon, delta) fits in what is left."""
        epsilon = check("epsilon", epsilon, Interval(float, 0, None, allow_inf=True))
        delta = check("delta", delta, Interval(float, 0, None, allow_inf=True))
        e, d = self.spent
        if e + epsilon > self.epsilon * (1 + _TOL) or d + delta > self.delta * (1 + _TOL) + 0.0:
            raise BudgetExceededError(
                f"the request (epsilon={epsilon:g}, delta={delta:g}) exceeds the budget left "
                f"(epsilon={self.epsilon - e:g}, delta={self.delta - d:g} of "
                f"epsilon={self.epsilon:g}, delta={self.delta:g}); nothing was computed")

    def spend(self, epsilon: float, delta: float = 0.0, label: str = "", *,
              noise_key: Any = None) -> None:
        """Charge (epsilon, delta), or raise :class:`BudgetExceededError` and charge nothing.

        ``noise_key`` identifies the computation's noise source when it is fixed (a seed):
        basic composition assumes independent noise, so a second spend with the same key
        warns (:class:`PrivacyLeakWarning`): on data that differ, the same noise cancels in
        the difference of the two releases and their costs do not add up as counted."""
        if self.__dict__.get("_copy"):
            raise invalid("accountant", self, "the budget itself, not a copy made by pickling "
                          "(n_jobs > 1 with a process backend pickles it into each worker, "
                          "whose spending the original never records): use n_jobs=1 or "
                          "joblib's threading backend, or call claim() on an accountant "
                          "loaded from a file that is now the only copy of the budget")
        epsilon = check("epsilon", epsilon, Interval(float, 0, None, closed="neither"))
        delta = check("delta", delta, Interval(float, 0, 1, closed="left"))
        with self._lock:
            self._spend(epsilon, delta, label, noise_key)

    def _spend(self, epsilon: float, delta: float, label: str, noise_key: Any) -> None:
        self.check(epsilon, delta)
        keys = self.__dict__.setdefault("_noise_keys", set())  # (an accountant unpickled
        if noise_key is not None and noise_key in keys:       # from an older version)
            import warnings

            warnings.warn(
                f"{label or 'this computation'}: its noise is that of an earlier computation "
                "charged to this accountant (the same fixed seed or generator state). Basic "
                "composition assumes independent noise: on data that differ, the noise "
                "cancels in the difference of the two releases, so their privacy is weaker "
                "than the epsilons added here. Use random_state=None for releases.",
                PrivacyLeakWarning, stacklevel=_outside_stacklevel())
        if noise_key is not None:
            keys.add(noise_key)
        self.ledger.append({"label": label, "epsilon": epsilon, "delta": delta})

    def __repr__(self) -> str:
        e, d = self.spent
        return (f"PrivacyAccountant(epsilon={self.epsilon:g}, delta={self.delta:g}; spent "
                f"epsilon={e:g}, delta={d:g} in {len(self.ledger)} computation(s))")
