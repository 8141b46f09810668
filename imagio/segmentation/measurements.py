"""Lesion measurements as the guidelines define them, from a mask on any grid (RAS mm).

- Volume: voxel count x voxel volume (mL).
- RECIST 1.1 (Eisenhauer EA et al., New response evaluation criteria in solid tumours: revised
  RECIST guideline (version 1.1), Eur J Cancer 2009;45:228-247): the longest diameter in the
  axial plane (``axial_long_axis_mm``) and, in the same slice, the longest diameter
  perpendicular to it (``axial_short_axis_mm``, the short axis as RECIST measures lymph nodes:
  one line across the lesion, the longest extent within a strip two voxels wide, not the
  lesion's caliper width across the long axis).
  "Axial plane" is the patient's axial plane (perpendicular to S). On a grid whose slices are
  axial (the array axis closest to S is normal to them, within ``TILT_MIN_DEG``: header
  rounding; flips, permutations and rotations about S included) the grid's own slices are
  measured, in their own coordinates. On a grid whose slices are tilted (an oblique reformat, a
  gantry tilt kept as such) the grid's slice with the largest long axis cuts the lesion
  obliquely (new-user trial 104 M1: Lung_Dx-A0001's mass read 55.3 x 25.9 mm, mean 40.6, on a
  grid tilted 12 deg, against 54.1 x 47.5, mean 50.8, on its own axial grid; on a 6-8 mm nodule
  that moves Lung-RADS 3 <-> 4A): there the outline is resampled onto patient-axial planes
  (`axial_outline`: the partial-volume outline, trilinear >= 1/2, on the grid's in-plane
  spacings, planes half its voxel extent along S apart) and measured on those, with the same
  half-voxel rule (on the axial grid's voxels); a warning says so, with the grid's own slices'
  figures (`oblique_note`).
- Lung-RADS v2022 (American College of Radiology, Lung-RADS v2022, 2022): mean diameter = mean
  of the long axis and its perpendicular short axis, to one decimal with halves rounded up
  (``mean_diameter_mm``, from the axial long and short axes; the one rounding rule,
  `imagio.stratification.lungrads.rounded_mm`, so the size measured and the size categorised
  are the same number).
- 3-D: ``long_axis_mm`` the maximum diameter in space, ``short_axis_mm`` the largest diameter
  perpendicular to it.

Half-voxel treatment (all four diameters alike): a diameter is measured between the centres of
boundary voxels and then gets half the voxel's extent along the diameter's direction added (a
quarter voxel at each end). The outermost voxel centres of a digital object lie between 0 and
1 voxel inside its true edge (mean half a voxel) at each end, and the maximum over many
directions picks the outermost ones, so centre-to-centre diameters of analytic ellipsoids fall
short by about half a voxel in all (measured over random sub-voxel offsets, oblique, flipped
and anisotropic grids: ``Testing/test_measurements.py``). The voxel's extent along a unit
direction u is sqrt(sum_i (u . step_i)^2) over the grid's i, j, k steps (the spacing along a
grid axis). Because the same rule applies to every diameter, long >= short whenever the shape
says so. Single-voxel protrusions (a cross-shaped opening in the slice plane) are ignored when
that keeps >= 90 % of the mask: one noisy boundary voxel must not lengthen a maximum diameter.

Partial-volume-corrected volume (``partial_volume_ml``, lung lesions only: ``volume_pv_ml``): a
CT voxel on the lesion's border holds lesion and lung, and its HU is their volume-weighted mean,
so the share of lesion in it is f = (HU - lung) / (lesion - lung). The voxel count at the
half-contrast threshold counts each border voxel as 0 or 1; the sum of f over the border band
counts its share, which makes the volume independent of where the border falls in its voxels
and of the section thickness (the standard remedy in nodule volumetry: Kostis WJ et al., IEEE
Trans Med Imaging 2003;22:1259-1274; Ko JP et al., Radiology 2003;228:864-870, volume error
from partial volume on thick sections). Here: interior voxels count 1; the outline's border
voxels (26-adjacent to outside) count clip(f, 0, 1); the voxels just outside (26-adjacent to the
outline) count f where f < 1/2 (the lesion's own partial volume, below the outline's threshold)
and 0 where f >= 1/2: that is tissue the outline cut off on purpose (a vessel, the chest wall),
whose cut lies on the voxel faces as in the count. Lesion level: median of the interior; lung
level: median of the voxels 2-4 voxels outside (beyond the ring's partial volume) below the
half-contrast threshold. It assumes a lesion of one density, so it is given for solid nodules
and masses (and calcified ones) only: in a part-solid or ground-glass nodule the ground glass
would count as a share of the solid part (the phantom's part-solid nodule: 3.41 mL for 4.19).

Partial-volume range of the volume (``border_volume_range_ml``: ``volume_border_range_ml``, any
lesion): an outline drawn at half contrast counts a voxel in when at least half of it is lesion,
so each of its border voxels (26-adjacent to outside, as above) holds between half a voxel and a
whole one of lesion, and each voxel just outside (26-adjacent to the outline) between none and
half: the lesion's volume lies between the count less half its border and the count plus half
the ring outside. It bounds what partial volume alone can do to the count, whatever the lesion's
position in the grid (Ko JP et al., Radiology 2003;228:864-870: volume error of nodules from
partial volume, largest on thick sections where a few sections hold the whole nodule), with no
assumption on the lesion's density; it is wide on thick sections (lung1's 15 mm nodule on 5 mm
sections: 0.98-3.04 mL around 1.76 mL) because there the end sections are border voxels only.
It does not bound a threshold that is not at half contrast, nor a leak.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..limits import TILT_MIN_DEG
from ..stratification.lungrads import rounded_mm
from ..volume import Volume, make_ijk_to_ras
from .common import anatomical_axes, bbox_slices

HALF = 0.5  # share of the voxel extent added to a centre-to-centre diameter (see above)
# the lesion's sizes other than its volume: withheld with it (``LesionMeasurements.size_withheld``)
SIZE_KEYS = ("long_axis_mm", "short_axis_mm", "axial_long_axis_mm", "axial_short_axis_mm", "mean_diameter_mm",
             "volume_pv_ml", "volume_border_range_ml")


@dataclass
class LesionMeasurements:
    kind: str  # "lung_nodule" (nodule or mass in the lung) or "soft_tissue" (liver/soft-tissue tumour)
    volume_ml: float
    long_axis_mm: float  # 3-D maximum diameter
    short_axis_mm: float  # 3-D largest diameter perpendicular to the long axis
    axial_long_axis_mm: float  # largest diameter in an axial slice (RECIST 1.1)
    axial_short_axis_mm: float  # longest diameter perpendicular to it, same slice (RECIST 1.1)
    mean_hu: float
    centroid_ras: list = field(default_factory=list)
    threshold_hu: list = field(default_factory=list)  # [lower, upper] used
    mean_diameter_mm: float = 0.0  # Lung-RADS: (axial long + axial short) / 2, to 0.1 mm
    subtype: str = ""  # solid / part_solid / ground_glass / mass / calcified (lung);
    # hypoattenuating / iso-attenuating / hyperattenuating (soft tissue, against its host tissue)
    host_hu: float | None = None  # soft tissue: median HU of the host tissue the subtype is judged against
    warnings: list = field(default_factory=list)
    # Flags set by the one-click tool (imagio.segmentation.lesion) next to its warnings, so that
    # callers decide on facts, never on the warnings' wording. False for a mask measured directly.
    hit_size_limit: bool = False  # the region reached max_radius_mm from the click (may have leaked)
    irregular: bool = False  # fills < MIN_FILL_OF_SPHERE of the sphere on its long axis (leak along tubes/walls)
    touches_image_edge: bool = False  # the mask touches a face of the image (may continue outside it)
    spans_image: bool = False  # the mask touches two opposite faces of the image (its border is not seen)
    no_intensity_edge: bool = False  # taken without an intensity edge (statistical soft-tissue model)
    edge_support: float | None = None  # soft tissue: share of the boundary with an intensity edge (> 10 HU across it)
    # the click-dependence checks grew the lesion again from their own check clicks (inside the
    # outline, at its core, just outside it): [min, max] mL over the outlines found (this click's
    # included), None when no other click was grown. It is the range over those clicks only, not
    # over every click inside the lesion (other clicks may give other volumes or leak: trial 61 M1)
    volume_range_ml: list | None = None
    # after --add/--remove edits the outline is the user's: the range the checks found on the
    # outline before the edit is kept here (and volume_range_ml is None), not given as the edited one's
    volume_range_before_edit_ml: list | None = None
    click_dependent: bool = False  # those volumes lie more than click_dependent_ratio (lesion.json) apart
    # this outline leaked: it reached the size limit, touches the image's edge without a border of its
    # own (edge_size_unreliable) or is irregular (the criteria check outlines are judged by, lesion._leaked)
    leaked: bool = False
    # an outline grown from a check click on this outline's own tissue (inside it, or just outside it
    # in tissue whose median lies within its HU band, threshold_hu) leaked: the lesion's border is not
    # found from a click, so click_dependent is set and no volume or range is given. A check click on
    # tissue outside that band is on another tissue: its leak is said in a part_of_mass warning (trial 64)
    check_leaked: bool = False
    lung_context: float | None = None  # lung kind, when judged: share of the 1-4 mm shell that is aerated lung
    part_of_mass: bool = False  # lung: the outline is much smaller than the dense tissue the lung encloses around it
    # a local edge measure beside the global ones (edge_support, no_intensity_edge: the whole border):
    # the lowest share (0-1), over the check clicks just outside the outline whose outlines crossed its
    # border back into it, of the crossed stretch where the CT shows an intensity edge (Rose's
    # contrast-to-noise ratio, lesion.json rose_cnr); None when no check outline crossed it (trial 63 L4)
    crossing_edge_support: float | None = None
    # share (0-1) of the outline's surface (mm2) beyond which the tissue lies in its own HU band (its
    # border is not imaged there: the tool's shape limits placed it), and the sides where most of it
    # lies; None when not judged. A warning when at least lesion.json unimaged_border_min (trial 106)
    unimaged_border: float | None = None
    unimaged_border_sides: list = field(default_factory=list)
    fat_density: bool = False  # solid kind whose tissue (air left out) has fat's mean density (may have grown into fat)
    # lung lesions: the partial-volume-corrected volume (mL, module docstring), None when not computed
    volume_pv_ml: float | None = None
    # [lo, hi] mL: the volume with the outline's border voxels counted half out and the voxels just
    # outside it half in (`border_volume_range_ml`): what partial volume can do to the count
    volume_border_range_ml: list | None = None

    @property
    def volume_summary_ml(self) -> float | None:
        """The volume (mL) to present as the lesion's: None when it is click-dependent (other
        clicks inside it gave volumes more than two-fold apart; ``volume_range_ml`` holds the
        range), or when this outline leaked at the image's edge (``edge_leaked``: its volume is
        not the lesion's); ``volume_ml`` (the written outline's) otherwise."""
        return None if (self.click_dependent or self.edge_leaked) else self.volume_ml

    @property
    def edge_leaked(self) -> bool:
        """This outline leaked (``leaked``) and reached the image's edge without a border of its
        own (``edge_size_unreliable``): its size is neither the lesion's nor a bound of it (new-user
        trial 88 M2: STS_010's outline gave 256.1 mL against a 182.8 mL mask). An outline judged
        leaked for its shape alone (``irregular``) keeps its size with the flag: after --add it is
        the user's (two nodules joined by a second click are irregular by design); a size-limit
        leak is ``click_dependent`` already."""
        return bool(self.leaked and self.edge_size_unreliable)

    @property
    def edge_size_unreliable(self) -> bool:
        """True when the mask touches the image edge without a border of its own (it spans the
        image, reached the size limit, is irregular or has no intensity edge): its size may be too
        large, not only too small. A mask that touches the edge otherwise has a size that is a
        lower bound."""
        return self.touches_image_edge and (self.hit_size_limit or self.irregular or self.spans_image
                                            or self.no_intensity_edge)

    @property
    def size_withheld(self) -> str | None:
        """Why the lesion's size is not given, in one place (None when it is given): set exactly
        when ``volume_summary_ml`` is None (``click_dependent`` or ``edge_leaked``). The outline that leaked or that
        another click would draw otherwise is not the lesion's, so neither its volume nor its
        diameters are (new-user trial 68 M5: STS_022's leaked 3351 mL outline gave a 185.8 mm mean
        diameter and a 262 mm long axis while its volume was withheld). ``to_dict`` then gives
        ``volume_ml`` and every diameter (``SIZE_KEYS``) as None; the outline's own volume stays,
        named as the outline's (``outline_volume_ml``). So is its centre: ``centroid_ras`` is None
        too and the outline's centre is ``outline_centroid_ras`` (trial 70 D5: STS_022's leaked outline
        gave a "centroid" 70 mm from the click, outside the sarcoma; a clinical user reads
        ``centroid_ras`` as the lesion's centre, e.g. a target, which a leaked or click-dependent
        outline does not give). An outline that leaked at the image's edge (``edge_leaked``, not
        ``click_dependent``) is withheld the same way (new-user trial 88 M2: STS_010's outline gave
        256.1 mL and a 162 mm long axis against a 182.8 mL mask, while every outline leaked at the
        size limit gave none)."""
        if not (self.click_dependent or self.edge_leaked):
            return None
        if self.edge_leaked and not self.hit_size_limit:
            return ("leaked: the outline reached the image's edge without a border of its own, so its size "
                    "is not the lesion's")
        if self.leaked:
            return "leaked: the outline grew beyond the lesion, so its size is not the lesion's"
        if self.check_leaked:
            return "click-dependent: a check click's outline leaked, so the lesion's border is not found from a click"
        if self.volume_range_ml:   # the range itself is in ``volume_range_ml`` and the warning (said once there)
            return ("click-dependent: the outlines the clicks checked grew differ (volume_range_ml), so no one "
                    "outline's size is the lesion's")
        return "click-dependent: the outline depends on where the click lies, so its size is not the lesion's"

    def to_dict(self) -> dict:
        d = {**asdict(self), "edge_size_unreliable": self.edge_size_unreliable}
        # a click-dependent outline's volume is not the lesion's: only the range is (issue 14);
        # nor are its diameters (trial 68 M5): all withheld with one reason, ``size_withheld``
        d["outline_volume_ml"], d["volume_ml"] = self.volume_ml, self.volume_summary_ml
        d["size_withheld"] = self.size_withheld
        d["outline_centroid_ras"] = list(self.centroid_ras)
        if d["size_withheld"]:
            d.update(dict.fromkeys(SIZE_KEYS + ("centroid_ras",)))
        if d["volume_border_range_ml"]:
            d["volume_border_range_ml"] = [round(float(v), 3) for v in d["volume_border_range_ml"]]
        if self.edge_leaked:
            # a leaked outline bounds no range either (trial 89 M3: STS_010's edge-leaked outline, its
            # size withheld, still gave 229-266 mL for a 182.8 mL tumour; a size-limit leak gives none)
            d["volume_range_ml"] = None
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}


def voxel_extent(direction_ras: np.ndarray, vol: Volume) -> np.ndarray:
    """Voxel extent (mm) along unit RAS directions (N, 3): sqrt(sum_i (u . step_i)^2) over the
    grid's i, j, k steps; equals the spacing along a grid axis."""
    axes = vol.ijk_to_ras[:3, :3]  # columns: i, j, k steps in RAS mm
    return np.sqrt(((np.atleast_2d(direction_ras) @ axes) ** 2).sum(1))


