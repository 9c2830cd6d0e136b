"""``SiameseModel``: the only place that calls the user's encoder and distance.

The audit never changes the model: no gradients, ``eval()`` during the pass, and the original
``training`` flag of every module restored afterwards, also when the encoder raises.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from .errors import EncoderError, ModelError
from .scoring import Scorer
from .validation import check_choice, check_positive_int

__all__ = ["SiameseModel", "euclidean_distance", "state_fingerprint"]


def euclidean_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise euclidean distance of two embedding batches (B, d) -> (B,)."""
    return torch.linalg.vector_norm(a - b, dim=1)


def state_fingerprint(module: torch.nn.Module) -> str:
    """A hash of every parameter and buffer, bit for bit (used to prove the model is untouched)."""
    h = hashlib.blake2b(digest_size=16)
    for key, value in sorted(module.state_dict().items()):
        h.update(key.encode())
        t = value.detach().cpu().contiguous().reshape(-1)
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class SiameseModel:
    """The user's Siamese network as gapdiag calls it.

    Parameters
    ----------
    module : torch.nn.Module
        The network. Never modified.
    encode : str or callable, optional
        Method name on ``module`` or a callable ``(module_inputs (B, ...)) -> embeddings (B, d)``.
        Default: ``module.encode`` if it exists, else ``module.forward``.
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
        self.module = module
        self.kind = check_choice(kind, name="kind", choices=("distance", "similarity"))
        self.batch_size = check_positive_int(batch_size, name="batch_size")
        self.encode = encode
        self.distance = distance
        self.device = device
        self._encode_fn = self._resolve_encode(encode)
        self._distance_fn = self._resolve_distance(distance)
        self.scorer = Scorer(kind)
        self.encoder_calls = 0
        self.items_encoded = 0
        # integer inputs go to the encoder as they are (token ids); set when the encoder refuses them
        self.cast_inputs_to_float = False

    def __repr__(self) -> str:
        return f"SiameseModel({type(self.module).__name__}, kind={self.kind!r}, device={self.device!r})"

    # -- resolution ---------------------------------------------------------------------------------
    def _resolve_encode(self, encode: str | Callable | None) -> Callable:
        if encode is None:
            encode = "encode" if callable(getattr(self.module, "encode", None)) else "forward"
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
        for t in list(self.module.parameters()) + list(self.module.buffers()):
            return t.device
        return torch.device("cpu")

    @contextlib.contextmanager
    def frozen(self, mode: str = "eval") -> Iterator[torch.nn.Module]:
        """Yield the module in ``mode`` ("eval" or "train") with gradients off; restore every flag after.

        A "train"-mode request works on a deep copy so that BatchNorm running statistics of the user's
        module never move.
        """
        check_choice(mode, name="mode", choices=("eval", "train"))
        target = self.device
        module = self.module
        if mode == "train" or (target != "auto" and torch.device(target) != self.module_device()):
            module = copy.deepcopy(self.module)
            if target != "auto":
                module = module.to(target)
        flags = [(m, m.training) for m in module.modules()]
        try:
            module.train(mode == "train")
            with torch.no_grad():
                yield module
        finally:
            for m, flag in flags:
                m.training = flag

    def _device_of(self, module: torch.nn.Module) -> torch.device:
        for t in list(module.parameters()) + list(module.buffers()):
            return t.device
        return torch.device("cpu")

    # -- calls --------------------------------------------------------------------------------------
    def embed_batch(self, module: torch.nn.Module, x: torch.Tensor, *, where: str = "") -> np.ndarray:
        """Embed one input batch (B, ...) with ``module`` (from :meth:`frozen`) -> float32 array (B, d)."""
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
                hint = (
                    " If the module's forward() takes both inputs of a pair, pass encode= the method (or a callable)"
                    " that embeds one input, e.g. SiameseModel(net, encode='forward_one')."
                )
            raise EncoderError(
                f"The encoder raised on {where or 'a batch'} (inputs of shape {tuple(x.shape)}, dtype "
                f"{str(x.dtype).replace('torch.', '')}): {type(exc).__name__}: {exc}.{hint}"
            ) from exc
        self.encoder_calls += 1
        self.items_encoded += int(x.shape[0])
        if isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise EncoderError(
                f"The encoder returned {type(out).__name__} on {where or 'a batch'}; it must return a tensor of shape (B, d)."
            )
        if out.dim() < 2 or out.shape[0] != x.shape[0]:
            raise EncoderError(
                f"The encoder returned shape {tuple(out.shape)} for {x.shape[0]} inputs on {where or 'a batch'}; "
                "expected (B, d) with one embedding row per input."
            )
        emb = out.detach().reshape(out.shape[0], -1).to(torch.float32).cpu().numpy()
        if not np.all(np.isfinite(emb)):
            raise EncoderError(
                f"The encoder returned NaN or inf embeddings on {where or 'a batch'}; check the inputs' scale and the model's weights."
            )
        return emb

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

    def raw_scores(self, a: np.ndarray, b: np.ndarray, chunk: int = 65536) -> np.ndarray:
        """The user's distance on embedding rows ``a`` (P, d) and ``b`` (P, d) -> raw scores (P,) float64."""
        out = np.empty(a.shape[0], dtype=np.float64)
        dev = self.module_device()
        with torch.no_grad():
            for s in range(0, a.shape[0], chunk):
                ta = torch.from_numpy(np.ascontiguousarray(a[s : s + chunk])).to(dev)
                tb = torch.from_numpy(np.ascontiguousarray(b[s : s + chunk])).to(dev)
                try:
                    r = self._distance_fn(ta, tb)
                except Exception as exc:
                    raise ModelError(
                        f"The distance function raised on embeddings of shape {tuple(ta.shape)}: {type(exc).__name__}: {exc}"
                    ) from exc
                r = torch.as_tensor(r).detach().reshape(-1).to(torch.float64).cpu().numpy()
                if r.shape[0] != ta.shape[0]:
                    raise ModelError(
                        f"The distance function returned {r.shape[0]} scores for {ta.shape[0]} pairs; it must return one score per row (B,)."
                    )
                out[s : s + chunk] = r
        if not np.all(np.isfinite(out)):
            raise ModelError("The distance function returned NaN or inf scores; check it on the embeddings.")
        return out

    def fingerprint(self) -> str:
        """Hash of the module's state and of how it is called (cache key)."""
        how = f"{type(self.module).__qualname__}|{self.encode!r}|{getattr(self._distance_fn, '__qualname__', repr(self._distance_fn))}"
        return hashlib.blake2b((state_fingerprint(self.module) + how).encode(), digest_size=16).hexdigest()


def _rebind(fn: Callable, original: Any, copy_: Any) -> Callable:
    """A bound method of ``original`` re-bound to its deep copy; other callables as they are."""
    if getattr(fn, "__self__", None) is original:
        return getattr(copy_, fn.__name__)
    return fn
