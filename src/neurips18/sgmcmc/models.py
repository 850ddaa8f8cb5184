"""Posteriors with per-example gradients, for stochastic-gradient samplers.

A posterior over ``theta`` in R^d built from ``N`` examples is written, as in Brosse, Durmus
and Moulines (NeurIPS 2018, arXiv:1811.10072), through its potential

    U(theta) = U0(theta) + sum_i U_i(theta),  U0 = -log prior,  U_i = -log p(x_i | theta),

so that the posterior density is proportional to exp(-U). The samplers only ever need the
gradient of the log prior and the *sum over a minibatch* of per-example log-likelihood
gradients; the control-variate sampler (SGLDFP) additionally needs the difference of those
sums between the current point and the mode theta*, which generalised linear models can
compute from one cached scalar per example (see :meth:`Model.control_variate`).

Three ways to get a model:

* :class:`BayesianLinearRegression` and :class:`BayesianLogisticRegression` (Gaussian prior
  N(0, I / prior_precision)), fast NumPy implementations with cached control variates;
* any object with the methods of :class:`ModelProtocol` (wrapped by :func:`as_model`);
* :class:`TorchModel`, which takes a per-example log-likelihood written in PyTorch and gets
  its gradients from autograd.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeGuard, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from neurips18._validation import Interval, check, check_array, check_tensor, invalid

__all__ = [
    "BayesianLinearRegression",
    "BayesianLogisticRegression",
    "Model",
    "ModelProtocol",
    "ModeNotFoundError",
    "TorchModel",
    "as_model",
    "find_mode",
]

Array = NDArray[np.floating[Any]]
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class ModeNotFoundError(RuntimeError):
    """The mode search did not reach the requested gradient tolerance."""


@runtime_checkable
class ModelProtocol(Protocol):
    """What a user model must provide (all in terms of log densities).

    ``idx`` is an integer index array into the data set (``None`` means all ``n_data``
    examples); indices may repeat (minibatches drawn with replacement).
    """

    n_data: int
    dim: int

    def log_prior(self, theta: Array) -> float: ...

    def grad_log_prior(self, theta: Array) -> Array: ...

    def log_likelihood(self, theta: Array, idx: NDArray[np.intp] | None = None) -> Array:
        """Per-example log-likelihoods, shape ``(len(idx),)``."""
        ...

    def grad_log_likelihood_sum(
        self, theta: Array, idx: NDArray[np.intp] | None = None
    ) -> Array:
        """Sum over ``idx`` of the per-example log-likelihood gradients, shape ``(dim,)``."""
        ...


# --------------------------------------------------------------------------- validation


def _check_dtype(dtype: Any) -> np.dtype[Any]:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise invalid("dtype", dtype, "float32 or float64") from None
    if dt not in _DTYPES:
        raise invalid("dtype", dtype, "float32 or float64")
    return dt


def _check_positive(name: str, value: Any) -> float:
    return float(check(name, value, Interval(float, 0.0, None, closed="neither")))


def _check_design(X: ArrayLike, y: ArrayLike, dtype: np.dtype[Any]) -> tuple[Array, Array]:
    Xa = check_array("X", X, ndim=2, dtype="numeric", min_rows=1, min_cols=1)
    ya = check_array("y", y, ndim=1, dtype="numeric", min_rows=1)
    if ya.shape[0] != Xa.shape[0]:
        raise invalid("y", y, f"as many rows as X ({Xa.shape[0]})")
    # copies: the model caches quantities of its data (Lipschitz constant, closed-form
    # pieces), so it must not see later changes to the caller's arrays
    return (np.array(Xa, dtype=dtype, order="C", copy=True),
            np.array(ya, dtype=dtype, order="C", copy=True))


def check_theta(model: Model, theta: ArrayLike, name: str = "theta") -> Array:
    """``theta`` as a fresh array of the model's dtype, shape ``(dim,)``, finite."""
    t = check_array(name, theta, ndim=1, dtype="numeric", min_rows=0)
    if t.shape != (model.dim,):
        raise invalid(name, theta, f"shape ({model.dim},)")
    return np.array(t, dtype=model.dtype, copy=True)


# --------------------------------------------------------------------------- base class