def feret(points: np.ndarray) -> tuple[float, np.ndarray]:
    """Maximum pairwise distance of points (N, d) and its unit direction (exact: over the
    convex hull's vertices, in blocks of 2000 rows)."""
    if len(points) < 2:
        return 0.0, np.eye(points.shape[1])[0]
    pts = points
    if len(points) > 4 + points.shape[1]:
        try:
            from scipy.spatial import ConvexHull

            pts = points[ConvexHull(points).vertices]
        except Exception:  # degenerate (flat/collinear): use all points
            pts = points
    best, pair = -1.0, (0, 0)
    for c0 in range(0, len(pts), 2000):
        d2 = ((pts[c0:c0 + 2000, None, :] - pts[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
        if d2[i, j] > best:
            best, pair = float(d2[i, j]), (c0 + i, j)
    v = pts[pair[1]] - pts[pair[0]]
    n = float(np.linalg.norm(v))
    return n, (v / n if n > 0 else np.eye(points.shape[1])[0])


def longest_perpendicular_chord(points: np.ndarray, u: np.ndarray, step: float) -> float:
    """Longest diameter perpendicular to the unit in-plane direction ``u`` (2,) of boundary points
    (N, 2) in mm: the points are cut into strips ``step`` mm wide across ``u`` (one line
    perpendicular to ``u`` each; the caller gives two voxels: the voxel centres a digital line
    passes through lie within a voxel of it on either side) and the longest extent within one
    strip is returned. Not the
    caliper width over the whole lesion (which spans notches at different positions along the
    long axis and exceeds every line across an irregular outline): RECIST 1.1's short axis is
    one line, perpendicular to the long axis (Eisenhauer 2009)."""
    if len(points) == 0:
        return 0.0
    perp = np.array([-u[1], u[0]])
    strip = np.floor((points @ u) / step).astype(np.int64)
    order = np.argsort(strip, kind="stable")
    b = (points @ perp)[order]
    starts = np.flatnonzero(np.r_[True, np.diff(strip[order]) != 0])
    return float((np.maximum.reduceat(b, starts) - np.minimum.reduceat(b, starts)).max())


def slice_plane_basis(vol: Volume) -> tuple[int, np.ndarray]:
    """(slice array axis, 3x2 orthonormal RAS basis of the slice plane): the slice axis is the
    array axis closest to S; the basis spans the other two grid axes (Gram-Schmidt)."""
    s_ax = anatomical_axes(vol)["S"][0]
    steps = {0: vol.ijk_to_ras[:3, 2], 1: vol.ijk_to_ras[:3, 1], 2: vol.ijk_to_ras[:3, 0]}  # k, j, i
    e1, e2 = (steps[ax] for ax in range(3) if ax != s_ax)
    u1 = e1 / np.linalg.norm(e1)
    u2 = e2 - (e2 @ u1) * u1
    return s_ax, np.c_[u1, u2 / np.linalg.norm(u2)]


def slice_tilt_deg(vol: Volume) -> float:
    """Angle (degrees, 0-90) between the patient's axial plane and the plane of ``vol``'s slices
    (the two grid axes other than the one closest to S, `slice_plane_basis`): 0 on a grid stored
    along the patient's axes and on one rotated about S only (flips and permutations included),
    the tilt of a gantry-tilted or oblique grid otherwise."""
    n = np.cross(*slice_plane_basis(vol)[1].T)
    return float(np.degrees(np.arccos(min(1.0, abs(float(n[2]))))))


def _slice_axes(surf: np.ndarray, vol: Volume, s_ax: int, plane: np.ndarray) -> tuple[float, float]:
    """(long, short) RECIST axes (mm) of the boundary voxels ``surf`` (N, 3) [k, j, i] of ``vol``,
    per slice along the array axis ``s_ax`` in the slice plane's RAS basis ``plane`` (3x2): the
    slice of the largest long axis gives both (module docstring: half-voxel rule)."""
    best = (0.0, 0.0)
    xy = vol.kji_to_world(surf) @ plane
    for s in np.unique(surf[:, s_ax]):
        pts = xy[surf[:, s_ax] == s]
        la, ua = feret(pts)
        perp = np.array([-ua[1], ua[0]])
        e = voxel_extent(np.stack([plane @ ua, plane @ perp]), vol)
        la += HALF * float(e[0])
        if la > best[0]:
            sa = longest_perpendicular_chord(pts, ua, 2.0 * float(e[0])) + HALF * float(e[1])
            best = (la, min(sa, la))   # the short axis is at most the long one (RECIST 1.1)
    return best


def axial_outline(mask: np.ndarray, lo, vol: Volume) -> Volume:
    """The outline of the bool ``mask`` [k, j, i] (a box of ``vol``'s grid whose first voxel is
    ``lo`` in ``vol``) on a grid whose slices are the patient's axial planes: its k axis is S, its
    i and j axes the projections of ``vol``'s in-plane axes on the axial plane, at their spacings;
    its slices half of ``vol``'s voxel extent along S apart (`voxel_extent`: the grid's resolution
    along S, sampled twice per voxel so that the outline's largest section lies within a quarter
    voxel of a slice: one voxel apart, an 8 x 6 mm nodule on a 0.9 x 1.1 x 3 mm grid tilted 12 deg
    read up to 1.7 mm short, as thick slices do whose centre misses the nodule's). Values: the mask interpolated trilinearly, >= 1/2 (`Volume.resample_like`): the
    partial-volume outline, half-way between the last voxel centre in and the first out along each
    grid axis, where the true edge lies on average (a nearest-neighbour copy keeps the voxels'
    staircase: on the tests' ellipsoids its long axes' mean errors were -0.01 to +0.23 voxel against
    -0.37 to +0.04 for this outline, the largest 1.2-1.6 voxels for both: no clear winner). Returns a bool Volume on that grid,
    covering the box with a voxel to spare."""
    m = np.pad(np.asarray(mask, np.float32), 1)
    src = vol.ijk_to_ras.copy()
    src[:3, 3] = vol.kji_to_world((np.asarray(lo, float) - 1.0)[None])[0]
    box = Volume(m, src)
    s_ax, plane = slice_plane_basis(vol)
    steps = {0: vol.ijk_to_ras[:3, 2], 1: vol.ijk_to_ras[:3, 1], 2: vol.ijk_to_ras[:3, 0]}  # k, j, i
    e1, e2 = (steps[ax] for ax in (2, 1, 0) if ax != s_ax)   # i before j, as in ``vol``
    u1 = np.array([e1[0], e1[1], 0.0])
    u1 /= np.linalg.norm(u1)
    u2 = np.array([e2[0], e2[1], 0.0]) - (e2[:2] @ u1[:2]) * u1
    u2 /= np.linalg.norm(u2)
    frame = np.c_[u1, u2, (0.0, 0.0, 1.0)]
    sp = np.array([np.linalg.norm(e1), np.linalg.norm(e2), HALF * float(voxel_extent(np.array([0.0, 0.0, 1.0]), vol)[0])])
    corners = box.kji_to_world(np.array(np.meshgrid(*[[-1.0, n] for n in m.shape], indexing="ij")).reshape(3, -1).T)
    c = corners @ frame
    c0, c1 = c.min(0), c.max(0)
    n = np.floor((c1 - c0) / sp).astype(int) + 1
    ref = Volume(np.zeros(n[::-1], np.uint8), make_ijk_to_ras(sp, frame @ c0, frame))
    return ref.with_array(box.resample_like(ref, order=1, fill=0.0).array >= 0.5)


def oblique_note(tilt_deg: float, axes: tuple[float, float], own: tuple[float, float], vol: Volume) -> str:
    """The warning that the axial axes ``axes`` (long, short mm) were measured on patient-axial
    planes resampled from ``vol``'s grid, whose slices are tilted ``tilt_deg`` from them, with
    ``own`` (long, short mm) those of its own slices, and what the outline leaves unknown: +/- the
    grid's largest voxel extent in the axial plane (a binary outline knows each end of a diameter
    to half a voxel: ``Testing/test_measurements.py``)."""
    ang = np.linspace(0.0, np.pi, 37)
    pm = float(voxel_extent(np.c_[np.cos(ang), np.sin(ang), np.zeros_like(ang)], vol).max())
    return (f"the grid's slices are tilted {tilt_deg:.1f} deg from the patient's axial plane: the RECIST/Lung-RADS "
            f"axial axes {axes[0]:.1f} x {axes[1]:.1f} mm (+/- {pm:.1f} mm each) were measured on patient-axial "
            f"planes resampled from it, not on its own slices (there {own[0]:.1f} x {own[1]:.1f} mm)")


def measure(mask: np.ndarray, vol: Volume, ct: np.ndarray | None = None, kind: str = "") -> LesionMeasurements:
    """Volume, RECIST 1.1 axial long/short axes, Lung-RADS mean diameter and 3-D long/short
    axes of a lesion mask [k, j, i] on ``vol``'s grid (any affine); see the module docstring
    for the definitions and the half-voxel treatment. ``ct``: [k, j, i] HU for ``mean_hu``.
    ``warnings``: the outline crosses slices the DICOM reader interpolated across a gap
    (`interpolated_slabs.crossing_note`), else none.

    Raises InputError on an empty mask."""
    box = bbox_slices(mask, 1.0)
    if box is None:
        raise InputError("the lesion mask is empty: nothing to measure")
    # the morphology below reaches one voxel: on the mask's bounding box grown by two voxels it
    # gives the same voxels as on the whole grid (outside the volume both see the border value
    # 0), and the voxel lists keep their order (C order within a box), so every figure is equal
    lo = np.array([b.start for b in box])
    mask = mask[box]
    kji = np.argwhere(mask) + lo
    s_ax, plane = slice_plane_basis(vol)
    cross = np.zeros((3, 3, 3), bool)
    cross[tuple(slice(None) if ax != s_ax else 1 for ax in range(3))] = ndimage.generate_binary_structure(2, 1)
    shape_m = ndimage.binary_opening(mask, structure=cross)
    if shape_m.sum() < 0.9 * len(kji):
        shape_m = mask
    surf = np.argwhere(shape_m & ~ndimage.binary_erosion(shape_m)) + lo
    ras = vol.kji_to_world(surf)
    long3, u = feret(ras)
    basis = np.linalg.svd(np.eye(3) - np.outer(u, u))[0][:, :2]
    short3, w2 = feret(ras @ basis)
    w = basis @ w2
    ext = voxel_extent(np.stack([u, w]), vol)
    long3, short3 = long3 + HALF * float(ext[0]), short3 + HALF * float(ext[1])
    # each axis gets its own voxel's half-extent (anisotropic voxels: 0.8 mm in-plane, 2.5 mm
    # across slices): a short axis across the slices can then come out longer than a long axis
    # in the plane (new-user trial 61 L3: 26.54 vs 26.29 mm on LIDC-IDRI-0003); both are
    # diameters of the lesion at right angles, so the larger is the long axis
    long3, short3 = max(long3, short3), min(long3, short3)
    # axial (RECIST 1.1, Lung-RADS): on the patient's axial planes. A grid whose slices are axial
    # (tilt <= TILT_MIN_DEG: header rounding) is measured on its own slices, in their own
    # coordinates; an oblique one on its outline resampled onto an axial grid (`axial_outline`)
    tilt = slice_tilt_deg(vol)
    notes = []
    if tilt <= TILT_MIN_DEG:
        best = _slice_axes(surf, vol, s_ax, plane)
    else:
        avol = axial_outline(shape_m, lo, vol)
        am, own = avol.array, _slice_axes(surf, vol, s_ax, plane)
        # an outline smaller than the axial grid's voxels may hold none of its points: its own slices then
        if am.any():
            best = _slice_axes(np.argwhere(am & ~ndimage.binary_erosion(am)), avol, 0, slice_plane_basis(avol)[1])
            notes.append(oblique_note(tilt, best, own, vol))
        else:
            best = own
            notes.append(f"the grid's slices are tilted {tilt:.1f} deg from the patient's axial plane and the outline "
                         "is too small to resample onto axial planes: its axial axes were measured on the grid's own slices")
    vals = np.asarray(ct)[box][mask] if ct is not None else np.zeros(1)
    from ..interpolated_slabs import crossing_note

    gap = crossing_note(vol, mask, lo)   # new-user trial 103 F2.1: measured across slices the reader interpolated
    return LesionMeasurements(
        warnings=([gap] if gap else []) + notes,
        kind=kind, volume_ml=float(mask.sum() * vol.voxel_volume_ml),
        volume_border_range_ml=border_volume_range_ml(mask, vol),
        long_axis_mm=long3, short_axis_mm=short3,
        axial_long_axis_mm=best[0], axial_short_axis_mm=best[1], mean_hu=float(vals.mean()),
        centroid_ras=[round(float(c), 2) for c in vol.kji_to_world(kji.mean(0)[None])[0]],
        mean_diameter_mm=lung_rads_mean_mm(best[0], best[1]))


def lung_rads_mean_mm(long_mm: float, short_mm: float) -> float:
    """Lung-RADS v2022's mean diameter (mm) of a nodule whose long and short axes (mm, one plane) are
    ``long_mm`` and ``short_mm``: each axis as the tables give it (0.01 mm), then to one decimal, then
    their mean to one decimal, halves up (`lungrads.rounded_mm`), as a reader computes it from the axes the report shows
    (new-user trial 107 F5: 6.02 x 5.86 mm gave 5.9 mm, category 2, beside the shown axes "6.0 x 5.9",
    whose mean is 6.0 mm, category 3). Source: ``size_cut`` of ``lungrads_v2022.json``."""
    from decimal import Decimal

    # each axis first as IMAGIO's tables give it, to 0.01 mm (new-user trial 110: 25.7451 mm, shown 25.75,
    # went to 25.7 where a reader of the table takes 25.8: the mean 23.5 against the reader's 23.6)
    tenths = [Decimal(repr(rounded_mm(round(float(v), 2)))) for v in (long_mm, short_mm)]
    # the mean of the two tenths in decimal: 0.5 * (21.9 + 11.2) is 16.549999... in binary, 16.5 not 16.6
    return rounded_mm(float((tenths[0] + tenths[1]) / 2))


def _border_and_ring(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(interior, border, ring) of the bool mask ``m`` [k, j, i]: the voxels with all 26
    neighbours in ``m``, the rest of ``m`` (26-adjacent to outside; the array's edge counts as
    outside), and the voxels outside ``m`` 26-adjacent to it. ``m`` needs a free voxel around it
    for the ring to be whole."""
    full = np.ones((3, 3, 3), bool)
    inner = ndimage.binary_erosion(m, structure=full, border_value=0)
    return inner, m & ~inner, ndimage.binary_dilation(m, structure=full) & ~m


def border_volume_range_ml(mask: np.ndarray, vol: Volume) -> list[float]:
    """[lo, hi] mL that partial volume allows for the lesion outlined at half contrast by the bool
    ``mask`` [k, j, i] on ``vol``'s grid (any affine): the voxel count less half its border voxels,
    plus half the voxels just outside it (`_border_and_ring`; module docstring, with its source).
    Raises InputError on an empty mask."""
    box = bbox_slices(mask, 1.0)
    if box is None:
        raise InputError("the lesion mask is empty: nothing to measure")
    sl = tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n)) for b, n in zip(box, mask.shape))
    m = np.asarray(mask[sl], bool)
    _, border, ring = _border_and_ring(np.pad(m, 1))
    n, v = float(np.count_nonzero(m)), float(vol.voxel_volume_ml)
    return [(n - 0.5 * np.count_nonzero(border)) * v, (n + 0.5 * np.count_nonzero(ring)) * v]


def partial_volume_ml(mask: np.ndarray, vol: Volume, ct: np.ndarray, threshold_hu: float) -> float | None:
    """Partial-volume-corrected volume (mL) of a lesion of one density ``mask`` [k, j, i] outlined on ``ct``
    [k, j, i] (HU, ``vol``'s grid, any affine) at ``threshold_hu`` (the outline's lower threshold,
    half-way between the surroundings and the lesion): see the module docstring. None when the
    mask has no interior voxel (no lesion level) or no surrounding voxel below the threshold (no
    background level), or when the lesion is not denser than its surroundings."""
    box = bbox_slices(mask, 1.0)
    if box is None:
        return None
    # five voxels around the mask: its rings out to the fourth lie inside the box
    sl = tuple(slice(max(b.start - 5, 0), min(b.stop + 5, n)) for b, n in zip(box, mask.shape))
    m, a = mask[sl], np.asarray(ct, float)[sl]
    full = np.ones((3, 3, 3), bool)
    inner, border, ring = _border_and_ring(m)
    grown = m | ring
    # the surroundings' level beyond the partial-volume ring: voxels 2-4 voxels out (the ring
    # itself mixes lesion in: 1.5 mm phantom nodule, ring -756 HU against lung -840 HU)
    far = ndimage.binary_dilation(grown, structure=full, iterations=3) & ~ndimage.binary_dilation(grown, structure=full)
    around = a[far & (a < threshold_hu)]
    if not inner.any() or around.size == 0:
        return None
    lesion, bg = float(np.median(a[inner])), float(np.median(around))
    if lesion <= bg:
        return None
    f = (a - bg) / (lesion - bg)
    outside = f[ring]
    total = inner.sum() + np.clip(f[border], 0.0, 1.0).sum() + np.where(outside < 0.5, np.clip(outside, 0.0, None), 0.0).sum()
    return float(total * vol.voxel_volume_ml)
