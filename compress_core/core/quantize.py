"""Weight quantization to a few integer levels, and activation fake-quant.

Every quantizer takes the kept (unpruned) weights of one tensor and returns a
``QuantState``: integer codes plus how to decode them. Pruned weights are not
coded at all (the mask says where they are), so they stay exactly zero.

Quantizers, by ``config.quant``:
- ``uniform``: asymmetric affine, ``(q - zero_point) * scale`` over [min, max].
- ``symmetric``: ``q * scale`` over [-max|w|, max|w|], zero point fixed mid-range.
- ``kmeans``: 1-D k-means codebook (weight sharing, Deep Compression), linear init; from
  ``PIN_ZERO_BITS`` up, one centroid is pinned at 0.0 where a group has pruned weights.
- ``ecq``: symmetric's levels, each weight's level chosen for rate + distortion (the
  entropy-coded size) at no more squared error than symmetric.
At 1 bit, uniform and symmetric both mean sign x scale (scale = mean |w|).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .config import QUANT_METHODS
from .record import QuantState, dequantize
from .registry import Registry

Quantizer = Callable[[torch.Tensor, torch.Tensor, int, int], QuantState]
QUANTIZERS: Registry[Quantizer] = Registry("quantization method", QUANT_METHODS)


class QuantizationError(ValueError):
    """A tensor that cannot be quantized as asked; the message says why."""


def _group_stats(values: torch.Tensor, groups: torch.Tensor, n_groups: int, reduce: str):
    out = torch.zeros(n_groups, dtype=torch.float64)
    init = {"amin": float("inf"), "amax": float("-inf"), "sum": 0.0}[reduce]
    out.fill_(init)
    out = out.scatter_reduce(0, groups, values.double(), reduce=reduce, include_self=True)
    return out


def _affine(codes_of, scale: torch.Tensor, zero_point: torch.Tensor, bits, values, groups):
    """Codes for values given per-group scale/zero point, and the resulting state."""
    scale32 = scale.to(torch.float32)
    q = torch.round(values / scale32[groups]) + zero_point[groups]
    codes = q.clamp(*codes_of).to(torch.int64)
    return QuantState("affine", bits, codes, groups, scale=scale32, zero_point=zero_point)


@QUANTIZERS.register("uniform")
def uniform(values: torch.Tensor, groups: torch.Tensor, n_groups: int, bits: int) -> QuantState:
    """Asymmetric affine: 2**bits equal steps from each group's min to its max."""
    if bits == 1:
        return sign_scale(values, groups, n_groups)
    lo = _group_stats(values, groups, n_groups, "amin")
    hi = _group_stats(values, groups, n_groups, "amax")
    empty = torch.isinf(lo)
    lo[empty], hi[empty] = 0.0, 0.0
    levels = 2**bits - 1
    scale = (hi - lo) / levels
    flat = scale == 0
    # A constant group c is coded exactly: scale |c| (or 1 for 0) and one code.
    scale[flat] = torch.where(lo[flat] != 0, lo[flat].abs(), torch.ones_like(lo[flat]))
    zero_point = torch.round(-lo / scale).to(torch.int64)
    zero_point[flat] = -torch.sign(lo[flat]).to(torch.int64)
    return _affine((0, levels), scale, zero_point, bits, values, groups)


@QUANTIZERS.register("symmetric")
def symmetric(values: torch.Tensor, groups: torch.Tensor, n_groups: int, bits: int) -> QuantState:
    """Symmetric: levels -m..m times scale (m = 2**(bits-1) - 1), zero exactly representable."""
    if bits == 1:
        return sign_scale(values, groups, n_groups)
    half = 2 ** (bits - 1)
    amax = _group_stats(values.abs(), groups, n_groups, "amax").clamp_min(0.0)
    scale = amax / (half - 1)
    scale[scale == 0] = 1.0
    zero_point = torch.full((n_groups,), half, dtype=torch.int64)
    return _affine((1, 2 * half - 1), scale, zero_point, bits, values, groups)


def sign_scale(values: torch.Tensor, groups: torch.Tensor, n_groups: int) -> QuantState:
    """1 bit: sign(w) x mean|w| per group (BinaryConnect / XNOR-Net)."""
    total = _group_stats(values.abs(), groups, n_groups, "sum")
    count = torch.bincount(groups, minlength=n_groups).clamp_min(1)
    scale = (total / count).to(torch.float32)
    codebook = torch.stack([-scale, scale], dim=1)
    codes = (values >= 0).to(torch.int64)
    return QuantState("codebook", 1, codes, groups, codebook=codebook)


