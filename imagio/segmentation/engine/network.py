"""Build the network from the plans' ``architecture`` entry with dynamic_network_architectures.

Only classes from ``dynamic_network_architectures`` and ``torch.nn`` may be named by a plans file
(a plans file must not make us import arbitrary code).
"""

from __future__ import annotations

import importlib

from ...errors import InputError

_ALLOWED_PREFIXES = ("dynamic_network_architectures.", "torch.nn.")


def _locate(dotted: str):
    if not dotted.startswith(_ALLOWED_PREFIXES):
        raise InputError(f"plans.json names {dotted!r}: only dynamic_network_architectures and torch.nn "
                         "classes are allowed")
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        # torch.nn.LeakyReLU style: the attribute lives on the package
        try:
            parent, _, sub = module.rpartition(".")
            return getattr(getattr(importlib.import_module(parent), sub), name)
        except Exception:
            pass
    if dotted.startswith("dynamic_network_architectures."):
        # classes move between releases (residual_unet -> unet): look the name up in the package,
        # as nnU-Net does
        import pkgutil

        import dynamic_network_architectures.architectures as archs

        for info in pkgutil.iter_modules(archs.__path__):
            try:
                mod = importlib.import_module(f"{archs.__name__}.{info.name}")
            except Exception:
                continue
            if hasattr(mod, name):
                return getattr(mod, name)
    raise InputError(f"cannot find {dotted!r} (is dynamic-network-architectures installed and recent?)")


def build_network(configuration: dict, n_input_channels: int, n_classes: int):
    """An eval-mode torch module for a configuration (architecture in the new format)."""
    try:
        import dynamic_network_architectures  # noqa: F401
    except ImportError:
        raise InputError("the model engine needs the 'dynamic-network-architectures' package: "
                         "pip install dynamic-network-architectures --no-deps einops") from None
    arch = configuration["architecture"]
    kwargs = dict(arch["arch_kwargs"])
    for key in arch.get("_kw_requires_import", []):
        if kwargs.get(key) is not None:
            kwargs[key] = _locate(kwargs[key])
    cls = _locate(arch["network_class_name"])
    try:
        net = cls(input_channels=n_input_channels, num_classes=n_classes, deep_supervision=False, **kwargs)
    except TypeError as e:
        raise InputError(f"plans.json architecture does not fit {cls.__name__}: {e}") from None
    return net.eval()