class Model:
    """Base class: a posterior given by its prior and per-example likelihoods.

    Subclasses implement :meth:`log_prior`, :meth:`grad_log_prior`, :meth:`log_likelihood`
    and :meth:`grad_log_likelihood_sum`; the rest (potential, full gradient, the
    control-variate difference, the mode) is derived. Subclasses may override
    :meth:`control_variate` with a cheaper cached version and provide
    :meth:`hessian_potential` to enable Newton's method in :func:`find_mode`.
    """

    n_data: int
    dim: int
    dtype: np.dtype[Any] = np.dtype(np.float64)

    # -- to implement
    def log_prior(self, theta: Array) -> float:
        raise NotImplementedError

    def grad_log_prior(self, theta: Array) -> Array:
        raise NotImplementedError

    def log_likelihood(self, theta: Array, idx: NDArray[np.intp] | None = None) -> Array:
        raise NotImplementedError

    def grad_log_likelihood_sum(
        self, theta: Array, idx: NDArray[np.intp] | None = None
    ) -> Array:
        raise NotImplementedError

    # -- derived
    def potential(self, theta: Array) -> float:
        """U(theta) = -log prior - sum_i log-likelihood_i (up to the prior's constant)."""
        return -float(self.log_prior(theta)) - float(np.sum(self.log_likelihood(theta)))

    def grad_potential(self, theta: Array) -> Array:
        """Full-data gradient of U."""
        return -(self.grad_log_prior(theta) + self.grad_log_likelihood_sum(theta))

    def hessian_potential(self, theta: Array) -> Array | None:
        """Hessian of U if the model knows it (enables Newton in :func:`find_mode`)."""
        return None

    def hessian_vector_product(self, theta: Array, v: Array) -> Array | None:
        """H(theta) v for the Hessian H of U, if the model can compute it without forming H
        (:class:`TorchModel`: autograd); :func:`find_mode` then polishes with Newton-CG."""
        return None

    def lipschitz_constant(self) -> float | None:
        """A bound L >= the largest eigenvalue of the Hessian of U over all theta (grad U is
        L-Lipschitz), if the model knows one cheaply; None otherwise. Langevin steps are
        stable only below 2 / L (:func:`~neurips18.sgmcmc.sample` warns above it)."""
        return None

    def control_variate(self, theta_star: Array) -> Callable[[Array, NDArray[np.intp]], Array]:
        """``f(theta, idx) = sum_{i in idx} [grad log p_i(theta) - grad log p_i(theta_star)]``.

        The generic version evaluates both sums (two minibatch passes per step); generalised
        linear models override it with one cached scalar per example.
        """
        ts = np.array(theta_star, dtype=self.dtype, copy=True)

        def diff(theta: Array, idx: NDArray[np.intp]) -> Array:
            # the first sum copied before the second is computed: a model that returns one
            # reused buffer would otherwise give that buffer minus itself, zero
            at_theta = np.array(self.grad_log_likelihood_sum(theta, idx), copy=True)
            return at_theta - self.grad_log_likelihood_sum(ts, idx)

        return diff

    def _mode_scale(self, theta: Array) -> float:
        g0 = float(np.linalg.norm(np.asarray(self.grad_log_prior(theta), dtype=np.float64)))
        g1 = float(np.linalg.norm(
            np.asarray(self.grad_log_likelihood_sum(theta), dtype=np.float64)))
        return max(1.0, g0, g1)


def _own(theta: Array) -> Array:
    """A copy of a state for a user's method: one that edits its argument in place (``t *=
    -1.0; return t`` for the gradient of -|t|^2 / 2) would otherwise change the chain's
    state (or the SGLDFP centre) under the sampler."""
    return np.array(theta, copy=True)


class _ProtocolAdapter(Model):
    """Wraps a duck-typed user model so that the samplers see a :class:`Model`."""

    def __init__(self, obj: Any, dtype: Any = np.float64) -> None:
        for name in ("log_prior", "grad_log_prior", "log_likelihood", "grad_log_likelihood_sum"):
            if not callable(getattr(obj, name, None)):
                raise invalid("model", obj, f"an object with a callable {name}(...) (see "
                              "neurips18.sgmcmc.ModelProtocol)")
        n = check("model.n_data", getattr(obj, "n_data", None), Interval(int, 1, None))
        d = check("model.dim", getattr(obj, "dim", None), Interval(int, 1, None))
        self._obj = obj
        self.n_data, self.dim = int(n), int(d)
        self.dtype = _check_dtype(getattr(obj, "dtype", dtype))

    def _shaped(self, name: str, value: Any, shape: tuple[int, ...]) -> Array:
        # the protocol's shapes, checked on every call: a (dim, 1) gradient broadcasts
        # against the (dim,) state into a (dim, dim) one, and a (b, b) log-likelihood from a
        # label column sums b^2 terms, so a wrong shape is refused at the method that made it.
        # Always a copy: a model that writes its results into one reused buffer (np.dot(...,
        # out=)) would otherwise change a value the sampler still holds (the SGLDFP centre's
        # prior gradient, the first of the two sums of a control-variate difference)
        out = np.array(value, dtype=self.dtype, copy=True)
        if out.shape != shape:
            raise invalid(f"model.{name}", value, f"a return value of shape {shape} (see "
                          "neurips18.sgmcmc.ModelProtocol)")
        return out

    def log_prior(self, theta: Array) -> float:
        # one number, as TorchModel asks: per-coordinate terms left unsummed ended the mode
        # search in NumPy's "only 0-dimensional arrays can be converted" TypeError
        value = self._obj.log_prior(_own(theta))
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise invalid("model.log_prior", value, "a number") from None
        if arr.size != 1:
            raise invalid("model.log_prior", value, f"a scalar (one value for theta), got "
                          f"shape {arr.shape}; sum the per-coordinate terms")
        return float(arr.reshape(()))

    def grad_log_prior(self, theta: Array) -> Array:
        return self._shaped("grad_log_prior", self._obj.grad_log_prior(_own(theta)),
                            (self.dim,))

    def log_likelihood(self, theta: Array, idx: NDArray[np.intp] | None = None) -> Array:
        b = self.n_data if idx is None else len(idx)
        return self._shaped("log_likelihood", self._obj.log_likelihood(_own(theta), idx),
                            (b,))

    def grad_log_likelihood_sum(
        self, theta: Array, idx: NDArray[np.intp] | None = None
    ) -> Array:
        return self._shaped("grad_log_likelihood_sum",
                            self._obj.grad_log_likelihood_sum(_own(theta), idx),
                            (self.dim,))

    def hessian_potential(self, theta: Array) -> Array | None:
        h = getattr(self._obj, "hessian_potential", None)
        return None if h is None else h(_own(theta))

    def hessian_vector_product(self, theta: Array, v: Array) -> Array | None:
        h = getattr(self._obj, "hessian_vector_product", None)
        return None if h is None else np.asarray(h(_own(theta), _own(v)), dtype=np.float64)

    def lipschitz_constant(self) -> float | None:
        f = getattr(self._obj, "lipschitz_constant", None)
        if f is None:
            return None
        value = f() if callable(f) else f
        return None if value is None else float(check(
            "model.lipschitz_constant", value, Interval(float, 0.0, None, closed="neither")))

    def control_variate(self, theta_star: Array) -> Callable[[Array, NDArray[np.intp]], Array]:
        cv = getattr(self._obj, "control_variate", None)
        if not callable(cv):
            return super().control_variate(theta_star)
        user_diff = cv(_own(theta_star))
        if not callable(user_diff):
            raise invalid("model.control_variate", user_diff, "a callable diff(theta, idx) "
                          "returned by control_variate(theta_star)")

        def diff(theta: Array, idx: NDArray[np.intp]) -> Array:
            # checked like the other methods: a (dim, 1) column broadcasts the state into a
            # (dim, dim) array, and a (1,) value is silently spread over every coordinate
            return self._shaped("control_variate", user_diff(_own(theta), idx),
                                (self.dim,))

        return diff