@QUANTIZERS.register("ecq")
def ecq(values: torch.Tensor, groups: torch.Tensor, n_groups: int, bits: int) -> QuantState:
    """Entropy-constrained uniform quantization (Chou, Lookabaugh & Gray 1989; Choi et al. 2017).

    The levels are symmetric's (a step per group, zero exact), but each weight
    takes the level that minimises ``error**2 + lam * step**2 * -log2 p(level)``,
    with ``p`` re-estimated from the assignment, so rare levels give way to
    common ones and the entropy-coded codes shrink. At symmetric's own step,
    nearest rounding already has the least error, so a finer step (x 3/4, 1/2:
    less error in the bulk, tails clipped) buys the room that ``lam`` spends on
    rate. The (step, ``lam``) with the smallest order-0 entropy whose squared
    error is at most symmetric's at the same bits wins, so it is never worse
    than symmetric on either count.
    """
    base = symmetric(values, groups, n_groups, bits)
    if bits == 1 or not len(values):
        return base
    budget = float(((dequantize(base) - values) ** 2).sum())
    best = (_entropy(base.codes), base)
    for shrink in (0.75, 0.5):
        scale = (base.scale.double() * shrink).to(torch.float32)
        for lam in (0.0, 0.05, 0.1, 0.2, 0.4):
            q = _ecsq(values, groups, scale, base.zero_point, bits, lam)
            if float(((dequantize(q) - values) ** 2).sum()) > budget:
                break  # a larger lam only adds error
            h = _entropy(q.codes)
            if h < best[0]:
                best = (h, q)
    return best[1]


def _entropy(codes: torch.Tensor) -> float:
    counts = torch.bincount(codes).double()
    counts = counts[counts > 0]
    return float(-(counts * torch.log2(counts / counts.sum())).sum())


def _ecsq(values, groups, scale, zero_point, bits, lam: float, iters: int = 3) -> QuantState:
    """Assign each value to one of its 5 nearest levels by rate + distortion, ``iters`` times."""
    state = _affine((1, 2**bits - 1), scale, zero_point, bits, values, groups)
    step = scale[groups].double()
    offsets = torch.arange(-2, 3)
    cand = (state.codes[:, None] + offsets).clamp(1, 2**bits - 1)
    level = (cand - zero_point[groups][:, None]).double() * step[:, None]
    dist = (level - values.double()[:, None]) ** 2
    for _ in range(iters if lam else 0):
        freq = torch.bincount(state.codes, minlength=2**bits).double() + 1e-3
        rate = -torch.log2(freq / freq.sum())[cand]
        pick = (dist + lam * step[:, None] ** 2 * rate).argmin(dim=1)
        codes = cand.gather(1, pick[:, None]).squeeze(1)
        if torch.equal(codes, state.codes):
            break
        state.codes = codes
    return state


@QUANTIZERS.register("kmeans")
def kmeans(
    values: torch.Tensor,
    groups: torch.Tensor,
    n_groups: int,
    bits: int,
    iters: int = 25,
    zero: torch.Tensor | None = None,
) -> QuantState:
    """1-D k-means with 2**bits shared values per group, linearly initialised.

    All groups run at once: values are normalised to [0, 1] per group and
    shifted by 2 * group, so one sorted search assigns every weight. ``zero``
    (bool per group) pins one centroid of those groups at exactly 0.0: after
    each update the centroid nearest to zero is put back on it (the range is
    widened to take in 0), so the group's pruned weights are that shared value;
    it ends up as entry 0, the other entries sorted after it.
    """
    k = 2**bits
    lo = _group_stats(values, groups, n_groups, "amin")
    hi = _group_stats(values, groups, n_groups, "amax")
    lo[torch.isinf(lo)], hi[torch.isinf(hi)] = 0.0, 0.0
    if zero is not None:
        lo[zero], hi[zero] = lo[zero].clamp_max(0.0), hi[zero].clamp_min(0.0)
    span = (hi - lo).clamp_min(1e-30)
    x = (values.double() - lo[groups]) / span[groups] + 2.0 * groups
    offsets = 2.0 * torch.arange(n_groups, dtype=torch.float64)
    centroids = torch.linspace(0, 1, k, dtype=torch.float64).repeat(n_groups, 1) + offsets[:, None]
    pin = None if zero is None else _Pin(zero, -lo / span + offsets)
    if pin is not None:
        centroids = pin(centroids)
    for _ in range(iters):
        assign = _nearest(x, centroids)
        sums = torch.zeros(n_groups * k, dtype=torch.float64).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=n_groups * k).double()
        moved = torch.where(counts > 0, sums / counts.clamp_min(1), centroids.reshape(-1))
        moved = moved.view(n_groups, k).sort(dim=1).values
        if pin is not None:
            moved = pin(moved)
        if torch.equal(moved, centroids):
            break
        centroids = moved
    assign = _nearest(x, centroids)
    codebook = ((centroids - offsets[:, None]) * span[:, None] + lo[:, None]).to(torch.float32)
    codes = assign - groups * k
    if pin is not None:
        codebook[pin.at(centroids)] = 0.0  # exactly +0.0, whatever the rounding above gave
        codebook, codes = pin.first(codebook, codes, groups)
    return QuantState("codebook", bits, codes, groups, codebook=codebook)


