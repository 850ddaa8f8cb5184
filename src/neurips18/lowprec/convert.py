"""Converting a model to the FP8 recipe, and reporting what runs in FP8 and what does not.

:func:`convert_to_fp8` changes the class of every layer it converts (``nn.Linear`` becomes
:class:`~neurips18.lowprec.Fp8Linear`, and so on) and gives it its formats; the module
object, its parameters, buffers, hooks and training mode stay as they were. Converting
again applies the new recipe to every converted layer. Layers it cannot emulate are
reported -- by :func:`fp8_report`, and in an :class:`Fp8ConversionWarning` naming each one
-- never silently left in float32.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn
from torch.nn.utils import parametrize

from neurips18._validation import InstanceOf, Predicate, check
from neurips18.lowprec.attention import Fp8MultiheadAttention, Fp8TransformerEncoderLayer
from neurips18.lowprec.layers import Fp8Conv1d, Fp8Conv2d, Fp8Embedding, Fp8Linear, Fp8Recipe
from neurips18.lowprec.recurrent import Fp8GRU, Fp8LSTM, Fp8RNN

__all__ = ["Fp8ConversionWarning", "Fp8Report", "ReportEntry", "convert_to_fp8", "fp8_report"]


class Fp8ConversionWarning(UserWarning):
    """Some layers of a model were left unconverted by :func:`convert_to_fp8`."""


@dataclass(frozen=True)
class ReportEntry:
    """One module of a model: its path (``""`` for the model itself), its type and, for a
    converted layer, its formats, else why it is not converted."""

    path: str
    type: str
    detail: str


@dataclass(frozen=True)
class Fp8Report:
    """What :func:`fp8_report` finds: the converted layers, and every module that owns
    parameters but is not converted -- ``unsupported`` (a layer with GEMMs that the
    emulation does not cover), ``unknown`` (a module type the conversion does not know;
    whatever it computes with its parameters is not emulated), ``excluded`` (left out by a
    ``module_filter``) or ``float32`` (no GEMM: normalisation and the like, kept in higher
    precision by the recipe)."""

    converted: tuple[ReportEntry, ...]
    unsupported: tuple[ReportEntry, ...]
    unknown: tuple[ReportEntry, ...]
    excluded: tuple[ReportEntry, ...]
    float32: tuple[ReportEntry, ...]

    @property
    def left_in_float32(self) -> tuple[ReportEntry, ...]:
        """The modules that may run GEMMs in float32: unsupported and unknown ones."""
        return self.unsupported + self.unknown

    def __str__(self) -> str:
        lines = [f"{len(self.converted)} layer(s) in FP8"]
        for e in self.converted:
            lines.append(f"  {e.path or '<model>'} ({e.type}): {e.detail}")
        for title, entries in (("not converted, GEMMs in float32", self.unsupported),
                               ("not converted, unknown module type", self.unknown),
                               ("excluded by module_filter", self.excluded),
                               ("no GEMM (float32, as in the recipe)", self.float32)):
            if entries:
                lines.append(f"{len(entries)} {title}:")
                lines += [f"  {e.path or '<model>'} ({e.type}): {e.detail}" for e in entries]
        return "\n".join(lines)


# Layers without GEMMs whose parameters the recipe keeps in higher precision.
_NO_GEMM = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.PReLU)
# Layer types with GEMMs that the emulation does not cover.
_UNSUPPORTED: dict[type, str] = {
    nn.Conv3d: "3-D convolutions are not emulated",
    nn.modules.conv._ConvTransposeNd: "transposed convolutions are not emulated",
    nn.Bilinear: "bilinear layers are not emulated",
    nn.EmbeddingBag: "embedding bags are not emulated",
    nn.modules.rnn.RNNBase: "a recurrent layer type that is not emulated",
    nn.modules.rnn.RNNCellBase: "recurrent cells are not emulated (the full layers are)",
}
# torch base class -> its FP8 class
_FP8 = {nn.Linear: Fp8Linear, nn.Conv1d: Fp8Conv1d, nn.Conv2d: Fp8Conv2d,
        nn.Embedding: Fp8Embedding, nn.MultiheadAttention: Fp8MultiheadAttention,
        nn.RNN: Fp8RNN, nn.LSTM: Fp8LSTM, nn.GRU: Fp8GRU}


# the methods through which a torch layer computes: a subclass overriding one of them
# computes something else than the FP8 layer would (the FP8 forward never calls them)
_COMPUTES: dict[type, tuple[str, ...]] = {nn.Conv1d: ("forward", "_conv_forward"),
                                          nn.Conv2d: ("forward", "_conv_forward")}


def _base_of(m: nn.Module) -> type | None:
    for base in _FP8:
        if isinstance(m, base):
            return base
    return None


def _why_not(m: nn.Module, base: type) -> str | None:
    """None if ``m`` (an instance of ``base``) can be converted, else the reason."""
    fp8_cls = _FP8[base]
    if not isinstance(m, fp8_cls):
        for meth in _COMPUTES.get(base, ("forward",)):
            if getattr(type(m), meth) is not getattr(base, meth):
                return f"a subclass of {base.__name__} with its own {meth}"
    if isinstance(m, nn.modules.lazy.LazyModuleMixin):
        return "a lazy module: convert after its first forward"
    if base is nn.Embedding:
        opts = [o for o, on in (("max_norm", m.max_norm is not None),
                                ("scale_grad_by_freq", m.scale_grad_by_freq),
                                ("sparse", m.sparse)) if on]
        if opts:
            return f"{', '.join(opts)} not emulated"
    return None


def _below(name: str, prefix: str) -> bool:
    """Whether the module path ``name`` lies strictly inside the module at ``prefix``
    (``""`` is the model itself, which holds every other path)."""
    return name.startswith(prefix + ".") if prefix else name != ""


def _owned(m: nn.Module) -> list[str]:
    """The names of the parameters ``m`` computes with: its own, and the tensors it
    parametrizes (``torch.nn.utils.parametrize``), whose originals live in a child."""
    names = [k for k, p in m._parameters.items() if p is not None]
    if parametrize.is_parametrized(m):
        names += [k for k in m.parametrizations if k not in names]
    return names


def _plan(module: nn.Module, module_filter: Callable[[nn.Module, str], bool] | None
          ) -> tuple[list[tuple[str, nn.Module, type]], dict[str, list[ReportEntry]]]:
    """The layers to convert (path, module, torch base) in registration order, and the
    report's other categories."""
    targets: list[tuple[str, nn.Module, type]] = []
    other: dict[str, list[ReportEntry]] = {k: [] for k in ("unsupported", "unknown",
                                                           "excluded", "float32")}
    inside: list[str] = []  # converted attention modules: their children are theirs
    for name, m in module.named_modules(remove_duplicate=True):
        if any(_below(name, p) for p in inside):
            continue
        if isinstance(m, parametrize.ParametrizationList):
            # its ``original`` tensors are the parametrized module's own (counted there)
            continue
        entry = ReportEntry(name, type(m).__name__, "")
        base = _base_of(m)
        if base is not None:
            reason = _why_not(m, base)
            if reason is not None:
                other["unsupported"].append(ReportEntry(name, entry.type, reason))
            elif module_filter is not None and not module_filter(m, name):
                other["excluded"].append(ReportEntry(name, entry.type, "excluded by "
                                                     "module_filter"))
            else:
                targets.append((name, m, base))
            if base is nn.MultiheadAttention:
                inside.append(name)
            continue
        reason = next((r for t, r in _UNSUPPORTED.items() if isinstance(m, t)), None)
        if reason is not None:
            other["unsupported"].append(ReportEntry(name, entry.type, reason))
            continue
        owned = _owned(m)
        if not owned:
            continue
        if isinstance(m, _NO_GEMM):
            other["float32"].append(ReportEntry(name, entry.type, "no GEMM"))
        else:
            owned = ", ".join(owned)
            other["unknown"].append(ReportEntry(
                name, entry.type, f"owns parameters ({owned}) that it uses as written"))
    return targets, other


