"""The structure catalogue: names, colours, SNOMED-CT codes and default planning roles.

Names follow TotalSegmentator's ``total`` task (v2) where one exists, plus IMAGIO's own
(body, skin, airways, lung_nodule, liver_tumor, ...). Data: ``imagio/data/anatomy.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

ROLES = ("target", "forbidden", "margin", "avoid", "passable")


@dataclass(frozen=True)
class Structure:
    name: str
    color: tuple[int, int, int]  # RGB 0-255
    role: str  # one of ROLES
    margin_mm: float = 0.0  # clearance to keep for role "margin", mm
    snomed_code: str | None = None
    snomed_meaning: str | None = None
    ts_label: int | None = None  # label value in TotalSegmentator's total task, if any

    @property
    def color_float(self) -> tuple[float, float, float]:
        return tuple(c / 255.0 for c in self.color)

    @property
    def display_name(self) -> str:
        return self.name.replace("_", " ")


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Structure]:
    """All known structures by name."""
    doc = json.loads(resources.files("imagio.data").joinpath("anatomy.json").read_text())
    out = {}
    for e in doc["structures"]:
        sn = e.get("snomed") or {}
        out[e["name"]] = Structure(
            e["name"], tuple(e["color"]), e["role"], float(e.get("margin_mm", 0.0)),
            sn.get("code"), sn.get("meaning"), e.get("ts_label"),
        )
    return out


def is_liver(name: str) -> bool:
    """The liver or one of its Couinaud segments (TotalSegmentator's liver_segments task:
    liver_segment_1 ... liver_segment_8): every liver rule applies to both."""
    return name == "liver" or str(name).startswith("liver_segment_")


def canonical_name(name: str) -> str:
    """The catalogue's spelling of a structure name written another way ("Liver", "Rib right 9",
    "Inferior-Vena-Cava": Slicer segment and RTSTRUCT names): lower case, spaces and hyphens as
    underscores, when that is a catalogue name (`is_known`); any other name unchanged. New-user
    trial 22: "Liver" lost the liver rules and was kept out as an unknown structure."""
    if name in catalogue():
        return name
    key = "_".join(str(name).strip().lower().replace("-", " ").split())
    return key if key != name and is_known(key) else name


def name_in(name: str, names) -> str:
    """``name`` as the label map spells it: itself when ``names`` holds it, else its catalogue
    spelling (`canonical_name`) when ``names`` holds that ("Tumor", "Rib Right 10" typed by a user
    for a map read as tumor, rib_right_10; new-user trial 23), else unchanged."""
    names = set(names)
    if name in names:
        return name
    c = canonical_name(name)
    return c if c in names else name


def is_known(name: str) -> bool:
    """True when ``name`` is a catalogue structure (also as "tumour" for "tumor", or with a
    numbered suffix: liver_tumor_2); `get` gives any other name a neutral passable entry."""
    cat = catalogue()
    key = name.replace("tumour", "tumor")
    return name in cat or key in cat or key.rstrip("0123456789_") in cat


def get(name: str) -> Structure:
    """The catalogue entry for ``name``; unknown names get a neutral passable entry."""
    cat = catalogue()
    if name in cat:
        return cat[name]
    # one vocabulary: TotalSegmentator's "tumor"; the British "tumour" is read as it
    key = name.replace("tumour", "tumor")
    if key in cat:
        s = cat[key]
        return Structure(name, s.color, s.role, s.margin_mm, s.snomed_code, s.snomed_meaning, s.ts_label)
    base = key.rstrip("0123456789_")  # e.g. "liver_tumor_2" -> "liver_tumor"
    if base in cat:
        s = cat[base]
        return Structure(name, s.color, s.role, s.margin_mm, s.snomed_code, s.snomed_meaning, None)
    return Structure(name, (200, 200, 200), "passable")


def totalsegmentator_labels() -> dict[int, str]:
    """Label value -> name of TotalSegmentator's ``total`` task (v2)."""
    return {s.ts_label: s.name for s in catalogue().values() if s.ts_label is not None}


def structures_with_role(role: str) -> list[str]:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {ROLES}")
    return [n for n, s in catalogue().items() if s.role == role]