def as_model(model: Any) -> Model:
    """Return ``model`` as a :class:`Model` (wrapping protocol objects); else TypeError."""
    if isinstance(model, Model):
        return model
    return _ProtocolAdapter(model)


# --------------------------------------------------------------------------- GLMs


class _GaussianPriorGLM(Model):
    """Generalised linear model with a N(0, I / prior_precision) prior.

    Per-example log-likelihood ``ell(x_i^T theta, y_i)``; its derivative in the linear
    predictor is ``_dell(z, y)`` and its negative second derivative ``_curv(z, y)``.
    """

    def __init__(self, X: ArrayLike, y: ArrayLike, prior_precision: float, dtype: Any) -> None:
        self.dtype = _check_dtype(dtype)
        self._prior_precision = _check_positive("prior_precision", prior_precision)
        self._X, self._y = _check_design(X, y, self.dtype)
        # the model derives cached pieces from its data and hyperparameters (the prior term
        # in its dtype, the Lipschitz constant, the closed forms, the C kernel's constants):
        # they are read-only, so a changed value means a new model, never a stale mixture
        self._X.flags.writeable = False
        self._y.flags.writeable = False
        self.n_data, self.dim = self._X.shape
        self._lam = self.dtype.type(self._prior_precision)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # unpickled arrays come back writeable: lock them again
        self.__dict__.update(state)
        self._X.flags.writeable = False
        self._y.flags.writeable = False

    @property
    def X(self) -> Array:
        """The design matrix (the model's own read-only copy, in its dtype)."""
        return self._X

    @property
    def y(self) -> Array:
        """The responses (the model's own read-only copy, in its dtype)."""
        return self._y

    @property
    def prior_precision(self) -> float:
        """lambda of the N(0, I / lambda) prior (read-only: build a new model to change it)."""
        return self._prior_precision

    # per-example pieces, vectorised over z
    def _ell(self, z: Array, y: Array) -> Array:
        raise NotImplementedError

    def _dell(self, z: Array, y: Array) -> Array:
        raise NotImplementedError

    def _curv(self, z: Array, y: Array) -> Array:
        raise NotImplementedError

    # fast path for the sampler: grad U_i(theta) = x_i * (_link(z_i) - _target_i)
    _target: Array

    def _link(self, z: Array) -> Array:
        raise NotImplementedError

    def _link_ufunc(self) -> Callable[[Array], Array]:
        """``_link`` as a bare callable (no Python frames per call) for the sampler loop."""
        return self._link

    def _link_at(self, theta: Array) -> Array:
        """_link(x_i^T theta) for all i, computed in float64, returned in the model dtype."""
        z = self.X.astype(np.float64) @ np.asarray(theta, np.float64)
        return np.asarray(self._link(z), dtype=np.float64).astype(self.dtype)

    def _rows(self, idx: NDArray[np.intp] | None) -> tuple[Array, Array]:
        if idx is None:
            return self.X, self.y
        return np.take(self.X, idx, axis=0), np.take(self.y, idx)

    def log_prior(self, theta: Array) -> float:
        lam = self.prior_precision
        t = np.asarray(theta, dtype=np.float64)
        return float(0.5 * self.dim * math.log(lam / (2 * math.pi)) - 0.5 * lam * t @ t)

    def grad_log_prior(self, theta: Array) -> Array:
        return -self._lam * theta

    def log_likelihood(self, theta: Array, idx: NDArray[np.intp] | None = None) -> Array:
        Xb, yb = self._rows(idx)
        return self._ell(Xb @ theta, yb)

    def grad_log_likelihood(self, theta: Array, idx: NDArray[np.intp] | None = None) -> Array:
        """Per-example log-likelihood gradients, shape ``(len(idx), dim)``."""
        Xb, yb = self._rows(idx)
        return Xb * self._dell(Xb @ theta, yb)[:, None]

    def grad_log_likelihood_sum(
        self, theta: Array, idx: NDArray[np.intp] | None = None
    ) -> Array:
        Xb, yb = self._rows(idx)
        return Xb.T @ self._dell(Xb @ theta, yb)

    def hessian_potential(self, theta: Array) -> Array | None:
        """The Hessian of U from the data (N d^2); None for a subclass that overrides the
        prior or the likelihood (this Hessian would be the built-in posterior's) unless it
        overrides this method too."""
        if not _closed_form_glm(self):
            return None
        X = self.X.astype(np.float64, copy=False)
        w = self._curv(X @ np.asarray(theta, np.float64), self.y.astype(np.float64, copy=False))
        return (X.T * w) @ X + self.prior_precision * np.eye(self.dim)

    _curv_max: float  # sup over z of the curvature _curv(z, y) of the per-example potential

    def lipschitz_constant(self) -> float | None:
        """L = lambda + c_max lambda_max(X^T X), c_max the largest curvature of the
        per-example potential in x^T theta (1 / sigma^2 for linear regression, where L is the
        Hessian's largest eigenvalue everywhere; 1/4 for logistic regression). Computed once,
        in float64 (N d^2 operations). None for a subclass that overrides the prior or the
        likelihood (the bound is the built-in posterior's) unless it overrides this method
        too."""
        if not _closed_form_glm(self):
            return None
        cache = self.__dict__.setdefault("_lipschitz_cache", [])
        if not cache:
            X = self.X.astype(np.float64, copy=False)
            top = float(np.linalg.eigvalsh(X.T @ X)[-1])
            cache.append(self.prior_precision + self._curv_max * top)
        return float(cache[0])

    def control_variate(self, theta_star: Array) -> Callable[[Array, NDArray[np.intp]], Array]:
        if not _closed_form_glm(self):
            # a subclass with its own likelihood (or prior): the cached built-in derivative
            # below would be the built-in likelihood's, so SGLDFP sampled the wrong
            # posterior; the generic difference goes through the subclass's methods
            return Model.control_variate(self, theta_star)
        # grad log p_i(theta) = x_i * dell(x_i^T theta, y_i): cache dell at theta* (N scalars)
        # so that one gather and two products per minibatch give the SGLDFP difference.
        ts = np.asarray(theta_star, dtype=np.float64)
        c = self._dell(self.X.astype(np.float64) @ ts, self.y.astype(np.float64))
        cache = c.astype(self.dtype)
        X, y, dell = self.X, self.y, self._dell

        def diff(theta: Array, idx: NDArray[np.intp]) -> Array:
            Xb = np.take(X, idx, axis=0)
            return Xb.T @ (dell(Xb @ theta, np.take(y, idx)) - np.take(cache, idx))

        return diff

    def _linearisation(self, theta_star: Array) -> tuple[Array, Array]:
        """(U, G): rows u_i with Hessian of U_i at theta* = u_i u_i^T, and G rows grad U_i."""
        X = self.X.astype(np.float64)
        y = self.y.astype(np.float64)
        z = X @ np.asarray(theta_star, np.float64)
        U = X * np.sqrt(self._curv(z, y))[:, None]
        G = -X * self._dell(z, y)[:, None]
        return U, G


