"""The ablation device catalogue: devices, settings and zone sizes (mm), with sources.

Built in: ``imagio/data/ablation_devices.json`` (format: ``ablation_devices.schema.json``).
A site adds its own calibrated tables: ``imagio ablation import-devices FILE`` validates the
file and merges it into the per-user file (`user_devices_path`); the environment variable
``IMAGIO_ABLATION_DEVICES`` names further files (``os.pathsep``-separated). Later sources
replace a device of the same name: built-in < per-user file < environment files < ``extra``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ...errors import InputError

ENV_VAR = "IMAGIO_ABLATION_DEVICES"
SCHEMA_ID = "imagio.ablation_devices/1"
MODALITIES = ("microwave", "radiofrequency", "cryoablation")
MAX_ZONE_MM = 200.0


@dataclass(frozen=True)
class Setting:
    """One row of a device table: zone length along the shaft, diameter across it, and the
    offset of the zone centre from the tip back along the shaft (mm)."""

    id: str
    zone_length_mm: float
    zone_diameter_mm: float
    centre_offset_mm: float
    source: str
    power_w: float | None = None
    time_min: float | None = None
    protocol: str | None = None
    isotherm_c: float | None = None
    probes: int = 1
    probe_spacing_mm: float | None = None

    @property
    def label(self) -> str:
        if self.isotherm_c is not None:
            n = f", {self.probes} probes {self.probe_spacing_mm:g} mm apart" if self.probes > 1 else ""
            return f"{self.protocol or ''} {self.isotherm_c:g} C isotherm{n}".strip()
        return f"{self.power_w:g} W, {self.time_min:g} min"

    @property
    def words(self) -> str:
        """``label`` and the zone's size: "75 W, 5 min, zone 35 x 30 mm" (length along the shaft x
        diameter across it), as plans and reports name a setting."""
        return f"{self.label}, zone {self.zone_length_mm:g} x {self.zone_diameter_mm:g} mm"

    @property
    def volume_ml(self) -> float:
        """Volume of the ellipsoidal zone (mL)."""
        import math

        return 4.0 / 3.0 * math.pi * (self.zone_length_mm / 2) * (self.zone_diameter_mm / 2) ** 2 / 1000.0


@dataclass(frozen=True)
class Device:
    name: str
    modality: str
    source: str
    settings: dict = field(default_factory=dict)  # id -> Setting, in file order
    label: str = ""
    manufacturer: str = ""
    origin: str = "built-in"  # the file it came from
    shaft_diameter_mm: float | None = None  # outer diameter entering the patient (mm; trial 32 M3)
    chart_tissue: str = ""  # what the zone chart was measured in ("" not stated; new-user trial 82 M2)

    @property
    def chart_in_lung(self) -> bool:
        """Whether the zone chart was measured in lung (``chart_tissue`` names it): a tumour in
        aerated lung planned with any other chart is warned (`commands.ablation_warnings`)."""
        return "lung" in self.chart_tissue.lower()

    @property
    def simultaneous(self) -> bool:
        """Whether the probes of a multi-probe plan are in place at once (``modalities`` of
        ``simultaneous_probe_spacing`` in ablation_criteria.json: cryoprobes freeze together),
        so that each needs its own entry and shafts apart; else the zones may be positions of one
        probe repositioned along one track (microwave, radiofrequency)."""
        from .criteria import load_criteria

        return self.modality in load_criteria()["simultaneous_probe_spacing"]["modalities"]

    def needle(self, needle):
        """``needle`` (`planning.problem.Needle`) as this device's probe: its diameter the
        device's shaft (``shaft_diameter_mm``), so that every clearance is judged for the probe's
        own shaft (a 13G antenna is 2.41 mm, not the default biopsy needle's 1.3 mm: new-user
        trial 32 M3; kept when the device gives no shaft), and its axis past the target checked
        for the ablation probe's length (``beyond_tip_default("ablation_probe")``, 0: a probe is
        placed, not fired; its advance past the target is checked by `multiprobe.place_on_path`;
        review 43 L3)."""
        from dataclasses import replace

        from ..problem import beyond_tip_default

        shaft = {} if self.shaft_diameter_mm is None else {"diameter_mm": float(self.shaft_diameter_mm)}
        return replace(needle, beyond_tip_mm=beyond_tip_default("ablation_probe"), **shaft)

    def setting(self, setting_id: str | None = None) -> Setting:
        """The setting ``setting_id`` (default: the first single-probe row; for cryoablation the
        first single-probe row whose isotherm is lethal, ``cryo_lethal_isotherm_c`` of
        ablation_criteria.json: the 0 C ice-ball edge kills no tissue, new-user trial 32 H2)."""
        if setting_id is None:
            one = [s for s in self.settings.values() if s.probes == 1]
            if self.modality == "cryoablation":
                from .criteria import is_lethal

                lethal = [s for s in one if s.isotherm_c is not None and is_lethal(s.isotherm_c)]
                one = lethal or one
            return next(iter(one), next(iter(self.settings.values())))
        if setting_id not in self.settings:
            raise InputError(f"device {self.name!r} has no setting {setting_id!r}; its settings are "
                             f"{list(self.settings)} (list them with: imagio ablation devices)")
        return self.settings[setting_id]


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate(doc, where: str = "device file") -> None:
    """Check a device document against the schema; raise InputError listing every problem
    (which device, which setting, which field, what is expected)."""
    errs: list[str] = []
    if not isinstance(doc, dict) or not isinstance(doc.get("devices"), list) or not doc["devices"]:
        raise InputError(f"{where}: expected a JSON object with a non-empty list 'devices' "
                         f"(see imagio/data/ablation_devices.schema.json)")
    if "schema" in doc and doc["schema"] != SCHEMA_ID:
        errs.append(f"'schema' is {doc['schema']!r}, expected {SCHEMA_ID!r}")
    names = set()
    for n, d in enumerate(doc["devices"]):
        tag = f"devices[{n}]"
        if not isinstance(d, dict):
            errs.append(f"{tag}: expected an object")
            continue
        name = d.get("name")
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_.-" for c in name):
            errs.append(f"{tag}: 'name' must be a non-empty string of letters, digits, '_', '.', '-'")
        else:
            tag = f"device {name!r}"
            if name in names:
                errs.append(f"{tag}: defined twice")
            names.add(name)
        mod = d.get("modality")
        if mod not in MODALITIES:
            errs.append(f"{tag}: 'modality' is {mod!r}; use one of {list(MODALITIES)}")
        if not isinstance(d.get("source"), str) or not d["source"].strip():
            errs.append(f"{tag}: 'source' is missing; say where the figures come from")
        if "chart_tissue" in d and not isinstance(d["chart_tissue"], str):
            errs.append(f"{tag}: 'chart_tissue' (what the zone chart was measured in) must be text, "
                        f"got {d['chart_tissue']!r}")
        if "shaft_diameter_mm" in d and (not _num(d["shaft_diameter_mm"]) or not 0 < d["shaft_diameter_mm"] <= 20):
            errs.append(f"{tag}: 'shaft_diameter_mm' (the probe's outer diameter) must be a number in (0, 20] mm, "
                        f"got {d['shaft_diameter_mm']!r}")
        sets = d.get("settings")
        if not isinstance(sets, list) or not sets:
            errs.append(f"{tag}: 'settings' must be a non-empty list")
            continue
        ids = set()
        for m, s in enumerate(sets):
            st = f"{tag} settings[{m}]"
            if not isinstance(s, dict):
                errs.append(f"{st}: expected an object")
                continue
            sid = s.get("id")
            if not isinstance(sid, str) or not sid:
                errs.append(f"{st}: 'id' must be a non-empty string")
            else:
                st = f"{tag} setting {sid!r}"
                if sid in ids:
                    errs.append(f"{st}: id used twice")
                ids.add(sid)
            for k in ("zone_length_mm", "zone_diameter_mm"):
                v = s.get(k)
                if not _num(v) or not 0 < v <= MAX_ZONE_MM:
                    errs.append(f"{st}: '{k}' must be a number in (0, {MAX_ZONE_MM:g}] mm, got {v!r}")
            v = s.get("centre_offset_mm")
            if not _num(v) or not -50 <= v <= 150:
                errs.append(f"{st}: 'centre_offset_mm' (tip to zone centre, mm) must be a number in "
                            f"[-50, 150], got {v!r}")
            if not isinstance(s.get("source"), str) or not s["source"].strip():
                errs.append(f"{st}: 'source' is missing; cite the table or say 'site calibration'")
            need = ("isotherm_c", "time_min") if mod == "cryoablation" else ("power_w", "time_min")
            for k in need:
                if not _num(s.get(k)):
                    errs.append(f"{st}: '{k}' is required for {mod} devices (a number)")
            for k in ("power_w", "time_min", "probe_spacing_mm"):
                if k in s and s[k] is not None and (not _num(s[k]) or s[k] <= 0):
                    errs.append(f"{st}: '{k}' must be a positive number, got {s[k]!r}")
            if "isotherm_c" in s and _num(s["isotherm_c"]) and s["isotherm_c"] > 0:
                errs.append(f"{st}: 'isotherm_c' must be <= 0 degrees C, got {s['isotherm_c']!r}")
            p = s.get("probes", 1)
            if not isinstance(p, int) or isinstance(p, bool) or p < 1:
                errs.append(f"{st}: 'probes' must be an integer >= 1, got {p!r}")
            elif p > 1 and not _num(s.get("probe_spacing_mm")):
                errs.append(f"{st}: 'probe_spacing_mm' is required when probes > 1")
    if errs:
        raise InputError(f"{where} is not a valid ablation device table: " + "; ".join(errs)
                         + ". Fix these fields (format: imagio/data/ablation_devices.schema.json).")


def _parse(doc, origin: str) -> dict[str, Device]:
    out = {}
    for d in doc["devices"]:
        sets = {}
        for s in d["settings"]:
            sets[s["id"]] = Setting(
                s["id"], float(s["zone_length_mm"]), float(s["zone_diameter_mm"]),
                float(s["centre_offset_mm"]), s["source"], s.get("power_w"), s.get("time_min"),
                s.get("protocol"), s.get("isotherm_c"), int(s.get("probes", 1)), s.get("probe_spacing_mm"))
        shaft = d.get("shaft_diameter_mm")
        out[d["name"]] = Device(d["name"], d["modality"], d["source"], sets, d.get("label", ""),
                                d.get("manufacturer", ""), origin, None if shaft is None else float(shaft),
                                d.get("chart_tissue", ""))
    return out


def read_device_file(path) -> dict:
    """Read and validate a device file; returns the JSON document."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ablation device file {path} does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"ablation device file {path} is not valid JSON: {e}") from None
    validate(doc, str(path))
    return doc


