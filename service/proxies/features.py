"""Feature maps read with forward hooks: the default for proxies that need per-block features, with overrides.

Proxies such as AZ-NAS (cell features) and InTrain (layer outputs) read space-specific feature maps: the
named spaces provide them (``extract_cell_features``, ``cell_layers``). For any other module the default
is hook-based and needs nothing from the model:

* :func:`feature_modules` picks the modules whose outputs are the features. With ``names=None`` they are
  the model's top-level children, where a ``ModuleList``/``ModuleDict`` container (never called itself)
  stands for its own children, one level deep: ``stem, cells.0, ..., cells.16, lastact, ...`` for the
  NB201 network, every node for a :class:`~zcscore.spaces.dag_net.DagNet`. A user overrides them by
  module name, as ``net.named_modules()`` spells them (``["layer1", "layer2.1.conv2", "layers.r3"]``);
  ``""`` names the model itself.
* :func:`hooked_features` runs one forward with a forward hook on each of those modules and returns
  ``[x, *outputs]`` in call order: a module that runs twice contributes twice, one that never runs
  contributes nothing. The features stay in the autograd graph of ``x``. A module whose output is a
  tuple or list contributes its first tensor; an output without a tensor is skipped.

Hooks, unlike applying the children in sequence, follow the model's own ``forward`` (skip connections,
functional ops between the children), so the features are the ones the model really computes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

SHOWN_NAMES = 20  # valid names listed in the error for an unknown one


def default_feature_modules(net: nn.Module) -> list[nn.Module]:
    """The top-level children, a ModuleList/ModuleDict replaced by its children (see the module docstring)."""
    out: list[nn.Module] = []
    for child in net.children():
        if isinstance(child, (nn.ModuleList, nn.ModuleDict)):
            out.extend(child.children())
        else:
            out.append(child)
    return out


def feature_modules(net: nn.Module, names: Sequence[str] | None) -> list[nn.Module]:
    """The modules whose outputs are ``net``'s features: the default set, or the modules called ``names``.

    Raises ``KeyError`` naming an unknown module and listing some valid names.
    """
    if names is None:
        return default_feature_modules(net)
    if isinstance(names, str):
        raise TypeError("names must be a sequence of module names, not one string")
    mods: list[nn.Module] = []
    for name in names:
        try:
            mods.append(net.get_submodule(name))
        except AttributeError:
            valid = [n for n, _ in net.named_modules() if n]
            more = f", ... ({len(valid)} in all)" if len(valid) > SHOWN_NAMES else ""
            shown = ", ".join(valid[:SHOWN_NAMES]) + more
            raise KeyError(
                f"{type(net).__name__} has no module named {name!r}; valid names: {shown or '(none)'}"
            ) from None
    return mods


def first_tensor(out: Any) -> torch.Tensor | None:
    """A module output as one tensor: itself, or the first tensor of a tuple/list (None if there is none)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for item in out:
            if isinstance(item, torch.Tensor):
                return item
    return None


Hook = Callable[[nn.Module, Any, Any], None]


def forward_hooked(net: nn.Module, x: torch.Tensor, modules: Iterable[nn.Module], hook: Hook, grad: bool = True) -> Any:
    """One forward of ``net`` on ``x`` with forward ``hook`` on each distinct module of ``modules``; its output.

    ``grad=False`` runs under ``torch.no_grad()``. The hooks are removed even when the forward raises.
    """
    handles = []
    seen: set[int] = set()
    try:
        for mod in modules:
            if id(mod) not in seen:
                seen.add(id(mod))
                handles.append(mod.register_forward_hook(hook))
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            return net(x)
    finally:
        for handle in handles:
            handle.remove()


def relu_outputs(net: nn.Module, x: torch.Tensor, on_output: Callable[[torch.Tensor], None]) -> None:
    """One forward without gradients calling ``on_output`` with the output of every ``nn.ReLU`` whose input is 4-D."""

    def hook(_mod: nn.Module, inp: Any, out: Any) -> None:
        if isinstance(inp, tuple) and inp and isinstance(inp[0], torch.Tensor) and inp[0].dim() == 4:
            on_output(out)

    forward_hooked(net, x, (m for m in net.modules() if isinstance(m, nn.ReLU)), hook, grad=False)


def hooked_features(net: nn.Module, x: torch.Tensor, modules: Sequence[nn.Module]) -> list[torch.Tensor]:
    """``[x, *outputs of modules]`` in call order, from one forward of ``net`` with forward hooks.

    A module listed twice is hooked once. The hooks are removed even when the forward raises.
    """
    feats: list[torch.Tensor] = [x]

    def hook(_mod: nn.Module, _inp: Any, out: Any) -> None:
        t = first_tensor(out)
        if t is not None:
            feats.append(t)

    forward_hooked(net, x, modules, hook)
    return feats