class BayesianLinearRegression(_GaussianPriorGLM):
    """Bayesian linear regression: y_i ~ N(x_i^T theta, noise_variance), theta ~ N(0, I/lambda).

    U0(theta) = prior_precision |theta|^2 / 2 and U_i = (y_i - x_i^T theta)^2 / (2 sigma^2),
    the model of the closed forms in Brosse, Durmus, Moulines (2018), Section 3. The
    posterior is Gaussian: mean theta* = Sigma^{-1} X^T y / sigma^2 and covariance Sigma^{-1}
    with Sigma = lambda I + X^T X / sigma^2 (see :func:`neurips18.sgmcmc.posterior_moments`).

    Parameters
    ----------
    X : (n_data, dim) design matrix. y : (n_data,) responses.
    prior_precision : lambda > 0. noise_variance : sigma^2 > 0 (default 1).
    dtype : float64 (default) or float32; all sampler arithmetic stays in this dtype.
    """

    def __init__(
        self,
        X: ArrayLike,
        y: ArrayLike,
        prior_precision: float,
        noise_variance: float = 1.0,
        *,
        dtype: Any = np.float64,
    ) -> None:
        super().__init__(X, y, prior_precision, dtype)
        self._noise_variance = _check_positive("noise_variance", noise_variance)
        self._curv_max = 1.0 / self.noise_variance
        self._inv_s2 = self.dtype.type(1.0 / self.noise_variance)
        self._target = (self.y.astype(np.float64) / self.noise_variance).astype(self.dtype)

    @property
    def noise_variance(self) -> float:
        """sigma^2 of the Gaussian likelihood (read-only: build a new model to change it)."""
        return self._noise_variance

    def _link(self, z: Array) -> Array:
        return z * (self._inv_s2 if z.dtype == self.dtype else 1.0 / self.noise_variance)

    def _ell(self, z: Array, y: Array) -> Array:
        s2 = self.noise_variance
        return -0.5 * (y - z) ** 2 / s2 - 0.5 * math.log(2 * math.pi * s2)

    def _dell(self, z: Array, y: Array) -> Array:
        return (y - z) * (self._inv_s2 if z.dtype == self.dtype else 1.0 / self.noise_variance)

    def _curv(self, z: Array, y: Array) -> Array:
        return np.full_like(z, 1.0 / self.noise_variance)

    def exact_mode(self) -> Array:
        """theta* = (lambda I + X^T X / sigma^2)^{-1} X^T y / sigma^2, in float64."""
        X = self.X.astype(np.float64)
        s2 = self.noise_variance
        S = X.T @ X / s2 + self.prior_precision * np.eye(self.dim)
        return np.linalg.solve(S, X.T @ self.y.astype(np.float64) / s2)