def _new_mixed(fp8_cls: type, user_cls: type) -> nn.Module:
    """An empty instance of ``_mixed(fp8_cls, user_cls)``, for unpickling (the class is
    made at conversion, so pickle cannot find it by name)."""
    return object.__new__(_mixed(fp8_cls, user_cls))  # type: ignore[no-any-return]


def _reduce_mixed(self: nn.Module, protocol: int) -> object:
    pair = type(self).__dict__.get("_fp8_pair")
    if pair is None:  # a class derived from a mixed one (e.g. by parametrize)
        return object.__reduce_ex__(self, protocol)
    return _new_mixed, pair, self.__getstate__()


@functools.cache
def _mixed(fp8_cls: type, user_cls: type) -> type:
    """The FP8 class for a subclass of a torch layer that keeps the torch ``forward``."""
    return type(f"Fp8{user_cls.__name__}", (fp8_cls, user_cls),
                {"__module__": __name__, "__reduce_ex__": _reduce_mixed,
                 "_fp8_pair": (fp8_cls, user_cls)})


def _reclass(m: nn.Module, make: Callable[[type], type]) -> None:
    """Give ``m`` the class ``make(cls)``, ``cls`` being its class before parametrization.

    ``torch.nn.utils.parametrize`` gives a parametrized module a class of its own, derived
    from its original class and holding the properties of the parametrized tensors, and
    ``remove_parametrizations`` deletes those properties from the module's class and puts
    back its first base. So a parametrized module gets a copy of that class derived from
    the FP8 class: removing the parametrization later leaves the FP8 layer (putting the
    parametrized class under the FP8 one made ``remove_parametrizations`` fail with an
    AttributeError)."""
    if parametrize.is_parametrized(m):
        pcls = type(m)
        inner = make(pcls.__bases__[0])
        body = {k: v for k, v in pcls.__dict__.items() if k not in ("__dict__", "__weakref__")}
        m.__class__ = type(f"Parametrized{inner.__name__}", (inner,), body)
    else:
        m.__class__ = make(type(m))


