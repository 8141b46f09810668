"""``imagio ablation``: the device catalogue on the command line, and the ablation part of
``imagio plan --device NAME --setting ID [--multi-probe]``.

    imagio ablation devices [--json] [--devices FILE]
    imagio ablation import-devices FILE [--to PATH]
"""

from __future__ import annotations

import json

from ...errors import InputError


def cmd_devices(args) -> int:
    from .devices import load_catalogue, user_devices_path

    cat = load_catalogue(extra=args.devices)
    if args.json:
        print(json.dumps({n: {"modality": d.modality, "label": d.label, "source": d.source, "from": d.origin,
                              "settings": {s.id: vars(s) for s in d.settings.values()}}
                          for n, d in cat.items()}, indent=1))
        return 0
    print(f"# ablation devices (site file: {user_devices_path()}; add more with $IMAGIO_ABLATION_DEVICES)")
    for n, d in cat.items():
        print(f"{n}  [{d.modality}]  {d.label}  ({d.origin})")
        for s in d.settings.values():
            print(f"    {s.id:28s} {s.label:44s} zone {s.zone_length_mm:g} x {s.zone_diameter_mm:g} mm, "
                  f"centre {s.centre_offset_mm:g} mm behind the tip, {s.volume_ml:.1f} mL")
        print(f"    source: {d.source}")
    return 0


def cmd_import(args) -> int:
    from .devices import import_devices

    path = import_devices(args.file, args.to)
    print(path)
    return 0


def ablation_for_plan(result, device_name: str, setting_id: str | None, multi_probe: bool = False,
                      devices_file=None, progress=None) -> dict:
    """Zones, coverage and MAM for every proposal of a feasible plan (each probe advanced so
    the zone centre lands on the target), plus optionally a multi-probe plan: a JSON-able dict."""
    from ...jsonable import to_jsonable
    from .coverage import AblationContext
    from .devices import get_device, load_catalogue
    from .multiprobe import place_on_path, plan_multiprobe

    dev = get_device(device_name, load_catalogue(extra=devices_file))
    s = dev.setting(setting_id)
    p = result.problem
    if not p.target.value or p.target.value == 0:
        raise InputError("ablation needs a segmented target: give --target as the tumour's structure "
                         "name (or a point inside its segment)")
    ctx = AblationContext(p.labels, int(p.target.value))
    out = {"device": dev.name, "device_label": dev.label, "modality": dev.modality, "setting": s.id,
           "setting_label": s.label, "zone_length_mm": s.zone_length_mm, "zone_diameter_mm": s.zone_diameter_mm,
           "centre_offset_mm": s.centre_offset_mm, "source": s.source, "tumour": ctx.tumour_name,
           "single_probe": []}
    for r, m in enumerate(result.proposals):
        pp = place_on_path(result, ctx, dev, s, m.entry_ras)
        d = pp.to_dict()
        d["proposal"] = r + 1
        out["single_probe"].append(d)
    if multi_probe:
        out["multi_probe"] = plan_multiprobe(result, ctx, dev, s, progress=progress).to_dict()
    return to_jsonable(out)


def register(subparsers) -> None:
    s = subparsers.add_parser("ablation", help="ablation devices: list the catalogue, import a site table",
                              description="Ablation device catalogue (zone sizes per setting, with sources).")
    sub = s.add_subparsers(dest="ablation_command", required=True, metavar="SUBCOMMAND")
    d = sub.add_parser("devices", help="list devices and settings with zone sizes and sources")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.add_argument("--devices", help="an extra device file to merge (same format)")
    d.set_defaults(func=cmd_devices)
    i = sub.add_parser("import-devices", help="validate a site device table and merge it into the catalogue",
                       description="Validate FILE (format: imagio/data/ablation_devices.schema.json) and merge "
                                   "its devices into the per-user device file (or --to PATH).")
    i.add_argument("file", help="JSON device table")
    i.add_argument("--to", help="device file to merge into (default: the per-user file)")
    i.set_defaults(func=cmd_import)
