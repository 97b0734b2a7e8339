"""SWAP-Score (Peng et al., ICLR 2024), regularised: distinct sample-wise ReLU activation patterns x a size prior.

Follows ``src/metrics/swap.py`` and the driver ``correlation.py`` of pym1024/SWAP @ f6049f7 (the repository's only
driver, for DARTS; its defaults ``--input_samples 16 --repeats 32 --seed 0``):

* input: the first 16 CIFAR-10 training images (unshuffled loader; the train transform is a no-op crop and a
  3-of-3 channel pick, so no augmentation), fed 32 times;
* each repeat re-initialises the network with ``network_weight_gaussian_init``: Conv2d/Linear weights N(0, 1), their
  biases 0, BatchNorm2d/GroupNorm weight 1 and bias 0 (``net.modules()`` order, the RNG stream continuing from one
  repeat to the next); the network stays in train mode (BN batch statistics over the 16 images); no gradients;
* a forward hook on every ``nn.ReLU`` module whose input is 4-D keeps its output; the outputs are flattened per
  sample and concatenated into ``A`` of shape (samples, neurons), ``sign(A)`` is transposed and the number of
  distinct rows (``torch.unique(dim=0)``: distinct per-neuron patterns over the 16 samples) is the SWAP value;
* regularised score = ``mean over the repeats of SWAP x exp(-(Θ - μ)^2 / σ)`` with Θ the parameter count in
  thousands (``count_parameters``: ``named_parameters`` without "auxiliary", / 1e3).

A ReLU output is 0 or positive, so its sign is 0 or 1 and a neuron's pattern is a 16-bit word: we count distinct
words (``bincount`` over 2^16 codes) instead of sorting the (neurons x 16) matrix; the count is the same.

Choices and differences from the official code:

* **μ and σ for NB201 are not in the official code** (its only driver is the DARTS one, unregularised) and we could
  not reach the paper's values; ours are :data:`MU_K` and :data:`SIGMA_K` (see there). The raw mean SWAP, the
  factor and Θ are returned as components, so any other (μ, σ) is a re-weighting of stored scores;
* the images are rows 0..15 of ``ctx.data`` (CIFAR-10 train indices 0..15, the official images) normalised with the
  xautodl constants (the SWAP repo uses 0.49139968, ... / 0.24703233, ...: a difference in the 4th digit);
* the N(0, 1) weights are drawn on the CPU generator and moved to the device, so scores do not depend on the device;
* a non-finite activation (whose sign is NaN, which ``unique`` treats inconsistently) makes the score NaN; a network
  with no hooked ReLU scores 0 (the official ``forward`` returns None there);
* our NB201 network is the xautodl one (ReLU modules inside every ``nor_conv`` op and in ``lastact``), which is the
  network the paper benchmarks; no other difference in which activations are read.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from zcscore.proxies.catalog import Pass
from zcscore.proxies.features import relu_outputs
from zcscore.proxies.registry import pass_runner, proxy

if TYPE_CHECKING:  # the engine imports the registry: no runtime import back
    from zcscore.engine import ArchContext, PassOutputs

SAMPLES = 16  # --input_samples
REPEATS = 32  # --repeats
# Our choice (the official NB201 values were not found): the centre and width of the size prior, in thousands of
# parameters as the official ``count_parameters`` counts them. See the report of issue 11 for the sensitivity.
MU_K = 1500.0
SIGMA_K = 1_000_000.0


def gaussian_reinit(net: nn.Module) -> None:
    """The official ``network_weight_gaussian_init`` with the weights drawn on the CPU generator."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                w = m.weight
                if w.device.type == "cpu" and w.is_contiguous():
                    nn.init.normal_(w)
                else:  # draw in logical order on the CPU, whatever the device or layout
                    w.copy_(nn.init.normal_(torch.empty(w.shape)))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                # the official code assumes affine norms; a non-affine one has nothing to initialise
                if m.weight is not None:
                    nn.init.ones_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def count_parameters_k(net: nn.Module) -> float:
    """The official ``count_parameters``: parameters outside "auxiliary" modules, in thousands."""
    return sum(p.numel() for name, p in net.named_parameters() if "auxiliary" not in name) / 1e3


def regular_factor(params_k: float, mu: float = MU_K, sigma: float = SIGMA_K) -> float:
    """``exp(-(Θ - μ)^2 / σ)`` in float64 (the official count is a NumPy float64, so its tensor is float64)."""
    return math.exp(-((params_k - mu) ** 2) / sigma)


class PatternCounter:
    """Distinct sample-wise sign patterns of the hooked ReLU outputs of one forward (samples <= 24)."""

    def __init__(self, samples: int, device: torch.device) -> None:
        if samples > 24:
            raise ValueError(f"at most 24 samples per pattern word, got {samples}")
        # bit weights 2^i as a float row: a (1 x samples) @ (samples x neurons) product gives each neuron's word,
        # exact in float32 below 2^24
        self.weights = (2.0 ** torch.arange(samples, dtype=torch.float32)).view(1, -1).to(device)
        self.seen = torch.zeros(1 << samples, dtype=torch.bool, device=device)
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=device)
        self.hooked = 0

    def add(self, act: torch.Tensor) -> None:
        """Add one ReLU output ``(samples, ...)`` (neuron order does not matter: a channels-last output is read
        in memory order, without a copy)."""
        x = act.detach()
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            x = x.permute(0, 2, 3, 1)
        flat = x.reshape(x.shape[0], -1)
        if not bool(torch.isfinite(flat.sum())):  # NaN/inf make the sum non-finite; so may an overflow: look closer
            self.nonfinite |= ~torch.isfinite(flat).all()
        codes = (self.weights @ (flat > 0).to(self.weights.dtype)).to(torch.int64)
        self.seen[codes.view(-1)] = True  # sign is 0 or 1 for a ReLU output: a pattern is its bit word
        self.hooked += 1

    @property
    def finite(self) -> bool:
        """Whether every hooked activation was finite."""
        return not bool(self.nonfinite)

    def count(self) -> float:
        """The number of distinct patterns (NaN after a non-finite activation)."""
        return float(int(self.seen.sum().item())) if self.finite else math.nan


def swap_value(net: nn.Module, x: torch.Tensor) -> float:
    """SWAP of one forward of ``x``: distinct sign patterns of the outputs of ReLUs with a 4-D input (0 if none)."""
    counter = PatternCounter(x.shape[0], x.device)
    relu_outputs(net, x, counter.add)
    return counter.count() if counter.hooked or not counter.finite else 0.0


@pass_runner(Pass.SWAP)
def swap_pass(ctx: ArchContext) -> dict[str, float]:
    """32 Gaussian re-inits, one forward of the 16 images each; the mean raw SWAP, Θ and the size factor."""
    net: nn.Module = ctx.net
    x, _ = ctx.data.batch(0, SAMPLES)
    x = ctx.to_device(x)
    values = []
    for _ in range(REPEATS):
        gaussian_reinit(net)
        values.append(swap_value(net, x))
    params_k = count_parameters_k(net)
    return {"swap_raw": sum(values) / len(values), "params_k": params_k, "factor": regular_factor(params_k)}


@proxy("swap")
def swap(outputs: PassOutputs) -> tuple[float, dict[str, float]]:
    """Regularised SWAP: mean over repeats of SWAP x exp(-(Θ-μ)²/σ) (components: raw mean, Θ in K, factor)."""
    res: dict[str, float] = outputs[Pass.SWAP]
    return res["swap_raw"] * res["factor"], dict(res)
