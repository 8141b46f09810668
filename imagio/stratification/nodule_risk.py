"""Lung nodule malignancy risk: the Brock (PanCan) full model with spiculation and the Mayo
Clinic model, coefficients from ``imagio/data/nodule_risk_models.json`` with their sources.

Both are logistic models: probability = 1 / (1 + exp(-logit)). Inputs outside the range the
models were built for are refused with a clear message rather than extrapolated.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..errors import InputError

NODULE_TYPES = ("solid", "part_solid", "nonsolid")


@lru_cache(maxsize=1)
def coefficients() -> dict:
    return json.loads(resources.files("imagio.data").joinpath("nodule_risk_models.json").read_text(encoding="utf-8"))


def size_measure(model: str) -> dict:
    """What nodule size ``model`` ("brock" or "mayo") was fitted on: {"nodule_key" (the key of
    a characterised nodule that holds it), "unit", "definition", "source"}
    (``size_measure`` in nodule_risk_models.json)."""
    return coefficients()[{"brock": "brock_full_with_spiculation"}.get(model, model)]["size_measure"]


@dataclass
class RiskResult:
    model: str
    probability: float  # 0..1
    logit: float
    terms: dict  # each term's contribution to the logit
    source: str


def _check(name, value, lo, hi, unit=""):
    if value is None or not (lo <= value <= hi):
        raise InputError(f"{name} {value}{unit} is outside the range the model was built for "
                         f"({lo}-{hi}{unit}); the risk cannot be computed")


def _result(model, terms, source) -> RiskResult:
    logit = sum(terms.values())
    return RiskResult(model, 1.0 / (1.0 + math.exp(-logit)), logit, terms, source)


def brock(age: float, female: bool, size_mm: float, nodule_type: str = "solid",
          family_history: bool = False, emphysema: bool = False, upper_lobe: bool = False,
          nodule_count: int = 1, spiculation: bool = False) -> RiskResult:
    """Brock (PanCan) full model 2b. ``size_mm``: maximum diameter of the nodule (mm)."""
    c = coefficients()["brock_full_with_spiculation"]
    v = c["valid"]
    _check("age", age, *v["age"], " years")
    _check("nodule size", size_mm, *v["size_mm"], " mm")
    _check("nodule count", nodule_count, *v["nodule_count"])
    if nodule_type not in NODULE_TYPES:
        raise InputError(f"nodule type {nodule_type!r} is unknown; use one of {NODULE_TYPES}")
    terms = {
        "intercept": c["intercept"],
        "age": c["age_per_year_minus_62"] * (age - 62.0),
        "female": c["female"] * bool(female),
        "family_history": c["family_history_lung_cancer"] * bool(family_history),
        "emphysema": c["emphysema"] * bool(emphysema),
        "size": c["size_transformed"] * ((size_mm / 10.0) ** -0.5 - 1.58113883),
        "type": c["type"][nodule_type],
        "upper_lobe": c["upper_lobe"] * bool(upper_lobe),
        "nodule_count": c["nodule_count_minus_4"] * (nodule_count - 4),
        "spiculation": c["spiculation"] * bool(spiculation),
    }
    return _result("brock", terms, c["source"])


def mayo(age: float, size_mm: float, smoker: bool = False, extrathoracic_cancer: bool = False,
         spiculation: bool = False, upper_lobe: bool = False) -> RiskResult:
    """Mayo Clinic model (solitary nodule, 4-30 mm). ``extrathoracic_cancer``: a history of
    extrathoracic cancer diagnosed more than 5 years ago."""
    c = coefficients()["mayo"]
    _check("age", age, *c["valid"]["age"], " years")
    _check("nodule size", size_mm, *c["valid"]["size_mm"], " mm")
    terms = {
        "intercept": c["intercept"],
        "age": c["age_years"] * age,
        "smoker": c["smoker_current_or_former"] * bool(smoker),
        "extrathoracic_cancer": c["extrathoracic_cancer_over_5_years_ago"] * bool(extrathoracic_cancer),
        "size": c["diameter_mm"] * size_mm,
        "spiculation": c["spiculation"] * bool(spiculation),
        "upper_lobe": c["upper_lobe"] * bool(upper_lobe),
    }
    return _result("mayo", terms, c["source"])
