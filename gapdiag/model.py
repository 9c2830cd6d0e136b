"""``SiameseModel``: the only place that calls the user's encoder and distance.

The audit never changes the model: no gradients, ``eval()`` during the pass, and afterwards every
module's ``training`` flag, every parameter and buffer (bit for bit, also one the encoder wrote to or
replaced), every ``.grad`` and ``requires_grad`` restored, also when the encoder raises. The caller's
torch random stream is forked, so an encoder that draws random numbers leaves it where it was.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import inspect
import marshal
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from ._threads import exclusive
from .errors import EncoderError, ModelError
from .scoring import Scorer
from .validation import check_choice, check_device, check_positive_int

__all__ = ["SiameseModel", "euclidean_distance", "state_fingerprint", "code_fingerprint"]


def euclidean_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise euclidean distance of two embedding batches (B, d) -> (B,)."""
    return torch.linalg.vector_norm(a - b, dim=1)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of two embedding batches (B, d) -> (B,)."""
    return torch.nn.functional.cosine_similarity(a, b, dim=1)


#: the scores a pair forward() is recognised as returning when no distance was given (see check_pair_forward)
KNOWN_PAIR_SCORES = {
    "euclidean distance": euclidean_distance,
    "squared euclidean distance": lambda a, b: ((a - b) ** 2).sum(dim=1),
    "L1 distance": lambda a, b: (a - b).abs().sum(dim=1),
    "cosine similarity": cosine_similarity,
    "cosine distance": lambda a, b: 1 - cosine_similarity(a, b),
}


def _canonical(obj: Any, h: Any) -> bool:
    """Feed a canonical byte form of ``obj`` (tensors, arrays, numbers, strings, containers) to ``h``.

    Returns False for an object with no canonical form (its bytes would not identify its value)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return True
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        h.update(f"A{obj.dtype}{obj.shape}".encode() + np.ascontiguousarray(obj).tobytes())
        return True
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, np.generic)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
        return True
    if isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}[{len(obj)}".encode())
        return all(_canonical(v, h) for v in obj)
    if isinstance(obj, Mapping):
        h.update(f"map[{len(obj)}".encode())
        return all(_canonical(k, h) and _canonical(obj[k], h) for k in sorted(obj, key=repr))
    return False


def state_fingerprint(module: torch.nn.Module) -> str:
    """A hash of every parameter, buffer and extra state, bit for bit (proves the model is untouched).

    Extra state (``get_extra_state()``) that has no canonical byte form is hashed by its type only.
    """
    h = hashlib.blake2b(digest_size=16)
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        if not _canonical(value, h):
            h.update(f"opaque:{type(value).__qualname__}".encode())
    return h.hexdigest()


def _code_bytes(fn: Any) -> bytes | None:
    """The compiled code of a function, method, partial or callable object; None when it has none."""
    if isinstance(fn, functools.partial):
        inner = _code_bytes(fn.func)
        h = hashlib.blake2b(digest_size=16)
        ok = inner is not None and _canonical((fn.args, fn.keywords), h)
        return inner + h.digest() if ok else None
    fn = inspect.unwrap(getattr(fn, "__func__", fn))
    code = getattr(fn, "__code__", None)
    if code is None and callable(fn) and not isinstance(fn, type):
        code = getattr(type(fn).__call__, "__code__", None)
    return None if code is None else marshal.dumps(code)


def code_fingerprint(module: torch.nn.Module, encode: Any) -> str | None:
    """A hash of the code that computes embeddings: ``encode`` and the ``forward`` of every module class
    that is not torch's own. None when part of it has no inspectable code (then no cache is trusted)."""
    h = hashlib.blake2b(digest_size=16)
    parts: list[Any] = [encode if callable(encode) else getattr(type(module), encode, None)]
    for cls in sorted({type(m) for m in module.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        h.update(f"{cls.__module__}.{cls.__qualname__};".encode())
        if not cls.__module__.startswith("torch."):
            parts.append(cls.forward)
    for part in parts:
        code = _code_bytes(part)
        if code is None:
            return None
        h.update(code)
    return h.hexdigest()


class _StateGuard:
    """A snapshot of every parameter and buffer slot of a module, restored bit for bit on exit.

    Each slot keeps the tensor object, a CPU copy of its values, its ``requires_grad`` and ``.grad``; on
    restore a replaced tensor is put back, a changed one gets its values back (only when they changed, so
    an untouched tensor's version counter never moves) and slots added during the pass are removed.
    """

    def __init__(self, module: torch.nn.Module):
        self.slots: list[tuple[Any, ...]] = []
        self.names: list[tuple[torch.nn.Module, set[str], set[str]]] = []
        for m in module.modules():
            self.names.append((m, set(m._parameters), set(m._buffers)))
            for table in ("_parameters", "_buffers"):
                for name, t in getattr(m, table).items():
                    saved = None if t is None else t.detach().to("cpu", copy=True)
                    grad = getattr(t, "grad", None)
                    self.slots.append((m, table, name, t, saved, getattr(t, "requires_grad", False), grad))

    def restore(self) -> None:
        for m, table, name, t, saved, requires_grad, grad in self.slots:
            slots = getattr(m, table)
            if slots.get(name) is not t:
                slots[name] = t
            if t is None:
                continue
            if not torch.equal(t.detach().cpu(), saved):
                with torch.no_grad():
                    t.copy_(saved.to(t.device))
            if t.requires_grad != requires_grad and (t.is_leaf or not requires_grad):
                t.requires_grad_(requires_grad)
            if t.grad is not grad:
                t.grad = grad
        for m, params, buffers in self.names:
            for extra in set(m._parameters) - params:
                del m._parameters[extra]
            for extra in set(m._buffers) - buffers:
                del m._buffers[extra]


def _fork_rng(device: torch.device) -> contextlib.AbstractContextManager:
    """Fork torch's random stream of the CPU (and of ``device`` when it is a GPU) for a block."""
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    return torch.random.fork_rng(devices=devices, device_type="cuda")


# the single-input methods of the common Siamese idioms, in the order they are tried when forward() takes a pair:
# PyTorch tutorials' forward_once, siamese-triplet's get_embedding, and the plain names
ONE_INPUT_IDIOMS = ("forward_once", "forward_one", "get_embedding", "embed", "embedding")


def _required_positional(fn: Callable) -> int | None:
    """How many positional arguments ``fn`` (bound) requires; None when its signature cannot be read."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds and p.default is inspect.Parameter.empty)


def _one_input_methods(module: torch.nn.Module) -> list[str]:
    """Methods the module's own classes define (not ``nn.Module``'s) that take exactly one input."""
    names = []
    for cls in type(module).__mro__:
        if cls is torch.nn.Module or not issubclass(cls, torch.nn.Module):
            break
        for name, member in vars(cls).items():
            if name.startswith("_") or name == "forward" or name in names or not inspect.isfunction(member):
                continue
            if _required_positional(getattr(module, name)) == 1:
                names.append(name)
    return names


def _default_encoder_name(module: torch.nn.Module) -> str:
    """``encode`` if the module has it; else, when ``forward`` takes a pair, the first single-input method of
    :data:`ONE_INPUT_IDIOMS` it has; else ``forward``."""
    if callable(getattr(module, "encode", None)):
        return "encode"
    if (_required_positional(module.forward) or 0) >= 2:
        for name in ONE_INPUT_IDIOMS:
            fn = getattr(module, name, None)
            if callable(fn) and not isinstance(fn, torch.nn.Module) and _required_positional(fn) == 1:
                return name
    return "forward"


class SiameseModel:
    """The user's Siamese network as gapdiag calls it.

    Parameters
    ----------
    module : torch.nn.Module
        The network. Never modified. A ``DataParallel`` or ``DistributedDataParallel`` wrapper is looked
        through: the wrapped network is the one called.
    encode : str or callable, optional
        Method name on ``module`` or a callable ``(module_inputs (B, ...)) -> embeddings (B, d)``.
        Default: ``module.encode`` if it exists; else, when ``module.forward`` takes a pair, the first of
        ``forward_once``, ``forward_one``, ``get_embedding``, ``embed``, ``embedding`` that takes one input;
        else ``module.forward``. The report's ``meta["model"]["encode"]`` names the method used.
    distance : callable, optional
        ``(emb_a (B, d), emb_b (B, d)) -> scores (B,)``. Default: ``module.distance`` if it exists, else
        euclidean distance.
    kind : {"distance", "similarity"}
        How *your evaluation* reads the score: "distance" = lower is more similar (``min()``),
        "similarity" = higher is more similar (``max()``). gapdiag checks this against the data (GD302).
    device : "auto", "cpu", "cuda", ...
        "auto" uses the device the module's parameters are on (so the module is never moved). Another
        device embeds with a deep copy on that device.
    batch_size : int
        Items per encoder call.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        encode: str | Callable | None = None,
        distance: Callable | None = None,
        kind: str = "distance",
        device: str = "auto",
        batch_size: int = 256,
    ):
        if not isinstance(module, torch.nn.Module):
            raise ModelError(f"SiameseModel needs a torch.nn.Module; got {type(module).__name__}.")
        # a checkpoint loaded into (Distributed)DataParallel: its encode/forward_once live on the wrapped
        # network, which is called directly (same parameters, one device, the wrapper untouched)
        while isinstance(module, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            module = module.module
        self.module = module
        self.kind = check_choice(kind, name="kind", choices=("distance", "similarity"))
        self.batch_size = check_positive_int(batch_size, name="batch_size")
        self.encode = encode
        self.distance = distance
        self.device = check_device(device)
        self._encode_fn = self._resolve_encode(encode)
        self._distance_fn = self._resolve_distance(distance)
        # where the score comes from, for the report (check_pair_forward may find it is forward's own)
        self.score_source = (
            "distance="
            if distance is not None
            else "module.distance"
            if callable(getattr(module, "distance", None))
            else "euclidean distance of the embeddings (default)"
        )
        self.scorer = Scorer(kind)
        self.encoder_calls = 0
        self.items_encoded = 0
        # integer inputs go to the encoder as they are (token ids); set when the encoder refuses them
        self.cast_inputs_to_float = False
        # embeddings the preflight check computed, by item key (see gapdiag.preflight): not embedded again
        self.preflight_rows: dict[str, np.ndarray] = {}

    @property
    def encoder_name(self) -> str:
        """The method that embeds one input (``"encode"``, ``"forward_once"``...), or "a callable"."""
        return self._encode_target if isinstance(self._encode_target, str) else "a callable"

    @property
    def handed_over_in_train_mode(self) -> bool:
        """The module's own ``training`` flag as the user handed it over (read while no call flips it)."""
        with exclusive():
            return bool(self.module.training)

    def __repr__(self) -> str:
        return f"SiameseModel({type(self.module).__name__}, kind={self.kind!r}, device={self.device!r})"

    # -- resolution ---------------------------------------------------------------------------------
    def _resolve_encode(self, encode: str | Callable | None) -> Callable:
        if encode is None:
            encode = _default_encoder_name(self.module)
        self._encode_target = encode
        if isinstance(encode, str):
            fn = getattr(self.module, encode, None)
            if not callable(fn):
                raise ModelError(
                    f"The module has no method {encode!r}; pass encode= a method name or a callable."
                )
            name = encode
            return lambda module, x: getattr(module, name)(x)
        if callable(encode):
            return lambda module, x: (
                encode(x) if module is self.module else _rebind(encode, self.module, module)(x)
            )
        raise ModelError(f"encode must be a method name or a callable; got {type(encode).__name__}.")

    def _resolve_distance(self, distance: Callable | None) -> Callable:
        if distance is None:
            fn = getattr(self.module, "distance", None)
            return fn if callable(fn) else euclidean_distance
        if not callable(distance):
            raise ModelError(
                f"distance must be callable (emb_a, emb_b) -> scores; got {type(distance).__name__}."
            )
        return distance

    # -- device and mode ----------------------------------------------------------------------------
    def module_device(self) -> torch.device:
        return self._device_of(self.module)

    def check_ready(self) -> None:
        """Raise ``ModelError`` when the module cannot embed as configured (weights on ``meta``, a device this
        host lacks). Called by the preflight check before any input is embedded."""
        check_device(self.device)
        for name, t in list(self.module.named_parameters()) + list(self.module.named_buffers()):
            if torch.nn.parameter.is_lazy(t):
                raise ModelError(
                    f"The module's {name!r} is not initialized yet (a lazy module); run one batch through the "
                    "module, as training does, before auditing it."
                )
            if t.device.type == "meta":
                raise ModelError(
                    f"The module's {name!r} is on the 'meta' device (no weights were loaded); load the "
                    "weights (e.g. module.to_empty(device='cpu') then load_state_dict) before auditing."
                )

    @contextlib.contextmanager
    def frozen(self, mode: str = "eval") -> Iterator[torch.nn.Module]:
        """Yield the module in ``mode`` ("eval" or "train") with gradients off; restore everything after.

        A "train"-mode request, or a ``device`` other than the module's, works on a deep copy so BatchNorm
        running statistics of the user's module never move. On the user's own module every parameter and
        buffer is snapshotted and restored bit for bit, with ``.grad``, ``requires_grad`` and every
        ``training`` flag; torch's random stream is forked.
        """
        check_choice(mode, name="mode", choices=("eval", "train"))
        target = self.device
        with exclusive():
            module = self.module
            if mode == "train" or (target != "auto" and torch.device(target) != self.module_device()):
                module = copy.deepcopy(self.module)
                if target != "auto":
                    module = module.to(target)
            guard = _StateGuard(module) if module is self.module else None
            flags = [(m, m.training) for m in module.modules()]
            try:
                with _fork_rng(self._device_of(module)):
                    module.train(mode == "train")
                    with torch.no_grad():
                        yield module
            finally:
                for m, flag in flags:
                    m.training = flag
                if guard is not None:
                    guard.restore()

    def _device_of(self, module: torch.nn.Module) -> torch.device:
        for t in list(module.parameters()) + list(module.buffers()):
            return t.device
        return torch.device("cpu")

    # -- calls --------------------------------------------------------------------------------------
    def embed_batch(self, module: torch.nn.Module, x: torch.Tensor, *, where: str = "") -> np.ndarray:
        """Embed one input batch (B, ...) with ``module`` (from :meth:`frozen`) -> float32 array (B, d)."""
        where = where or "a batch"
        x = x.to(self._device_of(module))
        if self.cast_inputs_to_float and not torch.is_floating_point(x):
            x = x.to(torch.float32)
        try:
            out = self._encode_fn(module, x)
        except Exception as exc:  # the user's code: report where it broke, keep the cause
            if not torch.is_floating_point(x) and not self.cast_inputs_to_float:
                # integer inputs (uint8 images) to a float model: the user's loop casts them somewhere;
                # do the same once, and remember it for the rest of the audit
                self.cast_inputs_to_float = True
                return self.embed_batch(module, x, where=where)
            hint = ""
            if isinstance(exc, TypeError) and "positional argument" in str(exc):
                own = _one_input_methods(self.module)
                example = own[0] if own else "forward_once"
                hint = (
                    " If the module's forward() takes both inputs of a pair, pass encode= the method (or a callable)"
                    f" that embeds one input, e.g. SiameseModel(net, encode={example!r})"
                    + (f"; the module's methods that take one input: {', '.join(own)}." if own else ".")
                )
            raise EncoderError(
                f"The encoder raised on {where} (inputs of shape {tuple(x.shape)}, dtype "
                f"{str(x.dtype).replace('torch.', '')}): {type(exc).__name__}: {exc}.{hint}"
            ) from exc
        self.encoder_calls += 1
        self.items_encoded += int(x.shape[0])
        return _as_embeddings(out, int(x.shape[0]), where)

    def embed(self, x: torch.Tensor, *, mode: str = "eval") -> np.ndarray:
        """Embed new inputs (B, ...) in batches -> (B, d). For probes that build their own bounded samples."""
        chunks = []
        with self.frozen(mode) as module:
            for start in range(0, x.shape[0], self.batch_size):
                chunks.append(
                    self.embed_batch(
                        module, x[start : start + self.batch_size], where=f"probe sample rows {start}+"
                    )
                )
        return np.concatenate(chunks) if chunks else np.empty((0, 0), np.float32)

    def check_pair_forward(self, module: torch.nn.Module, x: torch.Tensor, emb: np.ndarray) -> None:
        """Make the default score the one the module's own ``forward(x1, x2)`` returns, or refuse.

        Only when no ``distance`` was given and the module has no ``distance`` method, while its ``forward``
        takes a pair: ``forward`` is called on pairs of the preflight items ``x`` (B, ...) (their embeddings
        ``emb`` (B, d)). When it returns one score per pair, that score must be one of
        :data:`KNOWN_PAIR_SCORES` of the embeddings (euclidean, squared euclidean or L1 distance, cosine
        similarity or distance; then that one is used); anything else is a learned head gapdiag cannot call
        on embeddings, and ``ModelError`` asks for ``distance=``. A forward that returns
        embeddings or raises leaves the default (euclidean) in place.
        """
        if self.distance is not None or callable(getattr(self.module, "distance", None)):
            return
        if (_required_positional(module.forward) or 0) < 2 or x.shape[0] < 2:
            return
        ea = torch.from_numpy(np.asarray(emb, dtype=np.float64))
        eb = ea.roll(1, 0)
        if bool(torch.all(ea == eb)):
            return  # identical items: every score fits
        try:
            x = x.to(self._device_of(module))
            out = module(x, x.roll(1, 0))
        except Exception:
            return  # forward is never needed; one that wants more than a pair tells nothing here
        if not isinstance(out, torch.Tensor) or out.numel() != x.shape[0]:
            return  # embeddings (or anything else): the default score stands
        got = out.detach().reshape(-1).to("cpu", torch.float64)
        for name, fn in KNOWN_PAIR_SCORES.items():
            if torch.allclose(fn(ea, eb), got, rtol=1e-3, atol=1e-5):
                self._distance_fn, self.score_source = fn, f"forward(x1, x2) = {name} of the embeddings"
                return
        raise ModelError(
            f"{type(self.module).__name__}.forward(x1, x2) returns one score per pair that is none of "
            f"{', '.join(KNOWN_PAIR_SCORES)} of the {self.encoder_name} embeddings: the pair is scored by a "
            "learned head, which gapdiag must call on two embeddings. Pass it as distance=, e.g. "
            "SiameseModel(net, distance=lambda a, b: net.head(torch.abs(a - b)).squeeze(1), kind='similarity') "
            "with your head's name, and kind= as your evaluation reads the score."
        )

    def raw_scores(self, a: np.ndarray, b: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """The user's distance on embedding rows ``a`` (P, d) and ``b`` (P, d) -> raw scores (P,) float64."""
        out = np.empty(a.shape[0], dtype=np.float64)
        dev = self.module_device()
        with exclusive(), torch.no_grad(), _fork_rng(dev):
            for s in range(0, a.shape[0], chunk):
                ta = torch.from_numpy(np.ascontiguousarray(a[s : s + chunk])).to(dev)
                tb = torch.from_numpy(np.ascontiguousarray(b[s : s + chunk])).to(dev)
                try:
                    r = self._distance_fn(ta, tb)
                except Exception as exc:
                    raise ModelError(
                        f"The distance function raised on embeddings of shape {tuple(ta.shape)}: "
                        f"{type(exc).__name__}: {exc}. It must take two (B, d) batches and return (B,) scores."
                    ) from exc
                out[s : s + chunk] = _as_scores(r, int(ta.shape[0]))
        return out

    def embedding_key(self) -> str | None:
        """Hash of everything the embeddings depend on besides the inputs: weights, buffers, extra state and
        the encoder's code (cache key). None when part of it cannot be hashed (then nothing is cached)."""
        h = hashlib.blake2b(digest_size=16)
        for key, value in sorted(self.module.state_dict().items()):
            h.update(key.encode())
            if not _canonical(value, h):
                return None
        code = code_fingerprint(self.module, self._encode_target)
        if code is None:
            return None
        h.update(f"{type(self.module).__qualname__}|{code}|cast={self.cast_inputs_to_float}".encode())
        return h.hexdigest()


def _as_embeddings(out: Any, n: int, where: str) -> np.ndarray:
    """The encoder's output for ``n`` inputs as a finite float32 array (n, d) with d >= 1, or ``EncoderError``."""
    if isinstance(out, (tuple, list)):
        if not out:
            raise EncoderError(
                f"The encoder returned an empty {type(out).__name__} on {where}; it must return a tensor of "
                "shape (B, d) (or a tuple whose first entry is one)."
            )
        out = out[0]
    if isinstance(out, Mapping):
        raise EncoderError(
            f"The encoder returned a mapping (keys {', '.join(map(str, list(out)[:5]))}) on {where}; pass "
            "encode= a callable that returns the embedding tensor, e.g. lambda x: net(x)['embedding']."
        )
    if not isinstance(out, torch.Tensor):
        raise EncoderError(
            f"The encoder returned {type(out).__name__} on {where}; it must return a tensor of shape (B, d)."
        )
    if out.device.type == "meta":
        raise EncoderError(
            f"The encoder returned a tensor on the 'meta' device on {where}; it holds no values."
        )
    if out.dim() < 2 or out.shape[0] != n:
        raise EncoderError(
            f"The encoder returned shape {tuple(out.shape)} for {n} inputs on {where}; "
            "expected (B, d) with one embedding row per input."
        )
    if math.prod(out.shape[1:]) == 0:
        raise EncoderError(
            f"The encoder returned empty embeddings of shape {tuple(out.shape)} on {where}; each input needs "
            "an embedding of at least one number."
        )
    if out.is_complex():
        raise EncoderError(f"The encoder returned complex embeddings on {where}; return real numbers.")
    emb = out.detach().reshape(n, -1).to(torch.float32).cpu().numpy()
    if not np.all(np.isfinite(emb)):
        raise EncoderError(
            f"The encoder returned NaN or inf embeddings on {where}; check the inputs' scale and the model's weights."
        )
    return emb


def _as_scores(r: Any, n: int) -> np.ndarray:
    """The distance function's output for ``n`` pairs as finite float64 scores (n,), or ``ModelError``."""
    try:
        t = torch.as_tensor(r).detach()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(
            f"The distance function returned {type(r).__name__}, not numbers ({exc}); return a (B,) tensor."
        ) from None
    if t.is_complex() or t.dtype == torch.bool or t.device.type == "meta":
        raise ModelError(
            f"The distance function returned {t.dtype} scores on {t.device}; return real numbers (B,)."
        )
    if t.numel() != n or (t.dim() > 1 and t.shape[0] != n):
        raise ModelError(
            f"The distance function returned shape {tuple(t.shape)} for {n} pairs; it must return one score "
            "per row, shape (B,). Reduce over the embedding dimension (e.g. .sum(dim=1))."
        )
    scores = t.reshape(-1).to(torch.float64).cpu().numpy()
    if not np.all(np.isfinite(scores)):
        bad = int(np.flatnonzero(~np.isfinite(scores))[0])
        raise ModelError(
            f"The distance function returned NaN or inf (row {bad} of {n}); check it on embeddings like these "
            "(e.g. a norm of zero vectors)."
        )
    return scores


def _rebind(fn: Callable, original: Any, copy_: Any) -> Callable:
    """A bound method of ``original`` re-bound to its deep copy; other callables as they are."""
    if getattr(fn, "__self__", None) is original:
        return getattr(copy_, fn.__name__)
    return fn