def _swap(m: nn.Module, base: type, cfg: object) -> None:
    fp8_cls = _FP8[base]
    if not isinstance(m, fp8_cls):
        _reclass(m, lambda cls: fp8_cls if cls is base else _mixed(fp8_cls, cls))
    m.cfg = cfg  # type: ignore[assignment]


def _has_fp8_part(layer: nn.Module) -> bool:
    """Whether an encoder layer's attention or feed-forward layers are converted."""
    return any(isinstance(getattr(layer, n, None), (Fp8MultiheadAttention, Fp8Linear))
               for n in ("self_attn", "linear1", "linear2"))


def _fix_transformer_layers(module: nn.Module) -> None:
    """Encoder layers with a converted attention or feed-forward layer compute through
    their submodules only, and encoders holding them keep their input a dense tensor.

    torch's encoder-layer forward has a fused kernel (eval mode without gradients) that
    reads every weight itself, so it would compute the converted layers in float32. A
    layer keeping that forward becomes :class:`Fp8TransformerEncoderLayer`. Every such
    layer also gets ``activation_relu_or_gelu = 0``: the flag by which torch's layer
    forward (still called by a subclass with its own forward) knows whether its kernel has
    the activation, and by which an ``nn.TransformerEncoder`` built from the layer later
    (it copies its layer) decides whether it may pack its input into a nested tensor,
    which the FP8 layers cannot read. Nothing else reads it."""
    for m in module.modules():
        if isinstance(m, nn.TransformerEncoderLayer) and _has_fp8_part(m):
            if (type(m).forward is nn.TransformerEncoderLayer.forward
                    and not isinstance(m, Fp8TransformerEncoderLayer)):
                _reclass(m, lambda cls: Fp8TransformerEncoderLayer
                         if cls is nn.TransformerEncoderLayer
                         else _mixed(Fp8TransformerEncoderLayer, cls))
            m.activation_relu_or_gelu = 0
    for m in module.modules():
        if isinstance(m, nn.TransformerEncoder) and any(
                isinstance(layer, nn.TransformerEncoderLayer) and _has_fp8_part(layer)
                for layer in m.layers):
            m.use_nested_tensor = False