def user_devices_path() -> Path:
    """Per-user device file: $XDG_CONFIG_HOME/imagio/ablation_devices.json (~/.config/...)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "imagio" / "ablation_devices.json"


def builtin_document() -> dict:
    return json.loads(resources.files("imagio.data").joinpath("ablation_devices.json").read_text(encoding="utf-8"))


def load_catalogue(extra=None, user: bool = True) -> dict[str, Device]:
    """All devices by name (see module doc for the merge order). ``extra``: further files."""
    cat = _parse(builtin_document(), "built-in")
    files = []
    if user and user_devices_path().is_file():
        files.append(user_devices_path())
    files += [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    if extra:
        files += [Path(p) for p in ([extra] if isinstance(extra, (str, Path)) else extra)]
    for f in files:
        if not f.is_file():
            raise InputError(f"ablation device file {f} (from {ENV_VAR} or --devices) does not exist")
        cat.update(_parse(read_device_file(f), str(f)))
    return cat


def get_device(name: str, catalogue: dict | None = None) -> Device:
    cat = load_catalogue() if catalogue is None else catalogue
    if name not in cat:
        raise InputError(f"unknown ablation device {name!r}; known devices: {sorted(cat)} "
                         "(imagio ablation devices lists them; add yours with imagio ablation import-devices)")
    return cat[name]


def import_devices(path, dest=None) -> Path:
    """Validate the device file ``path`` and merge its devices into ``dest`` (default: the
    per-user file), replacing devices of the same name. Returns the file written."""
    doc = read_device_file(path)
    dest = Path(dest) if dest is not None else user_devices_path()
    if dest.is_file():
        old = read_device_file(dest)
        new_names = {d["name"] for d in doc["devices"]}
        devices = [d for d in old["devices"] if d["name"] not in new_names] + doc["devices"]
    else:
        devices = doc["devices"]
    out = {"schema": SCHEMA_ID, "description": "site device tables imported with imagio ablation import-devices",
           "devices": devices}
    validate(out, str(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1), encoding="utf-8")
    tmp.replace(dest)
    return dest
