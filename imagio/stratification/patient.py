"""The patient facts Brock and Mayo read and the words that state them: one vocabulary for
``imagio detect``'s options (``--sex``) and a cohort CSV's columns (``age``, ``sex``, ``smoker``,
``family_history``, ``extrathoracic_cancer``, ``emphysema``).

A value outside the vocabulary is refused, never guessed (new-user trial 37, H3: a cohort CSV's
"F" was scored as male in Brock, "current"/"former" smokers as never-smokers in Mayo, "unknown"
as "no" instead of the range over both values). An unknown value is left out of the patient
facts, as an option not given on the command line: Brock and Mayo then give the range over a
yes/no factor, and refuse when age, sex or smoking history is missing.
"""

from __future__ import annotations

import math

# missing values as spreadsheets, R and pandas write them (pandas.read_csv's default NA strings)
UNKNOWN = ("", "unknown", "na", "n/a", "nan", "null", "missing", "not known")
SEX = {"female": ("female", "f", "woman", "w"), "male": ("male", "m", "man")}
YES = ("yes", "y", "true", "1")
NO = ("no", "n", "false", "0")
# smoking history as Mayo reads it: current or former smoker (Swensen 1997), or never smoked
SMOKER = {
    True: ("current", "former", "ever", "ex", "ex-smoker", "exsmoker", "smoker", "current smoker",
           "former smoker", "ever smoker") + YES,
    False: ("never", "never smoker", "never smoked", "non-smoker", "nonsmoker", "non smoker") + NO,
}
YES_NO = {True: YES, False: NO}
FIELDS = ("age", "sex", "smoker", "family_history", "extrathoracic_cancer", "emphysema")


def _vocabulary(field: str) -> dict:
    return {"sex": SEX, "smoker": SMOKER}.get(field, YES_NO)


def accepted(field: str) -> str:
    """The values ``field`` accepts, for a message."""
    if field == "age":
        return "a positive number of years, 'unknown' or empty"
    words = [f"{'/'.join(v)}" for v in _vocabulary(field).values()]
    return f"{' or '.join(words)} (any case), 'unknown' or empty"


def parse(field: str, text) -> float | str | bool | None:
    """The value of patient fact ``field`` written as ``text``: age in years (float), sex
    "female"/"male", a yes/no fact as bool; None when unknown. Raises ValueError naming what is
    accepted."""
    t = str(text if text is not None else "").strip().lower()
    if t in UNKNOWN:
        return None
    if field == "age":
        try:
            v = float(t)
        except ValueError:
            v = math.nan
        why = age_problem(v)
        if why:
            raise ValueError(why if math.isfinite(v) and v > 0 else f"{text!r} is not an age; accepted: {accepted(field)}")
        return v
    for value, words in _vocabulary(field).items():
        if t in words:
            return value
    raise ValueError(f"{text!r} is not read as {field.replace('_', ' ')}; accepted: {accepted(field)}")


def age_problem(years: float) -> str:
    """Why ``years`` is not a patient's age ("" when it may be): not a positive number, or older
    than the oldest verified human (``patient_age_years`` of input_limits.json, Robine and Allard
    1998; new-user trial 112 F5: --age 166 was accepted)."""
    from ..limits import MAX_AGE_YEARS

    if not (math.isfinite(years) and years > 0):
        return f"{years:g} is not an age (a positive number of years)"
    if years > MAX_AGE_YEARS:
        return (f"{years:g} years is older than any recorded human ({MAX_AGE_YEARS:g} years, Robine and Allard "
                "1998): check the age (years, not a birth year)")
    return ""


def age_argument(text: str) -> float:
    """argparse ``type`` of ``--age`` (imagio risk, imagio detect): years, refused by `age_problem`."""
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age (years)") from None
    why = age_problem(v)
    if why:
        raise argparse.ArgumentTypeError(why)
    return v


def sex_argument(text: str) -> str:
    """argparse ``type`` of ``--sex``: the same words as a cohort CSV's sex column."""
    import argparse

    try:
        v = parse("sex", text)
    except ValueError:
        v = None
    if v is None:
        words = " or ".join("/".join(w) for w in SEX.values())
        raise argparse.ArgumentTypeError(f"{text!r}: give {words} (any case)")
    return v