def _sigmoid(z: Array) -> Array:
    # overflow-free, dtype-preserving logistic function (one pass)
    from scipy.special import expit

    return expit(z)  # type: ignore[no-any-return]


class BayesianLogisticRegression(_GaussianPriorGLM):
    """Bayesian logistic regression: P(y_i = 1) = sigmoid(x_i^T theta), theta ~ N(0, I/lambda).

    The paper's second model (Brosse, Durmus, Moulines 2018, Section 4, on covertype).
    ``y`` must be 0/1. ``dtype`` float64 (default) or float32.
    """

    def __init__(
        self, X: ArrayLike, y: ArrayLike, prior_precision: float, *, dtype: Any = np.float64
    ) -> None:
        super().__init__(X, y, prior_precision, dtype)
        if not np.isin(self.y, (0.0, 1.0)).all():
            bad = np.unique(self.y[~np.isin(self.y, (0.0, 1.0))])[:5]
            raise invalid("y", y, f"labels 0 and 1 only for logistic regression, found {bad}")
        self._target = self.y
        self._curv_max = 0.25  # sigma'(z) = sigma(z) (1 - sigma(z)) <= 1/4

    def _link(self, z: Array) -> Array:
        return _sigmoid(z)

    def _link_ufunc(self) -> Callable[[Array], Array]:
        from scipy.special import expit

        return expit  # type: ignore[no-any-return]

    def _ell(self, z: Array, y: Array) -> Array:
        # y z - log(1 + e^z), stably
        return y * z - np.logaddexp(0.0, z)

    def _dell(self, z: Array, y: Array) -> Array:
        return y - _sigmoid(z)

    def _curv(self, z: Array, y: Array) -> Array:
        s = _sigmoid(z)
        return s * (1.0 - s)


# --------------------------------------------------------------------------- torch adapter


@contextmanager
def _autograd_on() -> Iterator[None]:
    """Gradients recorded whatever the caller's mode: TorchModel's gradients come from
    autograd, which ``torch.no_grad()`` or ``torch.inference_mode()`` around a sampler
    would otherwise switch off (the chain then failed with "does not require grad")."""
    import torch

    with torch.inference_mode(False), torch.enable_grad():
        yield


