"""Points typed on the command line: ``R,A,S`` in mm, or ``L,P,S`` with ``--lps``.

One definition for every command that takes a point (``--point``, ``--target``):

- :func:`parse_point` reads ``"R,A,S"`` (three numbers, commas, optional spaces) and returns
  RAS mm; with ``lps=True`` the numbers are LPS (what PACS viewers and DICOM show) and are
  converted: RAS = (-L, -P, S).
- :class:`ArgumentParser` lets argparse accept values that start with a minus sign, so
  ``--point -52.7,95.9,-255`` works as well as ``--point=-52.7,95.9,-255`` (plain argparse
  takes ``-52.7,...`` for an option and refuses it).
- :func:`add_point_argument` adds a point option and the shared ``--lps`` flag.
"""

from __future__ import annotations

import argparse
import re

import numpy as np

from .errors import InputError

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
POINT_RE = re.compile(rf"^\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*$")
# argparse's own pattern for negative numbers, plus a point whose first number is negative
_NEGATIVE_VALUE = re.compile(rf"^-\d+$|^-\d*\.\d+$|^-(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*,")

LPS_HELP = ("--lps: the point is L,P,S (as PACS viewers and DICOM headers show it) instead of R,A,S "
            "(as 3D Slicer shows it); IMAGIO converts it (R = -L, A = -P)")


def fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` nearly evenly spread unit vectors (n, 3) as (r cos phi, r sin phi, z): the Fibonacci
    (golden-angle) lattice, each point carrying an area of 4 pi / n of the unit sphere."""
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = np.pi * (1.0 + 5 ** 0.5) * k
    r = np.sqrt(1.0 - z * z)
    return np.c_[r * np.cos(phi), r * np.sin(phi), z]


def is_point(text) -> bool:
    """True when ``text`` is three comma-separated numbers."""
    return isinstance(text, str) and POINT_RE.match(text) is not None


def parse_point(text: str, lps: bool = False, what: str = "point") -> np.ndarray:
    """``"x,y,z"`` (mm) -> RAS mm, shape (3,). ``lps``: the numbers are L,P,S.

    Raises InputError naming ``what`` when ``text`` is not three finite numbers.
    """
    m = POINT_RE.match(text) if isinstance(text, str) else None
    if m is None and _three_floats(text) is not None:   # inf, nan: numbers, but no point
        raise InputError(f"{what} {text!r} is not finite: give {'L,P,S' if lps else 'R,A,S'} in mm as three finite numbers")
    if m is None:
        raise InputError(f"{what} must be {'L,P,S' if lps else 'R,A,S'} in mm (three numbers separated by "
                         f"commas, e.g. -52.7,95.9,-255), got {text!r}")
    p = np.array([float(v) for v in m.groups()])
    if not np.all(np.isfinite(p)):
        raise InputError(f"{what} {text!r} is not finite")
    return lps_to_ras(p) if lps else p


def _three_floats(text):
    """The three numbers of ``text`` when it is three comma-separated values that Python reads as
    floats (``inf`` and ``nan`` included), else None."""
    if not isinstance(text, str):
        return None
    try:
        v = [float(x) for x in text.split(",")]
    except ValueError:
        return None
    return v if len(v) == 3 else None


def mm_text(v: float) -> str:
    """One coordinate or distance in mm for a message: one decimal, or 3 significant digits with
    an exponent from 1e6 mm on (a huge but finite point, trial 89 L: ``1e308`` read as a
    309-digit number), ``inf`` for past float's range."""
    v = float(v)
    return f"{v:.1f}" if abs(v) < 1e6 else (f"{v:.3g}" if np.isfinite(v) else f"{'-' if v < 0 else ''}inf")


def point_text(p) -> str:
    """A point (3 numbers, mm) for a message: ``[x, y, z]`` with `mm_text`'s numbers."""
    return "[" + ", ".join(mm_text(v) for v in np.asarray(p, float).ravel()) + "]"


def lps_to_ras(p) -> np.ndarray:
    """LPS mm -> RAS mm: ``imagio.io.LPS_TO_RAS``, the one flip between files and Volumes."""
    from .io import LPS_TO_RAS

    return LPS_TO_RAS[:3, :3] @ np.asarray(p, float)


def other_frame_words(point_ras, lps: bool, found: str) -> str:
    """The words for a refused point whose three numbers, read in the other frame (L,P,S without
    ``--lps``, R,A,S with it: the two differ by the signs of the first two, `lps_to_ras`), land
    where the command would work: "the same numbers (-21.9, -120.5, -611.5) read as L,P,S (with
    --lps, as LUNA16 CSVs and PACS viewers give them) {found}: did you mean --lps?". ``point_ras``
    (3,) RAS mm is the point as IMAGIO read it; the numbers are quoted as the user typed them."""
    typed = ", ".join(f"{v:g}" for v in (lps_to_ras(point_ras) if lps else np.asarray(point_ras, float)))
    frame = "R,A,S (without --lps)" if lps else "L,P,S (with --lps, as LUNA16 CSVs and PACS viewers give them)"
    return f"the same numbers ({typed}) read as {frame} {found}: did you mean {'to leave out --lps' if lps else '--lps'}?"


# A point denser than aerated lung (parenchyma about -950 to -700 HU; Hounsfield scale, e.g. Hofer M, CT
# Teaching Manual): tissue a needle or a scope may aim at, where the point as read lies in air or outside.
OTHER_FRAME_TISSUE_HU = -600.0


def other_frame_hint(ct, point_ras, lps: bool) -> str:
    """For a point target refused where it lies: when the point as read lies outside the image or
    in air (below ``OTHER_FRAME_TISSUE_HU``) and the same numbers read in the other frame lie inside
    the image in tissue denser than aerated lung, `other_frame_words` for them ("... lie inside the
    image in tissue of 35 HU: did you mean --lps?", new-user trial 109 L5: an LPS centre typed
    without --lps was refused by plan and bronch without the question that `imagio lesion` asks);
    "" otherwise. ``ct``: the CT Volume (HU); ``point_ras`` (3,) RAS mm."""
    p = np.asarray(point_ras, float)
    other = lps_to_ras(p)   # the mirrored reading: the same flip of R and A either way

    def hu(q):
        return float(ct.sample(q[None], order=0)[0]) if bool(ct.contains_world(q[None])[0]) else None

    here, there = hu(p), hu(other)
    if (here is not None and here >= OTHER_FRAME_TISSUE_HU) or there is None or there < OTHER_FRAME_TISSUE_HU:
        return ""
    return other_frame_words(p, lps, f"lie inside the image in tissue of {there:.0f} HU")


def with_other_frame_hint(err: InputError, ct, text, lps: bool) -> InputError:
    """``err`` (a refusal of the point target ``text`` as typed) with `other_frame_hint` appended
    when ``text`` is a point and the hint applies; ``err`` itself otherwise."""
    if not is_point(text):
        return err
    hint = other_frame_hint(ct, parse_point(text, lps), lps)
    return InputError(f"{err}; {hint}") if hint else err


def point_or_name(text: str, lps: bool = False, what: str = "target"):
    """A point argument that may also be a structure name: RAS list when ``text`` is a point,
    else ``text`` unchanged (``--lps`` with a name is refused: it would be silently ignored)."""
    if (is_point(text) or (isinstance(text, str) and re.fullmatch(r"[\s0-9eE+\-.,]+", text))
            or _three_floats(text) is not None):
        # numbers only (a structure name has letters): a point, or a malformed one said as such
        return parse_point(text, lps, what).tolist()
    if lps:
        raise InputError(f"--lps applies to a point, but {what} {text!r} is a name; drop --lps or give L,P,S")
    return text


class ArgumentParser(argparse.ArgumentParser):
    """argparse that takes ``-52.7,95.9,-255`` as an option's value, not as an option, and refuses a
    bad command line in one line (exit 2) that names the problem and where the help is, without the
    usage block argparse prints first (new-user trial 113: an age of 123 was refused under twelve
    lines of usage)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_VALUE

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Once(argparse.Action):
    """Store the option's value, refusing a second occurrence: argparse keeps the last of a
    repeated option silently, so ``--point A --point B`` planned B alone (new-user trial 61 L1)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest, None) is not None:
            raise argparse.ArgumentError(self, "given more than once: give one point (a lesion's further "
                                               "clicks go to --add, parts to cut to --remove)")
        setattr(namespace, self.dest, values)


def add_point_argument(parser, flag: str, help: str, required: bool = True, metavar: str = "R,A,S") -> None:
    """Add ``flag`` (a point R,A,S, or a name where ``help`` says so; given at most once) and the
    ``--lps`` flag."""
    parser.add_argument(flag, required=required, metavar=metavar, action=_Once, default=None,
                        help=help + " (negative values work with or without '=')")
    parser.add_argument("--lps", action="store_true", help=LPS_HELP)