class _Pin:
    """Puts the centroid nearest to each pinned group's zero back on it (sorted order kept:
    the nearest centroid moves only towards its neighbours' side of zero, never past them)."""

    def __init__(self, zero: torch.Tensor, where: torch.Tensor):
        self.zero, self.where = zero, where  # bool [n_groups]; 0.0 normalised [n_groups]

    def __call__(self, centroids: torch.Tensor) -> torch.Tensor:
        nearest = (centroids - self.where[:, None]).abs().argmin(dim=1)
        rows = self.zero.nonzero().view(-1)
        out = centroids.clone()
        out[rows, nearest[rows]] = self.where[rows]
        return out

    def at(self, centroids: torch.Tensor) -> torch.Tensor:
        """Where the pinned zeros are, [n_groups, k]."""
        return (centroids == self.where[:, None]) & self.zero[:, None]

    def first(self, codebook: torch.Tensor, codes: torch.Tensor, groups: torch.Tensor):
        """The codebook with each pinned group's zero moved to entry 0 (the others keep their
        order), and the codes renumbered to match: the zero is then one symbol in every
        channel, which the artifact codes the pruned weights as (format 5)."""
        k = codebook.shape[1]
        zero = (codebook == 0) & ~torch.signbit(codebook) & self.zero[:, None]
        at = torch.where(zero.any(dim=1), zero.to(torch.int8).argmax(dim=1), 0)  # first +0.0
        new = torch.arange(k)[None, :]
        old = torch.where(new == 0, at[:, None], torch.where(new <= at[:, None], new - 1, new))
        p = at[groups]
        codes = torch.where(codes == p, 0, torch.where(codes < p, codes + 1, codes))
        return codebook.gather(1, old), codes