class TorchModel(Model):
    """A user model written in PyTorch; gradients come from autograd.

    Parameters
    ----------
    log_likelihood : ``f(theta, batch) -> Tensor (b,)`` per-example log-likelihoods (any
        other shape is refused when the model calls it), where
        ``theta`` is a 1-d tensor of length ``dim`` and ``batch`` is ``data`` indexed along
        its first axis (a tensor, or a tuple of tensors indexed together).
    log_prior : ``g(theta) -> scalar Tensor``.
    data : a tensor or tuple of tensors with ``n_data`` rows (copied: the model does not see
        later changes to them); a named tuple reaches ``log_likelihood`` as a named tuple.
    dim : number of parameters.
    dtype : float64 (default) or float32; the NumPy side of the sampler uses the same.
    lipschitz_constant : a bound on the largest Hessian eigenvalue of U = -log posterior over
        all theta, if known (see :meth:`Model.lipschitz_constant`); the sampler then warns
        about steps above 2 / L.

    Hessian-vector products come from autograd (double backward through ``log_likelihood``
    and ``log_prior`` on the whole data set), so :func:`find_mode` polishes the mode with
    Newton-CG steps. Gradients are recorded even when the model is used inside
    ``torch.no_grad()`` or ``torch.inference_mode()``.
    """

    def __init__(
        self,
        log_likelihood: Callable[[Any, Any], Any],
        log_prior: Callable[[Any], Any],
        data: Any,
        dim: int,
        *,
        dtype: Any = np.float64,
        lipschitz_constant: float | None = None,
    ) -> None:
        import torch

        for name, fn in (("log_likelihood", log_likelihood), ("log_prior", log_prior)):
            if not callable(fn):
                raise invalid(name, fn, "a callable")
        dim = check("dim", dim, Interval(int, 1, None))
        self.dtype = _check_dtype(dtype)
        self._tdtype = torch.float64 if self.dtype == np.float64 else torch.float32
        parts = data if isinstance(data, tuple) else (data,)
        if not parts:
            raise invalid("data", data, "a torch.Tensor or a non-empty tuple of tensors")
        for p in parts:
            check_tensor("data", p, floating=False, finite=True, nonempty=True)
            if p.ndim == 0:
                raise invalid("data", p, "tensors with a first (example) dimension")
        n = parts[0].shape[0]
        if any(p.shape[0] != n for p in parts):
            raise invalid("data", data, "tensors that share their first dimension")
        self._lipschitz = (None if lipschitz_constant is None else float(check(
            "lipschitz_constant", lipschitz_constant,
            Interval(float, 0.0, None, closed="neither"))))
        # a copy, as the GLMs take: an estimator built on the model caches values of its
        # data (the gradient at the SGLDFP centre), so later changes to the caller's
        # tensors must not reach the model. Made outside inference mode: a copy made inside
        # torch.inference_mode() is an inference tensor, which autograd refuses to save for
        # backward, so a model built there could not take a single gradient
        with torch.inference_mode(False):
            self._data = tuple(p.detach().clone() for p in parts)
        self._tuple = isinstance(data, tuple)
        # a named tuple (fields read as batch.x, batch.y) is handed back as one of its kind:
        # a plain tuple made the user's log-likelihood fail on its first attribute
        self._make = getattr(type(data), "_make", None) if self._tuple else None
        self._ll, self._lp = log_likelihood, log_prior
        self.n_data, self.dim = int(n), dim

    def _batch(self, idx: NDArray[np.intp] | None) -> Any:
        import torch

        if idx is None:
            parts = self._data
        else:
            ti = torch.from_numpy(np.asarray(idx, dtype=np.int64))
            parts = tuple(p[ti] for p in self._data)
        if not self._tuple:
            return parts[0]
        return parts if self._make is None else self._make(parts)

    def _loglik(self, t: Any, idx: NDArray[np.intp] | None) -> Any:
        """The user's per-example log-likelihoods on ``idx``, checked to have shape ``(b,)``:
        a summed (b, b) or (b, 1) result would give a wrong gradient without any error
        (labels stored as a column broadcast against a (b,) linear predictor)."""
        # on the whole data set the batch is the model's own copy of the data (a minibatch is
        # a fresh gather): a log-likelihood that edits it in place (labels mapped to +-1 with
        # mul_/sub_, say) would change the data under every later call, so it is refused
        versions = None if idx is not None else [p._version for p in self._data]
        out = self._ll(t, self._batch(idx))
        if versions is not None and versions != [p._version for p in self._data]:
            raise invalid("log_likelihood", self._ll,
                          "a function that leaves its batch unchanged: it modified the data "
                          "in place (an in-place tensor operation such as mul_, sub_ or "
                          "x[...] = ...), which changes the model's data for every later "
                          "call; compute on a copy (x = x * 2 - 1, not x.mul_(2).sub_(1)) "
                          "and build the model again")
        b = self.n_data if idx is None else len(idx)
        if tuple(getattr(out, "shape", ())) != (b,):
            raise invalid("log_likelihood", out,
                          f"a tensor of per-example values of shape ({b},) for a batch of "
                          f"{b} examples; a label column of shape ({b}, 1) against a linear "
                          f"predictor of shape ({b},) broadcasts to ({b}, {b})")
        return out

    def _theta(self, theta: Array, grad: bool) -> Any:
        import torch

        t = torch.tensor(np.asarray(theta), dtype=self._tdtype)
        return t.requires_grad_(grad)

    def log_prior(self, theta: Array) -> float:
        import torch

        with torch.no_grad():
            return float(self._prior_value(self._theta(theta, False)))

    def _prior_value(self, t: Any) -> Any:
        """The user's log prior at ``t`` as a scalar tensor. A flat (improper) prior written
        as a constant, ``torch.tensor(0.)`` or a plain number, has no graph back to ``t``:
        it is kept as a constant, whose gradient is zero."""
        import torch

        out = self._lp(t)
        if not torch.is_tensor(out):
            try:
                out = torch.tensor(float(out), dtype=self._tdtype)
            except (TypeError, ValueError):
                raise invalid("log_prior", out, "a scalar tensor or number") from None
        if out.numel() != 1:
            raise invalid("log_prior", out, f"a scalar (one value for theta), got shape "
                          f"{tuple(out.shape)}; sum the per-coordinate terms")
        return out.reshape(())

    def _check_constant_prior(self, theta: Array, value: float) -> None:
        """A log prior without an autograd graph is taken as flat only if it is constant: one
        computed through ``.item()``, ``float()`` or NumPy also has no graph, and a zero
        gradient would silently drop that prior from every chain."""
        import torch

        base = np.asarray(theta, dtype=np.float64)
        probes = (np.zeros(self.dim), np.ones(self.dim), base + 1.0, -2.0 * base - 0.5)
        with torch.no_grad():
            for q in probes:
                v = float(self._prior_value(self._theta(q.astype(self.dtype), False)))
                if not v == value:
                    raise invalid("log_prior", self._lp,
                                  "a function computed from theta with torch operations: "
                                  "its value changes with theta but carries no autograd "
                                  "graph (.item(), float() or NumPy inside?), so its "
                                  "gradient is unknown; only a constant (flat) prior may "
                                  "be returned without one")

    def grad_log_prior(self, theta: Array) -> Array:
        import torch

        with _autograd_on():
            t = self._theta(theta, True)
            lp = self._prior_value(t)
            if not lp.requires_grad:  # a constant (flat) prior, or a graph lost on the way
                self._check_constant_prior(theta, float(lp))
                return np.zeros(self.dim, dtype=self.dtype)
            (g,) = torch.autograd.grad(lp, t, allow_unused=True)
        if g is None:
            return np.zeros(self.dim, dtype=self.dtype)
        return g.detach().numpy().astype(self.dtype, copy=False)

    def log_likelihood(self, theta: Array, idx: NDArray[np.intp] | None = None) -> Array:
        import torch

        with torch.no_grad():
            out = self._loglik(self._theta(theta, False), idx)
        return out.numpy().astype(self.dtype, copy=False)

    def grad_log_likelihood_sum(
        self, theta: Array, idx: NDArray[np.intp] | None = None
    ) -> Array:
        import torch

        with _autograd_on():
            t = self._theta(theta, True)
            (g,) = torch.autograd.grad(self._loglik(t, idx).sum(), t)
        return g.detach().numpy().astype(self.dtype, copy=False)

    def hessian_vector_product(self, theta: Array, v: Array) -> Array:
        """H(theta) v, H the Hessian of U = -(log prior + sum_i log-likelihood_i), by autograd
        on the whole data set (in the model's dtype; returned as float64)."""
        import torch

        with _autograd_on():
            t = self._theta(theta, True)
            u = -(self._prior_value(t) + self._loglik(t, None).sum())
            (g,) = torch.autograd.grad(u, t, create_graph=True)
            vt = torch.as_tensor(np.asarray(v), dtype=self._tdtype)
            (hv,) = torch.autograd.grad(g, t, grad_outputs=vt)
        return hv.detach().numpy().astype(np.float64)

    def lipschitz_constant(self) -> float | None:
        return self._lipschitz


