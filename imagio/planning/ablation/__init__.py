"""Ablation zones: device tables, zone model, coverage and minimal ablative margin (MAM),
heat sink, and multi-probe plans.

RAS millimetres everywhere, volumes in mL, arrays [k, j, i]. Typical use::

    from imagio.planning import ablation
    dev = ablation.get_device("emprint"); s = dev.setting("100W_10min")
    ctx = ablation.AblationContext(labels, "liver_tumor_1")         # once per tumour
    zones = ablation.zones([ablation.Probe.from_path(entry, tip)], s)
    cov = ctx.evaluate(zones, dev.modality)      # % covered, MAM, healthy mL, heat sink, ~10s of ms
"""

from .coverage import AblationContext, Coverage
from .devices import (Device, Setting, get_device, import_devices, load_catalogue, user_devices_path,
                      validate)
from .zones import Ellipsoid, Probe, rasterize, zone, zones, zones_polydata

__all__ = ["AblationContext", "Coverage", "Device", "Setting", "get_device", "import_devices",
           "load_catalogue", "user_devices_path", "validate", "Ellipsoid", "Probe", "rasterize",
           "zone", "zones", "zones_polydata"]