def _converted_entries(module: nn.Module) -> list[ReportEntry]:
    out = []
    for name, m in module.named_modules():
        cfg = getattr(m, "cfg", None)
        if isinstance(m, tuple(_FP8.values())) and cfg is not None:
            out.append(ReportEntry(name, type(m).__name__,
                                   f"data {cfg.data.name}, accumulation {cfg.acc.name}, "
                                   f"chunk {cfg.chunk}, {cfg.mode} mode, loss scale "
                                   f"{cfg.loss_scale:g}"))
    return out


_FILTER = Predicate(callable, "a callable (module, name) -> bool")


def fp8_report(module: nn.Module, *,
               module_filter: Callable[[nn.Module, str], bool] | None = None) -> Fp8Report:
    """What runs in emulated FP8 in ``module`` and what does not (see :class:`Fp8Report`).

    Works on any model, converted or not; ``module_filter`` (as for
    :func:`convert_to_fp8`) sorts the layers it rejects into ``excluded``. A convertible
    layer that is not converted counts as ``excluded``."""
    check("module", module, InstanceOf(nn.Module, "an nn.Module"))
    check("module_filter", module_filter, _FILTER, None)
    targets, other = _plan(module, module_filter)
    converted = _converted_entries(module)
    done = {e.path for e in converted}
    # a layer converted earlier runs in FP8 whatever the filter says now: converted only
    other["excluded"] = [e for e in other["excluded"] if e.path not in done]
    other["excluded"] += [ReportEntry(n, type(m).__name__, "not converted")
                          for n, m, _ in targets if n not in done]
    other["excluded"].sort(key=lambda e: e.path)
    return Fp8Report(converted=tuple(converted),
                     **{k: tuple(v) for k, v in other.items()})


def convert_to_fp8(module: nn.Module, recipe: Fp8Recipe | None = None, *,
                   module_filter: Callable[[nn.Module, str], bool] | None = None) -> nn.Module:
    """Convert the GEMM layers of ``module`` to the FP8 recipe, in place; returns ``module``.

    Parameters
    ----------
    module : the model (or a single layer), converted in place. Converted: ``nn.Linear``,
        ``nn.Conv1d``, ``nn.Conv2d`` (any groups, padding and padding mode),
        ``nn.Embedding`` (without ``max_norm``/``scale_grad_by_freq``/``sparse``),
        ``nn.MultiheadAttention`` as a whole (so ``nn.TransformerEncoderLayer``/
        ``DecoderLayer``/``nn.Transformer``), ``nn.RNN``/``nn.LSTM``/``nn.GRU``, and
        subclasses of these that keep the torch ``forward`` (and, for convolutions,
        ``_conv_forward``). Each keeps its identity, parameters, hooks and training mode.
    recipe : an :class:`Fp8Recipe` (default: the paper's). Converting a converted model
        again applies the new recipe to all its FP8 layers that ``module_filter`` selects;
        FP8 layers the filter leaves out keep the recipe they had.
    module_filter : ``fn(module, fully_qualified_name) -> bool``; only layers for which it
        returns True are converted (like torchao's ``module_filter_fn``).

    With ``recipe.keep_first_last`` the first and last converted layers (in registration
    order; an attention module counts as one layer) use ``recipe.high_format`` as data
    format. Every module with GEMMs that is not converted (a type or an option the
    emulation does not cover, a subclass with its own ``forward`` or ``_conv_forward``, a
    module type it does not know that owns parameters) is named in an :class:`Fp8ConversionWarning`;
    :func:`fp8_report` lists them all.
    """
    recipe = Fp8Recipe() if recipe is None else recipe
    check("recipe", recipe, InstanceOf(Fp8Recipe, "an Fp8Recipe"))
    check("module", module, InstanceOf(nn.Module, "an nn.Module"))
    check("module_filter", module_filter, _FILTER, None)
    targets, other = _plan(module, module_filter)
    last = len(targets) - 1
    for i, (_, m, base) in enumerate(targets):
        _swap(m, base, recipe.for_layer(recipe.keep_first_last and i in (0, last)))
    _fix_transformer_layers(module)
    left = other["unsupported"] + other["unknown"]
    if left:
        names = "; ".join(f"{e.path or '<model>'} ({e.type}: {e.detail})" for e in left)
        warnings.warn(f"convert_to_fp8 left {len(left)} module(s) in float32: {names}",
                      Fp8ConversionWarning, stacklevel=2)
    return module