# --------------------------------------------------------------------------- the mode


def _conjugate_gradient(apply: Callable[[Array], Array], b: Array, tol: float,
                        maxiter: int) -> Array:
    """Approximately solve ``A x = b`` for a symmetric A given as ``apply``; stops at
    ``||A x - b|| <= tol``, after ``maxiter`` products, or at non-positive curvature (where
    it returns what it has, or ``b`` itself if nothing: a gradient step)."""
    x = np.zeros_like(b)
    r = b.copy()
    d = r.copy()
    rr = float(r @ r)
    for _ in range(maxiter):
        Ad = apply(d)
        dAd = float(d @ Ad)
        if not (np.isfinite(dAd) and dAd > 0):
            break
        a = rr / dAd
        x += a * d
        r -= a * Ad
        rr_new = float(r @ r)
        if math.sqrt(rr_new) <= tol:
            break
        d = r + (rr_new / rr) * d
        rr = rr_new
    return x if np.any(x) else b.copy()


_PRIOR_LIKELIHOOD = ("log_prior", "grad_log_prior", "log_likelihood",
                     "grad_log_likelihood_sum", "potential", "grad_potential")
_LINK = ("_ell", "_dell", "_curv", "_link", "_link_ufunc", "_link_at")


def _closed_form_glm(m: Any, *, link: bool = False) -> TypeGuard[_GaussianPriorGLM]:
    """Whether ``m``'s posterior is the one the GLM code computes from its data directly: a
    Gaussian-prior GLM whose prior and likelihood methods are not overridden (with
    ``link=True``: a built-in GLM with its own link too, as the C kernel, the closed forms
    and the exact linear-regression mode assume). A subclass that overrides them (another
    prior, say) is a model of its own: the fast paths would silently ignore the override,
    so it goes through its methods like any user model."""
    if not isinstance(m, _GaussianPriorGLM):
        return False
    cls = type(m)
    if any(getattr(cls, n) is not getattr(_GaussianPriorGLM, n) for n in _PRIOR_LIKELIHOOD):
        return False
    if not link:
        return True
    base = next((b for b in (BayesianLogisticRegression, BayesianLinearRegression)
                 if isinstance(m, b)), None)
    return base is not None and all(getattr(cls, n) is getattr(base, n) for n in _LINK)


def _default_rtol(m: Model) -> float:
    # the GLMs search in float64 whatever their dtype; a float32 model's gradient sums carry
    # relative rounding errors far above 1e-8
    if _closed_form_glm(m) or m.dtype == np.float64:
        return 1e-8
    return 1e-5