def _nearest(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index (flattened over groups) of the nearest centroid for each value."""
    k = centroids.shape[1]
    flat = centroids.reshape(-1)
    mids = (flat[1:] + flat[:-1]) / 2
    idx = torch.searchsorted(mids, x)
    # searchsorted over all groups can land past a group's last centroid: clamp into it.
    group = torch.div(x, 2.0, rounding_mode="floor").to(torch.int64)
    return idx.clamp(group * k, group * k + k - 1)


# From this many bits up, k-means pins an exact 0.0 centroid in each group (channel, or the
# tensor) that has pruned weights, so they are that code and the artifact stores no positions
# (format 5's codebook zero level). At 2 bits one of 4 levels is too much to give up.
PIN_ZERO_BITS = 3
PIN_ZERO_METHODS = ("kmeans",)  # quantizers that take ``zero=``: the groups to pin at 0.0


def quantize_tensor(
    weight: torch.Tensor,
    mask: torch.Tensor | None,
    bits: int,
    method: str,
    per_channel: bool,
    pin_zero: bool = True,
) -> QuantState:
    """Quantize the kept entries of one weight tensor.

    ``pin_zero``: at ``PIN_ZERO_BITS`` or more, a k-means codebook keeps an exact 0.0
    level in every group with pruned weights (Deep Compression's replay passes False,
    as the paper clusters the kept weights only).

    Example:
        >>> q = quantize_tensor(w, mask=None, bits=4, method="kmeans", per_channel=False)
        >>> len(set(dequantize(q).tolist())) <= 16
    """
    if not torch.isfinite(weight).all():
        raise QuantizationError("weights contain NaN or Inf; fix or retrain the model first")
    # On the CPU wherever the weights are: codes are the record's plain data, and the same
    # code path on every device keeps artifacts bit-identical.
    w = weight.detach().to("cpu", torch.float32)
    mask = None if mask is None else mask.cpu()
    flat = w.reshape(-1)
    kept = torch.arange(flat.numel()) if mask is None else mask.reshape(-1).nonzero().view(-1)
    values = flat[kept]
    if per_channel and w.dim() > 1:
        n_groups = w.shape[0]
        groups = torch.div(kept, flat.numel() // n_groups, rounding_mode="floor")
    else:
        n_groups, groups = 1, torch.zeros_like(kept)
    pin = pin_zero and bits >= PIN_ZERO_BITS and method in PIN_ZERO_METHODS
    if pin and mask is not None and not mask.all():
        pruned = ~mask.reshape(n_groups, -1)
        return QUANTIZERS[method](values, groups, n_groups, bits, zero=pruned.any(dim=1))
    return QUANTIZERS[method](values, groups, n_groups, bits)


FLOAT32_MANTISSA = 23  # mantissa bits of a float32: rounding to these changes nothing


def round_mantissa(t: torch.Tensor, bits: int) -> torch.Tensor:
    """float32 values rounded to ``bits`` mantissa bits (nearest, ties to even), as float32.

    The low ``23 - bits`` bits of every value become zero, so the stored floats stay
    exact while a byte-plane LZMA squeezes those planes to almost nothing: 7 bits is
    bfloat16's precision (relative error at most 2**-8). A finite value stays finite;
    infinities and NaN are kept.

    Example:
        >>> round_mantissa(torch.tensor([1.0 + 2**-10]), 7)  # tensor([1.])
    """
    if not 0 <= bits <= FLOAT32_MANTISSA:
        raise ValueError(f"mantissa bits must be 0..{FLOAT32_MANTISSA}; got {bits!r}")
    x = t.detach().to(torch.float32).contiguous()
    drop = FLOAT32_MANTISSA - bits
    if drop == 0:
        return x.clone()
    raw = x.view(torch.int32).to(torch.int64)
    odd = (raw >> drop) & 1
    near = (raw + (1 << (drop - 1)) - 1 + odd) >> drop << drop  # round half to even
    out = near.to(torch.int32).view(torch.float32)  # a carry into the exponent is exact
    # Near float32's largest value rounding up would overflow: cut the bits off instead.
    cut = (raw >> drop << drop).to(torch.int32).view(torch.float32)
    out = torch.where(torch.isfinite(out), out, cut)
    return torch.where(torch.isfinite(x), out, x)


# --- activations -------------------------------------------------------------


class ActivationQuant:
    """A forward pre-hook that fake-quantizes a module's input (asymmetric affine)."""

    def __init__(self, bits: int, scale: float, zero_point: int):
        self.bits, self.scale, self.zero_point = bits, scale, zero_point

    def __call__(self, module: nn.Module, inputs: tuple) -> tuple:
        x = inputs[0]
        q = torch.clamp(torch.round(x / self.scale) + self.zero_point, 0, 2**self.bits - 1)
        return ((q - self.zero_point) * self.scale,) + tuple(inputs[1:])


def activation_params(lo: float, hi: float, bits: int) -> dict:
    """Scale and zero point that cover [lo, hi] (always including 0) with 2**bits levels."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / (2**bits - 1) or 1.0
    return {"bits": bits, "scale": float(scale), "zero_point": int(round(-lo / scale))}


def calibrate_activations(
    model: nn.Module, names: list[str], batches, bits: int, method: str = "minmax"
) -> dict[str, dict]:
    """Observe the inputs of the named modules on a few batches and choose ranges.

    ``minmax`` takes the observed extremes; ``percentile`` the 0.01th and
    99.99th percentiles (averaged over batches), which ignores rare outliers.
    """
    modules = dict(model.named_modules())
    seen: dict[str, list[tuple[float, float]]] = {n: [] for n in names}

    def observer(name):
        def hook(module, inputs):
            x = inputs[0].detach().reshape(-1).float()
            if method == "percentile":
                sample = x[torch.randperm(x.numel(), generator=gen)[:100_000]]
                lo, hi = torch.quantile(sample, torch.tensor([1e-4, 1 - 1e-4])).tolist()
            else:
                lo, hi = x.min().item(), x.max().item()
            seen[name].append((lo, hi))

        return hook

    gen = torch.Generator().manual_seed(0)
    handles = [modules[n].register_forward_pre_hook(observer(n)) for n in names]
    try:
        with torch.inference_mode():
            for x in batches:
                model(x)
    finally:
        for h in handles:
            h.remove()
    params = {}
    for name, ranges in seen.items():
        if not ranges:
            continue
        lows, highs = zip(*ranges, strict=True)
        if method == "percentile":
            lo, hi = sum(lows) / len(lows), sum(highs) / len(highs)
        else:
            lo, hi = min(lows), max(highs)
        params[name] = activation_params(lo, hi, bits)
    return params


def install_activation_quant(model: nn.Module, activations: dict[str, dict]) -> nn.Module:
    """Add input fake-quant hooks to the named modules (in place)."""
    modules = dict(model.named_modules())
    for name, p in activations.items():
        modules[name].register_forward_pre_hook(
            ActivationQuant(p["bits"], p["scale"], p["zero_point"])
        )
    return model


__all__ = [
    "QUANTIZERS",
    "QuantizationError",
    "quantize_tensor",
    "dequantize",
    "round_mantissa",
    "calibrate_activations",
    "install_activation_quant",
]
