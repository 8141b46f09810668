"""The structure catalogue: names, colours, SNOMED-CT codes and default planning roles.

Names follow TotalSegmentator's ``total`` task (v2) where one exists, plus IMAGIO's own
(body, skin, airways, lung_nodule, liver_tumor, ...). Data: ``imagio/data/anatomy.json``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

ROLES = ("target", "forbidden", "margin", "avoid", "passable")
# the lung's parenchyma: its lobes and their TotalSegmentator combined masks
LUNG_PARENCHYMA = ("lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right",
                   "lung_middle_lobe_right", "lung_lower_lobe_right", "lung_left", "lung_right", "lung")
# aerated lung: the parenchyma and its emphysema (destroyed, air-filled alveolar walls; IMAGIO's
# `segment` carves the LAA-950 voxels out of lung_left/lung_right into 'emphysema'), the labels a
# lung mask is made of for emphysema scores (LAA-950, plan's emphysema_pct) and aerated length.
# New-user trial 33 (H2): with 'emphysema' outside this set plan read 0 % and detect LAA-950 0 %.
AERATED_LUNG = LUNG_PARENCHYMA + ("emphysema",)
# the airway lumen's label names (TotalSegmentator's trachea, IMAGIO's airways, older exports): bronchoscopy
# plans in it, the registration check reads it as air (here, not in `planning.bronchoscopy`, so that
# checking a label map does not import the bronchoscopy planner: 0.15-0.2 CPU-s of a first plan, issue 20)
AIRWAY_NAMES = ("trachea", "airways", "lung_trachea_bronchia", "airway")


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
    doc = json.loads(resources.files("imagio.data").joinpath("anatomy.json").read_text(encoding="utf-8"))
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
    """The catalogue's spelling of a structure name written another way: "Liver", "Rib right 9",
    "Inferior-Vena-Cava", "Vertebrae L1" (Slicer segment and RTSTRUCT names; case, spaces,
    hyphens and underscores alike), a radiotherapy name of AAPM TG-263 ("Kidney_R", "R_Kidney",
    "V_Venacava_I", "External", "Lungs") or a clinical abbreviation ("IVC"), listed with their
    sources in ``imagio/data/tg263_synonyms.json``; any other name unchanged, and so is a name
    starting with "_" (TG-263: a structure not for evaluation) unless it is the first kind.
    New-user trial 22: "Liver" lost the liver rules and was kept out as an unknown structure;
    new-user trials: "External", "IVC", "Kidney_R", "Lung_L", vertebrae were kept out as unknown."""
    if name in catalogue():
        return name
    key = "_".join(str(name).strip().lower().replace("-", " ").split())
    if key != name and is_known(key):
        return key
    if str(name).strip().startswith("_"):
        return name
    return _spellings().get(_key(name), name)


def _key(name: str) -> str:
    """``name`` in lower case, its words (split at spaces, hyphens, underscores) joined by one
    underscore: "Spinal Cord", "SPINAL-CORD" -> spinal_cord (VB_S and VBs stay apart)."""
    return "_".join(w for w in re.split(r"[\s_-]+", str(name).strip().lower()) if w)


def reverse_order_name(tg263_name: str) -> str:
    """TG-263's reverse-order name: the parts of the primary name in reverse order
    (Kidney_R -> R_Kidney, V_Venacava_I -> I_Venacava_V, Lung_LUL -> LUL_Lung)."""
    return "_".join(reversed(str(tg263_name).split("_")))


@lru_cache(maxsize=1)
def synonyms_doc() -> dict:
    """``imagio/data/tg263_synonyms.json``: TG-263 names and clinical abbreviations of catalogue structures."""
    return json.loads(resources.files("imagio.data").joinpath("tg263_synonyms.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _spellings() -> dict[str, str]:
    """{key: catalogue name} of the catalogue's names, the TG-263 primary and reverse-order
    names and the abbreviations of ``synonyms_doc``; a key two names share is an error of the data."""
    out = {}

    def add(alias, name):
        k = _key(alias)
        if out.setdefault(k, name) != name:
            raise ValueError(f"structure name {alias!r} reads as both {out[k]!r} and {name!r}")

    for n in catalogue():
        add(n, n)
    doc = synonyms_doc()
    for e in doc["synonyms"]:
        add(e["tg263"], e["name"])
        add(reverse_order_name(e["tg263"]), e["name"])
    for e in doc["abbreviations"]:
        add(e["alias"], e["name"])
    for e in doc["groups_without_catalogue_group"]:
        for n in (e["tg263"], reverse_order_name(e["tg263"])):
            if _key(n) in out:
                raise ValueError(f"group name {n!r} would read as {out[_key(n)]!r}")
    return out


def group_without_catalogue_name(name: str) -> str | None:
    """For a TG-263 name of several structures that no catalogue group equals (Bowel_Large,
    A_Carotid, VB_L; primary or reverse-order name): what it holds; else None. Such a name is
    never read as one of its parts: it stays unknown (kept out) and the plan says why."""
    k = _key(name)
    for e in synonyms_doc()["groups_without_catalogue_group"]:
        if k in (_key(e["tg263"]), _key(reverse_order_name(e["tg263"]))):
            return e["parts"]
    return None


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


@lru_cache(maxsize=1)
def _groups() -> dict[str, frozenset]:
    """{group name: its member structures} of the catalogue's ``group_of`` lists (anatomy.json)."""
    doc = json.loads(resources.files("imagio.data").joinpath("anatomy.json").read_text(encoding="utf-8"))
    return {e["name"]: frozenset(e["group_of"]) for e in doc["structures"] if e.get("group_of")}


def groups_holding(name: str) -> list[str]:
    """The catalogue groups (anatomy.json ``group_of``) that hold ``name``: those listing it, and
    for a group itself every larger group listing all its members (lung_upper_lobe_left ->
    lung_left, lung; lung_left -> lung; kidney_right -> kidney). Catalogue order."""
    g = _groups()
    own = g.get(name)
    return [k for k, members in g.items()
            if k != name and (name in members or (own is not None and own < members))]


def totalsegmentator_labels() -> dict[int, str]:
    """Label value -> name of TotalSegmentator's ``total`` task (v2)."""
    return {s.ts_label: s.name for s in catalogue().values() if s.ts_label is not None}


def structures_with_role(role: str) -> list[str]:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {ROLES}")
    return [n for n, s in catalogue().items() if s.role == role]


def _named(name: str, prefixes) -> bool:
    """True when ``name`` is one of ``prefixes`` or one of them followed by '_' (rib_left_3)."""
    return any(name == n or name.startswith(n + "_") for n in prefixes)


def is_bone(name: str) -> bool:
    """True for bone structures (planning_defaults ``bone_target.bone_prefixes``), except a name
    holding one of ``bone_target.not_bone_words`` as a word (``hip_joint_capsule_left``: the soft
    tissue of a joint, not the hip bone)."""
    from .defaults import load_defaults

    bt = load_defaults()["bone_target"]
    return _named(name, bt["bone_prefixes"]) and not set(name.split("_")) & set(bt["not_bone_words"])


def is_lesion(name: str) -> bool:
    """True for a lesion structure (catalogue role 'target', e.g. liver_tumor_2, lung_nodule) or
    a name the catalogue does not know (a user's lesion label, e.g. GTV_Mass)."""
    cat = catalogue()
    known = name in cat or name.rstrip("0123456789_") in cat
    return not known or get(name).role == "target"