def find_mode(
    model: Any,
    theta0: ArrayLike | None = None,
    *,
    rtol: float | None = None,
    max_iter: int = 200,
) -> Array:
    """The posterior mode theta* (the maximum a posteriori), as a float64 array.

    Newton's method with backtracking when the model provides :meth:`Model.hessian_potential`
    (the GLMs here); otherwise L-BFGS (SciPy) and then Newton-CG polishing, with the model's
    :meth:`Model.hessian_vector_product` (autograd for :class:`TorchModel`) or, for a model
    without one, central differences of its gradient. Succeeds when ``||grad U(theta*)|| <=
    rtol * max(1, ||grad log prior(theta0)||, ||sum_i grad log p_i(theta0)||)``, else raises
    :class:`ModeNotFoundError` with the value reached. ``rtol`` defaults to 1e-8 (1e-5 for a
    float32 model other than the built-in GLMs, which search in float64). SGLDFP needs
    grad U(theta*) = 0 (Brosse et al. 2018, Section 2), so this is part of the method rather
    than the user's job.
    """
    m = as_model(model)
    rtol = _default_rtol(m) if rtol is None else _check_positive("rtol", rtol)
    max_iter = int(check("max_iter", max_iter, Interval(int, 1, None)))
    t = np.zeros(m.dim) if theta0 is None else check_theta(m, theta0, "theta0").astype(float)
    if _closed_form_glm(m, link=True) and isinstance(m, BayesianLinearRegression):
        return m.exact_mode()
    scale = m._mode_scale(t.astype(m.dtype))
    if not math.isfinite(scale):
        raise invalid("theta0", t if theta0 is None else theta0,
                      "a start of the mode search where the gradient of U is finite (the "
                      "default is zeros, outside this model's domain): pass theta0= to "
                      "find_mode, or theta_star= (the mode) to sample or control_variates")
    target = rtol * scale

    if _closed_form_glm(m):
        X = m.X.astype(np.float64)
        y = m.y.astype(np.float64)
        lam = m.prior_precision

        def U(th: Array) -> float:
            return float(0.5 * lam * th @ th - np.sum(m._ell(X @ th, y)))

        def G(th: Array) -> Array:
            return lam * th - X.T @ m._dell(X @ th, y)

        def H(th: Array) -> Array:
            return (X.T * m._curv(X @ th, y)) @ X + lam * np.eye(m.dim)

    else:

        def U(th: Array) -> float:
            return m.potential(th.astype(m.dtype))

        def G(th: Array) -> Array:
            return np.asarray(m.grad_potential(th.astype(m.dtype)), dtype=np.float64)

        def H(th: Array) -> Array:
            h = m.hessian_potential(th.astype(m.dtype))
            return None if h is None else np.asarray(h, np.float64)  # type: ignore[return-value]

    has_hessian = H(t) is not None
    if not has_hessian:
        from scipy.optimize import minimize

        res = minimize(U, t, jac=G, method="L-BFGS-B",
                       options={"maxiter": 20 * max_iter, "gtol": target, "ftol": 0.0})
        t = _newton_cg_polish(m, G, np.asarray(res.x, np.float64), target, max_iter)
    else:
        u = U(t)
        for _ in range(max_iter):
            g = G(t)
            if np.linalg.norm(g) <= target:
                break
            step = np.linalg.solve(H(t), g)
            a = 1.0
            while a > 1e-10:
                cand = t - a * step
                uc = U(cand)
                armijo = uc <= u + 1e-4 * a * float(g @ -step)
                if armijo or np.linalg.norm(G(cand)) < np.linalg.norm(g):
                    break
                a *= 0.5
            t, u = cand, uc
    gn = float(np.linalg.norm(G(t)))
    if not np.isfinite(gn) or gn > target:
        raise ModeNotFoundError(
            f"mode search stopped with ||grad U|| = {gn:.3g} > {target:.3g} "
            f"(rtol={rtol:g} x scale {scale:.3g}); pass theta_star= yourself, or a larger "
            "rtol (mode_rtol= in sample())"
        )
    return t


def _newton_cg_polish(m: Model, G: Callable[[Array], Array], t: Array, target: float,
                      max_iter: int) -> Array:
    """Newton-CG steps from ``t`` until ``||G|| <= target``; a step is kept only if it lowers
    the gradient norm (halved until it does), so rounding noise in a float32 potential cannot
    lead it astray. Hessian-vector products from the model, or central differences of G."""
    eps = float(np.finfo(m.dtype).eps)

    def hvp(th: Array, v: Array) -> Array:
        out = m.hessian_vector_product(th.astype(m.dtype), v.astype(m.dtype))
        if out is not None:
            return np.asarray(out, dtype=np.float64)
        nv = float(np.linalg.norm(v))
        if nv == 0:
            return np.zeros_like(v)
        h = math.sqrt(eps) * (1.0 + float(np.linalg.norm(th))) / nv
        return (G(th + h * v) - G(th - h * v)) / (2 * h)

    g = G(t)
    gn = float(np.linalg.norm(g))
    for _ in range(min(max_iter, 50)):
        if not gn > target:  # done (or NaN: nothing to polish)
            break
        step = _conjugate_gradient(lambda v, th=t: hvp(th, v), g,
                                   min(0.5, math.sqrt(gn)) * gn, 2 * m.dim)
        a = 1.0
        while a > 1e-10:
            cand = t - a * step
            gc = G(cand)
            gcn = float(np.linalg.norm(gc))
            if gcn < gn:
                t, g, gn = cand, gc, gcn
                break
            a *= 0.5
        else:  # no step lowers the gradient norm: at the model's rounding floor
            break
    return t
