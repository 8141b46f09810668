"""One-click lesion segmentation: a RAS point inside a lesion (lung nodule or mass, liver tumour,
soft-tissue tumour) -> its mask, its type and its measurements, with warnings when the result is
implausible.

Method (inside a box around the click that grows, 40 mm -> ``max_radius_mm``, while the result
touches the box):
Every threshold, with its published source or its stated method reason, is in
``imagio/data/lesion.json`` (read into the module constants below).

1. Intensity at the click: median and robust spread in a 2 mm ball. Air (< -850 HU, aerated lung:
   Gevenois et al., AJRCCM 1996) at the click is refused; bone/calcium (> 400 HU) too, unless the
   click lies inside the lung envelope (a calcified nodule, typed ``calcified`` above 200 HU).
2. Lung context: the aerated lung in the box (connected air < -400 HU whose median is above
   -950 HU: parenchyma, not gas; see ``lungs``) and its envelope: per axial slice, the convex hull
   of each lung component (the costal surface of the lung follows the convex rib cage, so a mass
   that pushes into the lung from the chest wall lies inside the hull while the chest wall lies
   outside). Each concavity of the hull (a component of hull minus lung in a slice) is kept when
   the lung piece is at least as large as it (a thin crescent of lung around the liver dome does
   not enclose the liver). A click in a concavity the lung does not outweigh (a mass larger than
   the lung beside it, or filling the lung's cross-section) uses that concavity, but only when
   the usual envelope gives no lung lesion (joined first, it took the liver under the dome for a
   click on the caudal slice of a mass). A lung cut by the field of view (an image face or a
   reformat's padding) continues beyond it: the pieces of one lung that reach the same face in
   a slice are also hulled as one (`_joined_beyond_the_end`), so the envelope reaches the face
   between them (lung2's mass on a box whose face cut the lung wrapping it: 32.2 -> 37.3 mL of
   the 39.6 mL in the box).
   If the click is inside the envelope, the lesion is what is denser than the parenchyma inside
   it: seeded region at the midpoint between the parenchyma's median and the lower quartile of
   the region's core (a solid edge at half maximum, a ground-glass rim kept). The type is decided
   from the grown region: it is a lung lesion if aerated lung covers at least 20 % of its outer
   shell (1-4 mm beyond it), else the soft-tissue rule applies. A click beside the envelope or
   only in a concavity the lung does not outweigh, whose soft-tissue lesion is closed in the box
   and not bordered by aerated lung, is typed soft tissue (the lung crescent round the liver
   dome has the liver as its concavity). A region grown by the soft-tissue rule that aerated
   lung borders as a lung lesion (the click beside the envelope, e.g. in tissue against the
   mediastinum) is grown again from its core, where the rules type it; a lung lesion there
   holding at least half of it is the outline given, else the warning says the type, so the
   outline, depends on the click (`_typed_at_core`).
   A lung mass (equivalent diameter >= 30 mm) displaces the lung: the lung lies above and below it
   along S, but need not lie between it and the chest wall or the mediastinum (a mass against the
   chest wall, or one filling the lung's cross-section, leaves a crescent of lung whose per-slice
   hull cuts it at a chord). Where the envelope is in doubt (a mass, a click in a concavity the
   lung does not outweigh, or an outline much smaller than the dense tissue the lung encloses),
   the mass is also read without it (`_displaced_mass`): the dense tissue whose columns along S
   have lung above and below, split by density from a clearly denser structure joined to it
   (two Otsu classes, Ashman's D >= 2: the enhancing heart it lies on). That reading is the
   outline when it is a closed mass bordered by lung as a lung lesion is, holds most of the
   envelope's outline and differs from it by more than the click spread (15 %): the 100 mm
   necrotic phantom mass filling the lung against the heart, Dice 0.27-0.84 -> 0.95 from any click.
   The subtype comes from the region too: mass above
   30 mm, calcified, else from its solid component (> -300 HU): none of micronodule size ->
   ground glass, >= 80 % of the interior -> solid, else part-solid.
3. Soft tissue (liver tumour, soft-tissue or bone-free tumour): on a lightly smoothed image
   (Gaussian, sigma 1 mm: CT noise is white, a tumour is larger than a few mm), voxels closer in
   HU to the lesion than to the tissue around a first estimate (midpoint threshold between the
   lesion's median and the median of a shell 2-6 mm around it); fat (< -30 HU; adipose tissue
   -190..-30 HU, Lamba et al., AJR 2014) and bone (> 400 HU) always bound it. Its subtype is
   decided on the final outline against its host tissue (``attenuation_subtype``: the median of
   a 2-6 mm shell beyond it, within the organ mask when given): iso-attenuating within 10 HU,
   else hypo- or hyperattenuating.
   Where that rule finds no intensity edge (it had to cut at a guessed radius) or gives less
   than the confident core of the homogeneous region at the click (noise made a speck of it: a
   sarcoma among muscle of the same mean HU on a non-contrast CT), the statistical model of
   ``_soft_statistical`` is used instead: a robust confidence-connected region (median +/- 3
   robust SD of a 5 mm ball at the click, on a 2 mm-denoised image, re-estimated once on the
   region's core), attachments cut, necrosis open to its edge closed; a warning says its border
   is approximate. Its edge is moved to half contrast where the tissue beyond differs
   measurably (more than 2 x 3 robust SD): the denoising blur otherwise keeps it a rim short of
   every contrasted edge (``_edge_at_half_contrast``). A region typed "lung" whose shell is
   bordered more by outside air than by lung-like air (a CT table's foam reads -900 HU, the limb lies in its concavity) is soft tissue.
   An outline taken without an intensity edge is grown again from its own core
   (``_check_from_core``): when that outline does not reach the click, the click's region was
   mostly tissue beside the lesion (a click at a sarcoma's edge flooded the thigh's muscle) and
   no outline is given (ImagioError); when the click's outline is more than 4 times the core's
   it is cut back to the core's outline; when the two volumes differ by more than
   15 % a warning says the volume depends on the click. Parts of it joined to the click's mass
   only through a neck narrower than half the thinner side's inscribed radius that run out of
   the image (a muscle flooded through a fascial plane) are cut off, with a warning
   (``_necked_parts``: watershed of the distance map, Kuhnigk et al., IEEE TMI 2006); a lobe
   enclosed in the image is kept.
   A soft-tissue result whose shell is mostly soft tissue is probed from that tissue
   (``_whole_around_part``): a click in the layer around it (its largest parts, their deepest
   voxel) grown by the same model; when that outline is closed in the box, holds most of the
   click's region and is 1.15-4 times it, the click lay in one part of a heterogeneous tumour (a
   denser or necrotic part: STS_002 clicked in its denser part gave 27 of 53 mL) and the union
   is the outline, with a warning that it depends on the click. Every soft-tissue outline is
   then grown again from the interior voxel farthest from the click (``_click_agreement``): a
   volume more than 15 % apart is warned (issue 14: volumes from any interior click agree).
   The probe clicks are chosen by the geometry only (``_deepest_probe``: on a distance map's
   plateau on thick slices, the voxel whose statistics ball lies deepest, not the first in the
   array's storage order), so a flipped or transposed copy of the image gives the same outline.
   Lung lesions get the same second-click check (the envelope joins a perihilar mass to the
   hilum and mediastinum, which a click at the mass's edge followed).
4. Separation by morphology: from the click, an ascent on the region's distance map (over the
   26 neighbours and the inscribed ball, so thick-slice plateaus do not stop it) finds the
   lesion's core (its largest inscribed ball near the click, radius R); the region is opened
   with a ball of radius 0.5 R (at least ``open_mm``; a finer ball than the finest voxel opens
   nothing on the grid, so when R exceeds that voxel a one-voxel opening is taken where the blob
   it leaves holds nothing thicker than the core, i.e. it cut the lesion free; joined to a
   thicker structure the region goes unopened to the split below): vessels, bronchial walls,
   pleural tags and bridges to neighbouring tissue narrower than the lesion are cut wherever the
   click lies inside the lesion. The one-voxel layer the opening shaves off is given back. A lung lesion's
   half-maximum region is grown from the core its first region gives the click (a click on a
   thick-slice lesion's end slice gave a lobe of it).
5. Necrotic, cystic or cavitated centres are part of the lesion: holes are filled in 3-D and in
   every axial slice; a lung lesion's cavities (its 3-D holes and the gas holes of its axial
   sections) before its attachments are cut, so an opening never cuts a thin cavity wall
   (``_with_cavities``).
6. Extra clicks: ``include`` points add the lesion grown from each of them (same type);
   ``exclude`` points remove the part of the lesion that is nearer to them than to the click.
Warnings (``LesionMeasurements.warnings``): the result is tiny (equivalent diameter < 3 mm, a
micronodule: Fleischner glossary, Hansell et al., Radiology 2008), fills less than 5 % of its
circumscribed sphere (a leak along tubes or a plate along a wall), touches the image edge or ends
in tissue of its own density within ``SHELL_MM[1]`` of the end of the measured field (an array
face or a reformat's padding: ``_near_field_end``; the lesion may continue outside the field of
view, on the patient's side named), reached ``max_radius_mm``, or (lung) is more than
4 times smaller than the region at the detection threshold it was refined from, or than the dense
tissue enclosed by lung around the click (the same thresholds, no per-slice envelope, only the
columns along S that have aerated lung above and below: ``_roofed_columns``; a mass filling the
lung's cross-section clicked off its middle slices, where the envelope cuts it).

On an oblique grid (a reformat tilted off the patient's axes) the per-slice rules above (the
envelope's hulls, the per-slice hole filling, the columns along S) work in the patient's axial
planes: their masks are brought onto an axial grid at the finest spacing by nearest neighbour
and back (``_Planes``); the CT itself is not resampled.

Checked from outside (issue 14, ``_check_from_outside`` / ``lesion_shell``): probe clicks in the
tissue of the outline's density class 2-6 mm beyond it, contiguous with it, are grown by the same
model; a probe outline holding most of the outline and larger than it says the outline may hold
only part of the lesion (its volume joins the range). Check outlines that leaked (size limit,
no border at the image's edge, irregular, or grown as a lung lesion yet bordered by lung less than
a lung lesion is) are said as leaks, not given as the range's ends; a check outline that would be
an end of the range is judged as its click run alone would be, a click inside it too
(``_check_outline_leak``). When a check outline leaked, or a check click grew no lesion, no range
is given and the result is flagged (``leaked`` / ``click_dependent``); a note that says the volume
depends on the click always comes with ``click_dependent``. A lung-typed outline grown
on beyond the first box is typed again by the same lung-context rule on its final shape.

Measurements: ``imagio.segmentation.measurements`` (RECIST 1.1, Lung-RADS v2022, volume).
"""

from __future__ import annotations

import collections
import json
import threading
import weakref
from importlib import resources

import numpy as np
from scipy import ndimage

from ..directions import SIDE_NAMES, side_codes
from ..errors import ImagioError, InputError
from ..volume import Volume
from .measurements import LesionMeasurements, measure, partial_volume_ml  # noqa: F401 (public here too)
from .common import (GAS_MEDIAN_HU, LUNG_HU, _mask_box, anatomical_axes, as_progress, ball, bbox_slices, check_ct,
                     components, fill_holes_3d, fill_holes_per_slice, label_medians, open_mm)

# every threshold, with its source: imagio/data/lesion.json
LIMITS = json.loads(resources.files("imagio.data").joinpath("lesion.json").read_text(encoding="utf-8"))


def _v(key):
    return LIMITS[key]["value"]


AIR_CLICK_HU = _v("air_click_hu")
BONE_CLICK_HU = _v("bone_click_hu")
CALCIFICATION_MARGIN_HU = _v("calcification_margin_hu")
from ..limits import FAT_MAX_HU, FAT_MIN_HU  # noqa: E402 (lesion.json's fat band, read once in imagio.limits)
GROUND_GLASS_MAX_HU = _v("ground_glass_max_hu")
from ..limits import GROUND_GLASS_MIN_HU  # noqa: E402 (lesion.json's ground_glass_min_hu, read once in imagio.limits)
from ..limits import RESAMPLED_SECTIONS_RATIO  # noqa: E402 (lesion.json's, shared with the airway check)
LESION_OVER_LUNG_MIN_HU = _v("lesion_over_lung_min_hu")
LESION_OVER_LUNG_NOISE_SD = _v("lesion_over_lung_noise_sd")
CLICK_MARGIN_HU = _v("click_margin_hu")
SOFT_FIRST_SD = _v("soft_first_sd")
SOFT_RANGE_SD = _v("soft_range_sd")
SHELL_MM = tuple(_v("shell_mm"))
LUNG_SHELL_MM = tuple(_v("lung_shell_mm"))
FACING_SD = _v("facing_sd")
NOISE_FLOOR_HU = _v("noise_floor_hu")
SHELL_MIN_HU = _v("shell_min_hu")
MASS_DIAMETER_MM = _v("mass_diameter_mm")
MEASUREMENT_MAX_SLICE_MM = _v("measurement_max_slice_mm")
MICRONODULE_MM = _v("micronodule_mm")
RESAMPLED_SECTIONS_MIN_MM = _v("resampled_sections_min_mm")
LUNG_CONTEXT_FRACTION = _v("lung_context_fraction")
ENCLOSED_LUNG_FRACTION = _v("enclosed_lung_fraction")
SOLID_INTERIOR_FRACTION = _v("solid_interior_fraction")
HULL_MIN_FILL = _v("hull_min_fill")
OPEN_FRACTION = _v("open_fraction")
GIVEBACK_MAX_SPACING_RATIO = _v("giveback_max_spacing_ratio")
MIN_FILL_OF_SPHERE = _v("min_fill_of_sphere")
START_RADIUS_MM = _v("start_radius_mm")
ENVELOPE_RADIUS_MM = _v("envelope_radius_mm")
MAX_RADIUS_MM = _v("max_radius_mm")
SMOOTH_SIGMA_MM = _v("smooth_sigma_mm")
LARGER_BLOB_RATIO = _v("larger_blob_ratio")
NECROSIS_MAX_RATIO = _v("necrosis_max_ratio")
EDGED_CORE_MAX_RATIO = _v("edged_core_max_ratio")
CALCIFIED_MIN_HU = _v("calcified_min_hu")
STAT_SIGMA_MM = _v("statistical_sigma_mm")
CLICK_BALL_MM = _v("click_ball_mm")
CLOSE_FRACTION = _v("close_fraction")
SMALLER_THAN_FIRST = _v("smaller_than_first_ratio")
CLICK_VOLUME_SPREAD = _v("click_volume_spread")
CLICK_DEPENDENT_RATIO = _v("click_dependent_ratio")
OVERSHOOT_RATIO = _v("overshoot_ratio")
ISO_MARGIN_HU = _v("iso_attenuation_margin_hu")
PROBE_MIN_OVERLAP = _v("probe_min_overlap")
PROBES = int(_v("probe_clicks"))
EDGE_SUPPORT_MIN = _v("edge_support_min")
UNIMAGED_BORDER_MIN = _v("unimaged_border_min")
UNIMAGED_NOTE = "the outline's border is not seen on the CT"
ROSE_CNR = _v("rose_cnr")
BIMODAL_D = _v("bimodal_d")
END_SECTION_DENSE_SHARE = _v("end_section_dense_share")
NO_EDGE_NOTE = "the lesion has no clear intensity edge"
CORE_NOTE = "the outline may hold only the core"
DEPENDS = "depends on where the click lies"
# the openings of the warnings on this outline's own leak (said once: trial 68 L6)
OWN_LEAK = "leaked: the outline written"   # _click_range: it reached the size limit
SIZE_LIMIT = "the lesion reached the size limit"   # the growth loop
EDGE_UNBOUNDED = "the lesion reached the edge of the image"   # _edge_warning, grown without a border
# the clicks a range is over: the tool's own check clicks, not every click inside the lesion (new-user
# trial 61 M1: '21.4-59.8 mL' read as the range of any click, yet clicks inside the 59.8 mL outline leaked)
CHECK_CLICKS = ("this click and the tool's own check clicks (not every click inside the lesion: "
                "others may give other volumes or leak)")
PART_OF_MASS = "the outline may hold only part of a mass"   # a lung outline smaller than its enclosed dense tissue
# how a check click just outside the outline was grown (trial 63 L3: its figures could not be had by
# clicking its coordinates, where a click is typed and checked on its own)
PROBE_RUN = ("The check click was grown as this outline's type in its search box, without checks of its own: "
             "clicked alone, it may give another result.")


class _Note(str):
    """A warning's text (a ``str``: notes are lists of text) that also says what it states, so
    that `_click_range` finds the note that already names a fact by what it is, not by matching
    its words (lesion16: it looked for a volume's text such as "483.8 mL" in a note holding
    "leak"). ``kind``: "core_differs" (the click's outline and its core's differ, ``volumes_ml``
    = (click's, core's)), "core_leak" (the core's outline leaked, ``leaks_ml`` its volume),
    "check_leak" (a check click's outline leaked, ``leaks_ml``); ``volumes_ml``: the outlines'
    volumes (mL) the note names; ``leaks_ml``: those of them that leaked."""

    kind: str
    volumes_ml: tuple
    leaks_ml: tuple

    def __new__(cls, text: str, kind: str, volumes_ml=(), leaks_ml=()):
        n = super().__new__(cls, text)
        n.kind = kind
        n.volumes_ml = tuple(round(float(v), 1) for v in volumes_ml)
        n.leaks_ml = tuple(round(float(v), 1) for v in leaks_ml)
        return n

    def __getnewargs__(self):   # copy and pickle keep what it states
        return str(self), self.kind, self.volumes_ml, self.leaks_ml

    def retold(self, text: str) -> "_Note":
        """The same note with new words."""
        return _Note(text, self.kind, self.volumes_ml, self.leaks_ml)


def _component_at(mask: np.ndarray, seed: tuple, spacing, within_mm: float = 3.0) -> np.ndarray:
    """Component of ``mask`` containing ``seed``, or the one nearest to it (within ``within_mm``).

    Labelled on the box of the mask and the seed (every component and every labelled voxel
    lies in it, and each line of the box holds every labelled voxel of the array's line through
    it: the same component, and the same nearest voxel from scipy's distance transform; issue
    20: the lesion tool's regions fill a fraction of their boxes)."""
    out = np.zeros(np.shape(mask), bool)
    mbox = _mask_box(np.ascontiguousarray(mask, dtype=bool)) if np.ndim(mask) == 3 else None
    if mbox is None:
        if np.ndim(mask) == 3:
            return out
        mbox = tuple(slice(0, n) for n in np.shape(mask))
    box = tuple(slice(min(b.start, int(q)), max(b.stop, int(q) + 1)) for b, q in zip(mbox, seed))
    lo = [b.start for b in box]
    sd = tuple(int(q) - l for q, l in zip(seed, lo))
    lab, n, _ = components(mask[box], connectivity=6)
    if n == 0:
        return out
    v = lab[sd]
    if v == 0:
        dist, ind = ndimage.distance_transform_edt(lab == 0, sampling=spacing, return_indices=True)
        if dist[sd] > within_mm:
            return out
        v = lab[tuple(ind[:, sd[0], sd[1], sd[2]])]
    out[box] = lab == v
    return out


def _edt(m, sk):
    """``common.depth_mm``: depth (mm) inside ``m``, finite even when ``m`` fills its box."""
    from .common import depth_mm

    return depth_mm(m, sk)


def _touches_border(m: np.ndarray) -> bool:
    return bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()
                or m[:, :, 0].any() or m[:, :, -1].any())


def _touched_faces(m: np.ndarray) -> list:
    """[(axis, side)] of the array faces the mask touches (side 0: index 0, 1: last index). Each
    face is read as a view (``np.take`` copied it: 10 ms a call on the demo's boxes, issue 20)."""
    out = []
    for ax in range(3):
        for side, idx in ((0, 0), (1, m.shape[ax] - 1)):
            if m[(slice(None),) * ax + (idx,)].any():
                out.append((ax, side))
    return out


def _climb(depth: np.ndarray, seed: tuple, sk=None) -> tuple:
    """The core of the blob the seed lies in: from ``seed``, repeatedly to the deepest voxel of
    ``depth`` (the region's distance map, mm) among its 26 neighbours and inside its inscribed
    ball (a ball of radius ``depth`` lies in the region, so the step never leaves the blob the
    seed is in), until none is deeper. A 26-neighbour steepest ascent stopped on the plateaus and
    ridges of a distance map on thick slices (lung2's mass clicked on its cranial slice: a core
    of 6 mm depth in a 17 mm deep mass). The loop runs over ascent steps, not voxels. Without
    ``sk`` (spacing, mm) the 26-neighbourhood is used."""
    p = np.asarray(seed)
    shape = np.asarray(depth.shape)
    n26 = np.argwhere(np.ones((3, 3, 3), bool)) - 1
    for _ in range(int(shape.sum())):
        dp = float(depth[tuple(p)])
        off = n26
        if sk is not None and 0 < dp < np.inf:   # inf: the region fills the box (no background)
            b = ball(dp, sk)
            off = np.vstack([n26, np.argwhere(b) - np.array(b.shape) // 2])
        q = p + off
        q = q[np.all((q >= 0) & (q < shape), axis=1)]
        d = depth[tuple(q.T)]
        if d.max() <= dp:
            break
        p = q[int(np.argmax(d))]
    return tuple(int(v) for v in p)


def _separate(m: np.ndarray, seed: tuple, sk, min_open_mm: float, split=None, fringe=None) -> np.ndarray:
    """The lesion part of a grown region: opened by half the inscribed radius of the blob the
    seed lies in (attachments narrower than the lesion are cut), the shaved layer given back,
    holes filled (3-D and per axial slice). ``split``: the CT's HU on ``m``'s grid (lung lesions
    only: on soft tissue without an intensity edge it cut sarcomas down to specks without a
    warning): also cut off blobs at least ``LARGER_BLOB_RATIO`` times thicker than the lesion
    (`_split_from_larger_blobs`, which tells ``fringe`` of a fat-density basin)."""
    if not m.any():
        return m
    depth = _edt(m, sk)
    core = _climb(depth, seed, sk) if m[seed] else seed
    r = max(min_open_mm, OPEN_FRACTION * float(depth[core]))
    op = _freed_by_one_voxel(m, depth, core, sk) if r < float(min(sk)) < float(depth[core]) else None
    if op is None:
        op = open_mm(m, r, sk) if r > 0.5 * float(min(sk)) else m
        op = _component_at(op, core, sk) if op.any() else op
    if not op.any():
        op = _component_at(m, seed, sk)
    elif split is not None and op[core]:  # lung lesions: the heart or a hilar vessel beyond a wide vessel
        op = _split_from_larger_blobs(op, depth, core, split, fringe)
    # give back the one-voxel boundary layer the opening shaved off the lesion itself: one voxel
    # along each grid axis finer than GIVEBACK_MAX_SPACING_RATIO times the finest (lesion.json).
    # A ball of 1.01 x the finest spacing reached along that axis only on a near-isotropic grid:
    # after a 15 deg gantry-tilt correction (2.41 x 2.5 x 2.5 mm) a 20 mm sphere lost its one-voxel
    # caps in-plane, 4.045 mL for 4.189 (the dicom_gantry_tilt case, new-user trial 60 L1)
    sp = np.asarray(sk, float)
    struct = np.zeros((3, 3, 3), bool)
    for ax in np.flatnonzero(sp < GIVEBACK_MAX_SPACING_RATIO * sp.min()):
        struct[tuple(slice(None) if d == ax else 1 for d in range(3))] = True
    # on op's box grown by the structure's one voxel (nothing beyond it is dilated into)
    out = op.copy()
    box = bbox_slices(op)
    if box is not None:
        out[box] |= ndimage.binary_dilation(op[box], structure=struct) & m[box]
    return out


def _freed_by_one_voxel(m: np.ndarray, depth: np.ndarray, core: tuple, sk) -> np.ndarray | None:
    """The blob of ``core`` cut free by an opening of one voxel (a ball of the finest spacing,
    ``sk`` mm), or None where that opening leaves it joined to a structure thicker than it.

    Where half the lesion's inscribed radius (``depth[core]``, mm) is finer than a voxel, the
    opening of `_separate` (Kuhnigk et al., IEEE TMI 2006: attachments narrower than the nodule
    are cut by an opening with a radius from the nodule's core) holds one voxel and cuts nothing;
    the finest the grid allows is one voxel, which a core deeper than a voxel survives (the
    phantom's 10 mm perifissural nodule on 2 mm voxels, 5 mm thick: core 2.8 mm deep, and the
    outline ran on along a vessel touching it, 132 voxels for 33). The blob it leaves is taken
    only where it holds nothing deeper than the core, i.e. the lesion cut free. Where it is still
    joined to a thicker structure (the hilum, the heart), `_split_from_larger_blobs` separates
    them on the unopened region: a one-voxel shave there only moves the watershed's saddles (the
    chest CTA's hilar candidate at a vessel branching lost 0.02 of its 0.08 mL, and with it the
    doubt that it is part of the 0.55 mL of dense tissue around it, seg17's opening reverted in
    e473f2d). ``m``: bool [k, j, i] region; ``depth``: its distance map (mm, `_edt`); ``core``:
    the seed's core (`_climb`)."""
    opened = open_mm(m, float(min(sk)), sk)
    if not opened[core]:
        return None
    blob = _component_at(opened, core, sk)
    return blob if float(depth[blob].max()) <= float(depth[core]) else None


def _split_from_larger_blobs(op: np.ndarray, depth: np.ndarray, core: tuple, hu: np.ndarray | None = None,
                             fringe: list | None = None) -> np.ndarray:
    """The lesion's basin of ``op``: where the opened region still holds a blob at least
    ``LARGER_BLOB_RATIO`` times as thick as the lesion (a hilar vessel or the heart joined to a
    nodule through a vessel wider than the opening), a marker-controlled watershed on the
    inverted distance map (scikit-image) splits them at the saddle; else ``op`` unchanged.

    ``fringe``: a list that gets (basin voxels, larger blob's voxels) when the basin's tissue
    (``hu``, HU on ``op``'s grid; its median) has fat's density (below ``FAT_MAX_HU``) and the
    larger blob's is denser: a lesion is denser than fat (the rule of
    `_solid_click_grew_into_fat`), so such a basin is more likely the partial-volume fringe of
    the larger blob on a thick section than a lesion beside it (lung2's 48 mL mass clicked on
    its caudal 5 mm section: a 0.7 mL basin of -120 HU mean was kept and the mass cut off, Dice
    0.01, lesion20). The split stays (not splitting there grew lung2's mass into the heart, 502
    mL): the caller says the outline depends on the click."""
    big = op & (depth >= LARGER_BLOB_RATIO * float(depth[core]))
    if not big.any():
        return op
    from skimage.segmentation import watershed

    markers = np.zeros(op.shape, np.int32)
    markers[big] = 2
    markers[core] = 1
    kept = watershed(-depth, markers, mask=op) == 1
    rest = op & ~kept
    if (fringe is not None and hu is not None and kept.any() and rest.any()
            and np.median(hu[kept]) < FAT_MAX_HU <= np.median(hu[rest])):
        fringe.append((int(kept.sum()), int(rest.sum())))
    return kept


class _Planes:
    """The patient's axial planes on an oblique grid: a bool or label mask of a box of the image
    is brought onto an axial grid (rows S, A, R of the patient; isotropic at the image's finest
    spacing, so no in-plane detail is lost; nearest neighbour, a mask is never blurred) for a
    rule that works slice by slice, and its result is brought back onto the box's own voxels
    (nearest neighbour at their centres). The CT itself is never resampled: every intensity rule
    runs on the measured voxels, and thick sections are not blurred through-plane.

    Why: the per-slice rules (the lung envelope's convex hulls, the per-slice hole filling, the
    columns along S) follow anatomy in the patient's axial plane: the costal surface of the lung
    is convex in a transverse section, a lesion inside the lung has lung above and below it along
    S. On a grid tilted 20 degrees about R (a reformat of lung2's CT, new-user trial 29) the
    storage slices are tilted planes: the envelope and the columns cut the mass, 35.4 instead of
    40.0 mL. ``axis``: the array axis nearest S (kept for the rules that read whole slices)."""

    def __init__(self, ct: Volume):
        self.axis = anatomical_axes(ct)["S"][0]
        d = np.asarray(ct.direction, float)[:, ::-1]  # RAS direction of k, j, i (columns)
        self.to_pat = d[::-1] * np.asarray(ct.spacing_kji, float)[None, :]  # S, A, R mm per k, j, i step
        self.h = float(np.min(ct.spacing_kji))

    def slice_reach(self) -> int:
        """Axial-grid slices spanned along S by one step of the storage axis nearest S."""
        return max(1, int(round(abs(float(self.to_pat[0, self.axis])) / self.h)))

    def _frame(self, shape):
        corners = np.array(np.meshgrid(*[(0.0, n - 1.0) for n in shape], indexing="ij")).reshape(3, -1)
        pat = self.to_pat @ corners
        lo = pat.min(1)
        return lo, tuple(int(v) for v in np.floor((pat.max(1) - lo) / self.h + 1e-6) + 1)

    def to_axial(self, m: np.ndarray, frame=None) -> tuple:
        """(``m`` on the axial grid of its box (axis 0: S), frame); outside the box 0."""
        lo, shape = frame or self._frame(m.shape)
        inv = np.linalg.inv(self.to_pat)
        src = m.view(np.uint8) if m.dtype == bool else m
        out = ndimage.affine_transform(src, inv * self.h, offset=inv @ lo, output_shape=shape, order=0,
                                       mode="constant", cval=0)
        return (out.view(bool) if m.dtype == bool else out), (lo, shape)

    def inside(self, shape, frame) -> np.ndarray:
        """Bool on the axial grid ``frame``: the voxels whose nearest box voxel lies in the box."""
        return self.to_axial(np.ones(shape, bool), frame)[0]

    def from_axial(self, m_ax: np.ndarray, shape, frame) -> np.ndarray:
        """Bool on the box of ``shape``: ``m_ax`` (axial grid ``frame``) at each voxel's centre."""
        lo, _ = frame
        out = ndimage.affine_transform(m_ax.view(np.uint8), self.to_pat / self.h, offset=-lo / self.h,
                                       output_shape=tuple(shape), order=0, mode="constant", cval=0)
        return out.view(bool)


def _slice_planes(ct: Volume):
    """The array axis nearest S (int) when the grid's axes lie along the patient's (each axis
    within half its finest voxel of its patient axis across an envelope's radius,
    ``ENVELOPE_RADIUS_MM``: the storage slices are the axial planes), else `_Planes` (an
    oblique grid). The per-slice rules take either."""
    from .common import grid_obliquity_deg

    off = np.radians(grid_obliquity_deg(ct))   # the largest angle of an axis to its nearest patient axis
    if off <= np.arctan(0.5 * float(np.min(ct.spacing_kji)) / ENVELOPE_RADIUS_MM):
        return anatomical_axes(ct)["S"][0]
    return _Planes(ct)


def _axis_of(s_axis) -> int:
    """The array axis nearest S of ``s_axis`` (int or `_Planes`)."""
    return s_axis.axis if isinstance(s_axis, _Planes) else s_axis


def _fill(m: np.ndarray, s_axis) -> np.ndarray:
    """``m`` with its holes filled in 3-D and in every axial slice (``s_axis``: the array axis
    nearest S, or the patient's planes of an oblique grid, `_Planes`)."""
    if not isinstance(s_axis, _Planes):
        return fill_holes_per_slice(fill_holes_3d(m), s_axis)
    m3 = fill_holes_3d(m)
    if not m3.any():
        return m3
    m_ax, frame = s_axis.to_axial(m3)
    holes = fill_holes_per_slice(m_ax, 0) & ~m_ax
    return m3 | s_axis.from_axial(holes, m.shape, frame) if holes.any() else m3


def _lung_air(roi: np.ndarray, voxel_ml: float, data: np.ndarray | None = None, enclosed=None):
    """(aerated lung mask, air-component labels): components of air (< LUNG_HU) of >= 0.5 mL whose
    median is above GAS_MEDIAN_HU (parenchyma, not gas). ``data``: bool, the measured voxels
    (`_measured_data`), None when the image has no padding:
    a component's size and median are taken over them only, padding is neither lung nor
    labelled, and padding makes no edge (joined to the lungs, padding made their median gas:
    new-user trial 17). A component that reaches the padding is lung only if ``enclosed``
    (callable(labels, selected) -> bool per label, `_enclosed_by_body`) says the body's
    outline encloses it in-plane: the lungs lie inside the thoracic cage, while the air around a
    limb reaches the padding outside the reconstruction circle, and there noisy air clipped at
    -1000 HU reads as parenchyma (STS_008: median -945 HU outside the thigh; the sarcoma became a
    569 mL "lung nodule")."""
    lab, n, counts = components(roi < LUNG_HU, connectivity=6)
    mlab = lab if data is None else np.where(data, lab, 0)
    if data is not None:
        counts = np.bincount(mlab.ravel(), minlength=n + 1)
    keep = counts * voxel_ml >= 0.5
    keep[0] = False
    if keep.any():
        keep[keep] = label_medians(roi, mlab, keep) > GAS_MEDIAN_HU
    if keep.any() and data is not None and enclosed is not None:
        at_pad = np.zeros(n + 1, bool)
        at_pad[np.unique(lab[~data])] = True
        test = keep & at_pad
        test[0] = False
        if test.any():
            keep[test] = enclosed(mlab, test)[test]
    return keep[mlab], mlab


class _Measured:
    """The measured voxels of an image with padding (``data``: bool [k, j, i], `_measured_data`)
    and its measured tissue (> BODY_HU and measured) in whole slices along the array axis
    ``s_axis`` (nearest superior-inferior), each slice computed on first use (`tissue`) and
    kept: one per `segment_lesion` call, handed to its boxes and inner runs. ``a``: the CT
    array [k, j, i], HU."""

    def __init__(self, a: np.ndarray, data: np.ndarray, s_axis: int):
        self.a, self.data, self.s_axis = a, data, s_axis
        self._tissue = self._done = None

    def tissue(self, zs: slice) -> np.ndarray:
        """Bool: the measured tissue of the whole slices ``zs`` (a slice of ``s_axis``), a view."""
        from .common import BODY_HU

        at = lambda z: tuple(z if ax == self.s_axis else slice(None) for ax in range(3))  # noqa: E731
        if self._tissue is None:   # np.zeros: pages of slices never used are not written
            self._tissue = np.zeros(self.a.shape, bool)
            self._done = np.zeros(self.a.shape[self.s_axis], bool)
        todo = np.flatnonzero(~self._done[zs]) + zs.start
        if todo.size:
            run = at(slice(int(todo[0]), int(todo[-1]) + 1))
            self._tissue[run] = (self.a[run] > BODY_HU) & self.data[run]
            self._done[run[self.s_axis]] = True
        return self._tissue[at(zs)]

    def body(self, zs: slice, spacing_in_plane) -> np.ndarray:
        """Bool: of the measured tissue of the whole slices ``zs`` (`tissue`), the in-plane pieces
        (8-connected) that hold bone (above ``calcium_hu``) deeper than ``subcutaneous_probe_mm``
        under their own in-plane surface (the array's edge not counted): the patient's trunk and
        limbs, not the table, its pads or blankets, which hold no bone (a table's dense carbon or
        metal parts lie at its surface: `body.limbs`, the same rule in 3-D); a slice where no
        piece holds such bone (no rib or spine in view) keeps all its tissue. ``spacing_in_plane``:
        the two in-plane spacings (mm) in array order. Each slice computed on first use and kept,
        as `tissue`."""
        import edt

        from .common import rule

        tissue = self.tissue(zs)
        at = lambda z: tuple(z if ax == self.s_axis else slice(None) for ax in range(3))  # noqa: E731
        if getattr(self, "_body", None) is None:
            self._body = np.zeros(self.a.shape, bool)
            self._body_done = np.zeros(self.a.shape[self.s_axis], bool)
        bone, deep = rule("calcium_hu"), rule("subcutaneous_probe_mm")
        for z in np.flatnonzero(~self._body_done[zs]):
            t2 = np.take(tissue, z, axis=self.s_axis)
            self._body_done[zs.start + z] = True
            if not t2.any():
                continue
            lab, _ = ndimage.label(t2, np.ones((3, 3), bool))
            d = edt.edt(np.ascontiguousarray(t2), anisotropy=tuple(float(x) for x in spacing_in_plane),
                        black_border=False)
            held = np.unique(lab[(np.take(self.a, zs.start + z, axis=self.s_axis) > bone) & (d > deep)])
            held = held[held > 0]
            # no piece holds bone (a small reconstruction circle inside the chest, no rib or spine
            # in the slice): patient and table cannot be told apart there, so all the measured
            # tissue counts, as before this rule, rather than no patient at all (lung air would
            # then never be lung)
            self._body[at(zs.start + z)] = np.isin(lab, held) if held.size else t2
        return self._body[at(zs)]


def _enclosed_by_body(measured: _Measured, box: tuple, spacing_kji=None):
    """callable(labels, selected) -> bool (n + 1,) for `_lung_air`: whether at least half of each
    selected component's voxels (labels: int, the shape of the box ``box`` of the image) lie
    inside the convex hull of the patient's measured tissue (`_Measured.body`: the pieces that
    hold bone, not the table or its pads) of their whole axial slice
    (`body.mostly_in_slice_hull`). ``spacing_kji``: the grid's spacing (mm; None: the measured
    tissue of the slice, table included, as before lesion16).

    Why the bone: the lungs lie inside the trunk, whose outline holds the spine and ribs; the air
    around a limb lies outside the limb, and its median is parenchyma's where the padding of the
    reconstruction circle is left out (STS_010: 1440 mL of air round the thigh, median -948 HU,
    was kept as lung because the table under the thigh brought it inside the slice's hull: the
    thigh, in that air's concavity, was grown as a 510.58 mL "lung nodule", typed back to soft
    tissue only because gas bordered it; trial 70 D1)."""
    from .body import mostly_in_slice_hull

    a, s_axis = measured.a, measured.s_axis
    plane = None if spacing_kji is None else [float(x) for ax, x in enumerate(spacing_kji) if ax != s_axis]

    def enclosed(lab, which):
        full = np.zeros(tuple(a.shape[ax] if ax != s_axis else box[ax].stop - box[ax].start
                              for ax in range(3)), lab.dtype)
        full[tuple(slice(None) if ax == s_axis else box[ax] for ax in range(3))] = lab
        body = (measured.tissue(box[s_axis]) if plane is None else measured.body(box[s_axis], plane))
        return mostly_in_slice_hull(full, which, body, s_axis)
    return enclosed


def _measured_data(ct: Volume) -> np.ndarray | None:
    """Bool [k, j, i], False on the padding of a reformat (`padding.padding_mask`: one
    exact fill value over solid regions on the border, beside noisy measured air) and on the
    two voxels next to it (an interpolating resampler blends the fill into them); None when the
    image has no padding. New-user trial 17: LIDC-0001 tilted by 5-20 degrees onto a grid with
    -1024 outside the slab: the padding joined the lungs in the lesion's box, their joint median
    read as gas, no lung was left, and the nodule came out "soft tissue" at 2.4 of 5.8 mL (forced
    lung: 0.001 mL). The planner's data region (`padding.data_mask`) with the array's outer
    voxel layer kept. Computed once per `segment_lesion` call and handed to its inner runs."""
    from .body import measured_voxels

    return measured_voxels(ct)


PADDING_END = 7   # `_field_ends`' id of a reformat's padding (faces: 1..6)


def _field_ends(box: tuple, shape, s_axis, data: np.ndarray | None = None) -> np.ndarray:
    """uint8, the shape of the box ``box`` (slices of an image of ``shape``): where the measured
    field of view ends in it across the patient's axial planes, 0 elsewhere: the voxel layer on
    each of the image's own faces that the box reaches, id 1 + 2 * axis + side (not the two
    faces along ``s_axis`` when it is an array axis: those are axial planes, which no axial
    plane crosses), and the padding of a reformat (``data`` False: `_measured_data`, on the
    box), id ``PADDING_END``."""
    out = np.zeros(tuple(b.stop - b.start for b in box), np.uint8)
    if data is not None:
        out[~data] = PADDING_END
    for ax, b in enumerate(box):
        if ax == s_axis:
            continue
        for side, (at, edge) in enumerate(((b.start, 0), (b.stop, shape[ax]))):
            if at == edge:
                face = (slice(None),) * ax + (-side,)
                out[face] = np.where(out[face] == 0, 1 + 2 * ax + side, out[face])
    return out


def _lung_envelope(roi: np.ndarray, sk, s_axis: int, voxel_ml: float, data: np.ndarray | None = None,
                   enclosed=None, ends: np.ndarray | None = None):
    """(aerated lung, envelope, rejected concavities) in the box: lung-like air components (median > -950 HU, >= 0.5 mL)
    and, per axial slice, the convex hull of each lung piece (8-connected: the two lungs are
    separate pieces even where they touch in 3-D), with the hull's concavities that the piece
    outweighs (area >= HULL_MIN_FILL of piece + concavity). The third mask holds the other
    concavities of the per-slice hull of each lung (all pieces of one 3-D lung component
    together): a mass larger than the lung left beside it, or filling the lung's cross-section,
    lies in one; the caller accepts the one the click is in.

    Each hull is taken on its mask's bounding box (``ndimage.find_objects``), not the whole
    slice: a pixel outside the box is outside the hull (scikit-image's hull joins the pixels'
    edge midpoints, which reach half a pixel beyond the box), so the hull pixels are the same,
    and a box holds the hull's concavities whole. On an oblique grid (``s_axis`` a `_Planes`)
    the hulls are taken in the patient's axial planes. ``ends``: the end of the measured field of
    view in the box (`_field_ends`; None: not known): a lung cut by it is joined beyond it
    (`_slice_hulls`)."""
    lung, lab = _lung_air(roi, voxel_ml, data, enclosed)
    if not lung.any():
        return lung, lung, lung
    if isinstance(s_axis, _Planes):
        # the hulls in the patient's axial planes (`_Planes`), brought back onto the box
        lung_ax, frame = s_axis.to_axial(lung)
        lab_ax, _ = s_axis.to_axial(np.where(lung, lab, 0), frame)
        ends_ax = None if ends is None else s_axis.to_axial(ends, frame)[0]
        env_ax, rej_ax = _slice_hulls(lung_ax, lab_ax, 0, s_axis.slice_reach(), ends_ax)
        env = lung | s_axis.from_axial(env_ax & ~lung_ax, roi.shape, frame)
        return lung, env, s_axis.from_axial(rej_ax, roi.shape, frame) & ~env
    env, rej = _slice_hulls(lung, lab, s_axis, ends=ends)
    return lung, env, rej


def hull_envelope(lung: np.ndarray, s_axis: int) -> np.ndarray:
    """``lung`` (boolean [k, j, i]) with, in each slice along the array axis ``s_axis``, the
    concavities of the convex hull of each lung piece that the piece outweighs (area >=
    HULL_MIN_FILL of piece + concavity): the one-click tool's lung envelope (`_lung_envelope`,
    `_slice_hulls`), for callers that have a lung mask of their own (the detector's mass
    channel, :func:`imagio.detection.blobs.mass_candidates`). The costal surface of the lung
    follows the convex rib cage, so a mass pushing into the lung lies inside the hull, while a
    thin crescent of lung around the liver dome does not enclose the liver."""
    return _slice_hulls(lung, None, s_axis)[0]


def _slice_hulls(lung: np.ndarray, lab: np.ndarray | None, s_axis: int, reach: int = 1,
                 ends: np.ndarray | None = None) -> tuple:
    """(envelope, rejected concavities) of `_lung_envelope` from the aerated lung ``lung`` and
    its 3-D component labels ``lab``, slice by slice along the array axis ``s_axis``; an
    accepted concavity also holds ``reach`` slices on either side (one storage slice). Without
    ``lab`` the rejected concavities are not sought (returned empty).

    ``ends`` (int, the shape of ``lung``, or None): the ends of the measured field of view (the
    voxels on each of the image's own faces, and a reformat's padding), `_field_ends`. The pieces
    of one lung (one label of ``lab``) that reach the same end in a slice are also taken as one
    piece there (their hull's concavities added to those of each piece's own hull): the field of view
    cut the lung, which continues beyond its end, and the pieces a face cuts off one lung are
    joined beyond it (lung2's mass against a face 30 mm from its centre: the medial lung that
    wraps it was cut into two pieces on the face, each piece's hull stopped 3.8 mm short of the
    face, and 7.7 mL of the mass in the image were lost)."""
    env = lung.copy()
    rejected = np.zeros(lung.shape, bool)
    rz = np.moveaxis(rejected, s_axis, 0)  # view
    ez = np.moveaxis(env, s_axis, 0)  # view into env
    lungz = np.moveaxis(lung, s_axis, 0)
    endz = None if ends is None or lab is None else np.moveaxis(ends, s_axis, 0)
    for z in np.flatnonzero(np.any(lungz, axis=(1, 2))):
        pieces, n = ndimage.label(lungz[z], structure=np.ones((3, 3), bool))
        groups = [pieces]
        if endz is not None and endz[z].any():
            joined = _joined_beyond_the_end(pieces, np.moveaxis(lab, s_axis, 0)[z], endz[z])
            if joined is not pieces:   # the joined pieces' hulls are added to the pieces' own
                sizes = np.bincount(joined.ravel(), minlength=n + 1)
                own = np.bincount(pieces.ravel(), minlength=n + 1)
                groups.append(np.where(sizes[joined] > own[joined], joined, 0))
        for g in groups:
            boxes = ndimage.find_objects(g)
            _or_piece_hulls(ez[z], g, range(1, len(boxes) + 1), boxes, True)
        if lab is None:
            continue
        # the concavities of each lung as a whole (all its pieces in the slice): a mass that
        # fills the lung's cross-section splits it into pieces whose joint hull holds it
        labz = np.moveaxis(lab, s_axis, 0)[z]
        vals = np.unique(labz[lungz[z]])
        boxes = ndimage.find_objects(np.where(np.isin(labz, vals), labz, 0))
        _or_piece_hulls(rz[z], labz, vals, [boxes[v - 1] for v in vals], False)
    # a lesion's cross-section changes little from one slice to the next: an accepted
    # concavity also holds on the adjacent slices (the caudal slice of a mass on the diaphragm,
    # where its concavity merges with the dome's, stays inside)
    extra = env & ~lung
    ex = np.moveaxis(extra, s_axis, 0)
    for r in range(1, reach + 1):
        ez[r:] |= ex[:-r]
        ez[:-r] |= ex[r:]
    return env, rejected & ~env


def _or_piece_hulls(out: np.ndarray, labels: np.ndarray, ids, boxes, accepted: bool) -> None:
    """ORs into ``out`` (a 2-D bool slice, written in place) `_piece_hull` (``accepted``) of each
    piece ``labels == id`` (``labels``: int, the slice's shape) for ``id`` in ``ids``, within its
    bounding box in ``boxes`` (one per id; None: no such piece); pieces under 10 pixels are
    skipped (`_slice_hulls`)."""
    for v, box in zip(ids, boxes):
        if box is None:
            continue
        piece = labels[box] == v
        if piece.sum() < 10:
            continue
        hull = _piece_hull(piece, accepted)
        if hull is not None:
            out[box] |= hull


def _joined_beyond_the_end(pieces: np.ndarray, labz: np.ndarray, endz: np.ndarray) -> np.ndarray:
    """The piece labels ``pieces`` (int, one slice) with the pieces of one lung (``labz``: the 3-D
    lung labels of the slice) that reach the same end of the field (``endz``: int, `_field_ends`'
    ids: one per face of the image; padding by its connected pieces in the slice) given one label
    (a piece reaches an end where a pixel of it lies on it or beside it, 8-connected): the field of
    view cut that lung, and beyond that end its pieces are one (`_slice_hulls`). Pieces that reach
    different faces are not joined by it: the lung would have to turn round the corner, which
    the image does not show (lung2 on a 100 mm box centred on its mass: joined across two faces,
    the heart under the mass was taken in, +2.2 mL). Labels stay 1..n (some unused: no box)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ends = endz.astype(np.int64)
    pad = ends == PADDING_END
    if pad.any():   # each piece of padding in the slice is an end of its own
        lab_pad, _ = ndimage.label(pad, np.ones((3, 3), bool))
        ends = np.where(pad, PADDING_END + lab_pad, ends)
    n = int(pieces.max())
    # (end, piece) pairs of the pieces beside each end pixel, over its 8 neighbours and itself
    pp = np.pad(pieces, 1)
    ey, ex = np.nonzero(ends)
    e = ends[ey, ex]
    keys = np.concatenate([e * (n + 1) + pp[ey + 1 + dy, ex + 1 + dx]
                           for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    keys = np.unique(keys[keys % (n + 1) > 0])
    if keys.size < 2:
        return pieces
    end_of, piece_of = keys // (n + 1), keys % (n + 1)
    lung = np.zeros(n + 1, np.int64)
    lung[pieces.ravel()] = labz.ravel()   # a piece lies in one 3-D lung
    # pieces of one lung beside one end: consecutive pairs in (end, lung, piece) order
    order = np.lexsort((piece_of, lung[piece_of], end_of))
    end_of, piece_of = end_of[order], piece_of[order]
    same = (end_of[1:] == end_of[:-1]) & (lung[piece_of[1:]] == lung[piece_of[:-1]])
    a_idx, b_idx = piece_of[:-1][same], piece_of[1:][same]
    if not a_idx.size:
        return pieces
    g = coo_matrix((np.ones(a_idx.size), (a_idx, b_idx)), shape=(n + 1, n + 1))
    _, comp = connected_components(g, directed=False)
    # each piece takes the smallest label of its group
    first = np.full(comp.max() + 1, n + 1)
    np.minimum.at(first, comp, np.arange(n + 1))
    relabel = first[comp]
    relabel[0] = 0
    return relabel[pieces]


def _piece_hull(sl: np.ndarray, accepted: bool) -> np.ndarray | None:
    """The concavities of the convex hull (scikit-image's ``convex_hull_image``) of the 2-D bool
    piece ``sl`` (its bounding box): with ``accepted``, only those the piece outweighs (area >=
    HULL_MIN_FILL of piece + concavity; `_slice_hulls`' envelope), else all of them; None for a
    degenerate (collinear) piece or no concavity. A function of the piece's pixels alone, so it
    is kept for the last pieces seen (`HULL_CACHE_BYTES`, keyed on the packed pixels and the
    shape): the same piece of lung recurs in every search box, check click and click of one CT
    (issue 20), and a kept result is the one computed again (read-only)."""
    key = (accepted, sl.shape, np.packbits(sl, axis=None).tobytes())
    with _HULL_LOCK:
        hit = _HULLS.get(key, _HULLS)
        if hit is not _HULLS:
            _HULLS.move_to_end(key)
            return hit
    from skimage.morphology import convex_hull_image

    try:
        h = convex_hull_image(sl)
    except Exception:  # degenerate (collinear) slice
        out = None
    else:
        out = h & ~sl
        if accepted:
            cav, nc = ndimage.label(out)
            if nc == 0:
                out = None
            else:
                area = np.bincount(cav.ravel(), minlength=nc + 1)
                ok = sl.sum() >= HULL_MIN_FILL * (sl.sum() + area)
                ok[0] = False
                out = ok[cav]
    if out is not None:
        out.setflags(write=False)
    global _HULL_BYTES
    with _HULL_LOCK:
        if key not in _HULLS:
            _HULLS[key] = out
            _HULL_BYTES += len(key[2]) + (0 if out is None else out.size)
        while _HULL_BYTES > HULL_CACHE_BYTES and len(_HULLS) > 1:
            k, v = _HULLS.popitem(last=False)
            _HULL_BYTES -= len(k[2]) + (0 if v is None else v.size)
    return out


HULL_CACHE_BYTES = 32 * 2 ** 20   # the memory `_piece_hull` may keep (keys and results)
_HULLS: "collections.OrderedDict" = collections.OrderedDict()
_HULL_BYTES = 0
_HULL_LOCK = threading.Lock()


def _roofed_columns(m: np.ndarray, lung: np.ndarray, s_axis, open_ends=(False, False)) -> np.ndarray:
    """The voxels of ``m`` whose run along S (the voxels of ``m`` in their column, unbroken) has
    aerated lung on the voxel beyond each end: a lesion inside the lung is surrounded by lung,
    also above and below, while the chest wall, the mediastinum, the heart and the organs under
    the diaphragm continue along S into other tissue. A run reaching the box's face along S
    counts as capped there when that face is not the image's (``open_ends``: (low, high) index
    face), else not. Vectorised with running maxima/minima of indices along S. On an oblique
    grid (``s_axis`` a `_Planes`) the columns run along the patient's S axis; beyond the box
    there counts as beyond its face along S (``open_ends``)."""
    if isinstance(s_axis, _Planes):
        m_ax, frame = s_axis.to_axial(m)
        l_ax, _ = s_axis.to_axial(lung, frame)
        if any(open_ends):
            out_ax = ~s_axis.inside(m.shape, frame)
            lo_l, hi_l = (l_ax | out_ax if o else l_ax for o in open_ends)
        else:
            lo_l = hi_l = l_ax
        r_ax = _roofed_runs(m_ax, lo_l, hi_l, 0, open_ends)
        return m & s_axis.from_axial(r_ax, m.shape, frame)
    return _roofed_runs(m, lung, lung, s_axis, open_ends)


def _roofed_runs(m, lo_lung, hi_lung, s_axis: int, open_ends) -> np.ndarray:
    """`_roofed_columns` along the array axis ``s_axis``: the voxel below a run must be in
    ``lo_lung``, the one above in ``hi_lung``."""
    mz = np.moveaxis(m, s_axis, 0)
    lz, hz = np.moveaxis(lo_lung, s_axis, 0), np.moveaxis(hi_lung, s_axis, 0)
    n = mz.shape[0]
    idx = np.arange(n).reshape(-1, 1, 1)
    low = np.maximum.accumulate(np.where(mz, -1, idx), axis=0)  # last voxel outside m at or below
    high = np.minimum.accumulate(np.where(mz, n, idx)[::-1], axis=0)[::-1]  # first at or above
    lo_ok = np.where(low >= 0, np.take_along_axis(lz, np.maximum(low, 0), axis=0), bool(open_ends[0]))
    hi_ok = np.where(high < n, np.take_along_axis(hz, np.minimum(high, n - 1), axis=0), bool(open_ends[1]))
    return np.moveaxis(mz & lo_ok & hi_ok, 0, s_axis)


def _ball_values(img, seed, sk, radius_mm, within=None):
    """Values of ``img`` in a ball of ``radius_mm`` around ``seed`` (those in ``within`` only,
    when it holds any)."""
    b = ball(radius_mm, sk)
    c = np.array(b.shape) // 2
    bk = np.argwhere(b) + (np.asarray(seed) - c)
    bk = bk[np.all((bk >= 0) & (bk < img.shape), axis=1)]
    if within is not None and within[tuple(bk.T)].any():
        bk = bk[within[tuple(bk.T)]]
    return img[tuple(bk.T)]


def _smoothed(roi: np.ndarray, sigma_mm: float, sk) -> np.ndarray:
    """``ndimage.gaussian_filter(roi, sigma_mm / sk)`` (float32 like ``roi``, read-only), kept
    for the last `SMOOTH_CACHE` (roi, sigma, spacing): the tool smooths the same box again for
    each model and probe (`_soft_lesion`, `_soft_statistical`, `_whole_around_part`, the
    half-contrast edge; issue 20: 57 filters per demo, half of them repeats). Keyed on the
    array object itself (a weak reference: a new box is never taken for a freed one), and an
    entry is dropped when its box is freed (nothing is held after the tool returns); the
    boxes are never written, and the result is read-only so that no caller can change it."""
    key = (id(roi), float(sigma_mm), tuple(float(v) for v in sk))
    hit = _SMOOTH.get(key)
    if hit is not None and hit[0]() is roi:
        return hit[1]
    sm = ndimage.gaussian_filter(roi, sigma_mm / np.asarray(sk, float))
    sm.setflags(write=False)
    while len(_SMOOTH) >= SMOOTH_CACHE:
        del _SMOOTH[next(iter(_SMOOTH))]
    _SMOOTH[key] = entry = (weakref.ref(roi), sm)
    weakref.finalize(roi, _forget_smoothed, key, entry)
    return sm


def _forget_smoothed(key, entry) -> None:
    """Drop ``entry`` of `_smoothed` (its box was freed), unless another took its key."""
    if _SMOOTH.get(key) is entry:
        del _SMOOTH[key]


SMOOTH_CACHE = 4
_SMOOTH: dict = {}


def _robust(values, floor):
    """(median, robust SD = 1.4826 MAD, at least ``floor``)."""
    m = float(np.median(values))
    return m, max(1.4826 * float(np.median(np.abs(values - m))), floor)


def _click_stats(roi, seed, sk):
    return _robust(_ball_values(roi, seed, sk, max(2.0, float(min(sk)) * 1.01)), NOISE_FLOOR_HU)


def _smoothed_noise_floor(noise_hu, sigma_mm, sk) -> float:
    """Noise ``noise_hu`` (at least ``NOISE_FLOOR_HU``) after a Gaussian of ``sigma_mm`` on this
    grid: white noise of SD s becomes s / sqrt(prod(2 sqrt(pi) sigma_voxels)) (the kernel's
    squared norm; CT noise is correlated, so this is a lower bound), never raised."""
    sv = np.maximum(sigma_mm / np.asarray(sk, float), 0.5 / np.sqrt(np.pi))
    return max(noise_hu, NOISE_FLOOR_HU) / float(np.sqrt(np.prod(2.0 * np.sqrt(np.pi) * sv)))


def _soft_statistical(roi, seed, org, sk, open_min, s_axis):
    """(region, [lower, upper] HU, its confident core) of a soft-tissue tumour without a clear
    intensity edge (a sarcoma among muscle of the same mean HU on a non-contrast CT): the
    homogeneous region around the click on a denoised image, by a robust confidence-connected
    model (as ITK's ConfidenceConnected: mean +/- k SD, Ibanez et al., ITK Software Guide): the
    lesion's median and robust SD from a ball of ``CLICK_BALL_MM`` at the click, the region within
    ``SOFT_FIRST_SD`` SD of it, connected to the click, bounded by fat and bone; re-estimated
    once on the region's core (deeper than ``OPEN_FRACTION`` of its inscribed radius: ITK's
    re-estimation over the whole region drifted into the muscle it leaked into, STS_008 379 mL
    for 28 mL); attachments cut (``_separate``), parts of other density open to its edge (necrosis,
    haemorrhage) closed by ``CLOSE_FRACTION`` of its inscribed radius, holes filled."""
    from .common import close_mm

    sm = _smoothed(roi, STAT_SIGMA_MM, sk)
    allowed = (roi > FAT_MAX_HU) & (roi < BONE_CLICK_HU)
    if org is not None:
        allowed &= org
    # the smoothed spread cannot be below the smoothed noise (the raw spread at the click)
    raw_sd = _robust(_ball_values(roi, seed, sk, CLICK_BALL_MM, allowed), 0.0)[1]
    floor = _smoothed_noise_floor(raw_sd, STAT_SIGMA_MM, sk)
    m, s = _robust(_ball_values(sm, seed, sk, CLICK_BALL_MM, allowed), floor)
    core = np.zeros(roi.shape, bool)
    for it in range(2):
        r = _component_at((np.abs(sm - m) <= SOFT_FIRST_SD * s) & allowed, seed, sk)
        if not r.any():
            return r, [m - SOFT_FIRST_SD * s, m + SOFT_FIRST_SD * s], core
        r = _separate(r, seed, sk, open_min)
        depth = _edt(r, sk)
        core = depth >= OPEN_FRACTION * float(depth.max())
        if it == 0:
            m, s = _robust(sm[core], floor)
    two = _two_class_outline(r, core, sm, allowed, seed, sk, open_min)
    r = _edge_at_half_contrast(r, core, roi, sm, allowed, seed, sk, floor, s)
    if two is not None:  # the midpoint bound extends the region, never cuts it (its blur moves
        r = r | two      # a lesion/fat edge inward, where the half-contrast edge above holds)
    region = _fill(r, s_axis)
    radius = float(_edt(region, sk).max())
    if CLOSE_FRACTION * radius > float(max(sk)):
        region = region | (_fill(close_mm(region, CLOSE_FRACTION * radius, sk), s_axis) & allowed)
    return region, [m - SOFT_FIRST_SD * s, m + SOFT_FIRST_SD * s], core


def _two_class_outline(r, core, sm, allowed, seed, sk, open_min):
    """The lesion bounded at the midpoint between its own median and that of the soft tissue
    around it (``SHELL_MM`` beyond ``r``, on ``sm``, the ``STAT_SIGMA_MM``-denoised image), when the
    two are separated: Ashman's D = sqrt(2) |m1 - m2| / sqrt(s1^2 + s2^2) (robust SDs) at least
    ``BIMODAL_D`` (two Gaussian classes then form a bimodal mixture whose midpoint misplaces few
    voxels: Ashman, Bird & Zepf, Astron J 1994). Open on the lesion's side up to the fat and bone
    bounds (``allowed``), so a necrotic, cystic or denser part inside it is kept; connected to the
    click, attachments cut (``_separate``). Else None (no measurable contrast: a sarcoma among
    muscle of the same mean HU; the homogeneous region stands). The two medians must also differ
    by at least ``ISO_MARGIN_HU`` (two soft tissues within it are read as iso-attenuating): on the
    denoised image the SDs are so small that a 5 HU difference passed D >= 2 (STS_010, a sarcoma
    in muscle, 24.5 +/- 1.5 vs 29.9 +/- 3.4 HU, D 2.08 from one click: the midpoint at 27 HU added
    78 mL of muscle, Dice 0.457 -> 0.395); STS_002's contrasts are 40-80 HU. The caller adds it to the
    region, never cuts by it: against fat the 2 mm blur moves the midpoint contour inward (a
    60 HU phantom tumour in fat beside 45 HU muscle lost its rim, Dice 0.78).

    Why: the homogeneous region (``SOFT_FIRST_SD`` robust SD of the click's statistics) stops
    wherever the lesion's own texture (necrosis, septa) leaves that range, and its edge rule
    adds back only the blur-removed rim (``_edge_at_half_contrast``): STS_002 (a sarcoma in fat,
    D 2.4-2.8) gave 43-49 mL of 53 mL (Dice 0.79-0.84) from the region, 54-55 mL (0.88-0.89) at
    the midpoint; the best global threshold connected to the click gives 0.89 there."""
    shell = _shell(r, sk, *SHELL_MM) & allowed
    if not (shell.any() and core.any()):
        return None
    m1, s1 = _robust(sm[core], 0.0)
    m2, s2 = _robust(sm[shell], 0.0)
    if abs(m1 - m2) < ISO_MARGIN_HU or np.sqrt(2.0) * abs(m1 - m2) < BIMODAL_D * max(float(np.hypot(s1, s2)), 1e-6):
        return None  # iso-attenuating (a sarcoma among muscle): the denoised SDs are small, not the contrast
    t = 0.5 * (m1 + m2)
    two = _component_at(((sm < t) if m1 < m2 else (sm > t)) & allowed, seed, sk)
    return _separate(two, seed, sk, open_min) if two.any() else None


def _edge_at_half_contrast(r, core, roi, sm2, allowed, seed, sk, floor, s):
    """``r`` (the homogeneous region of ``_soft_statistical``, bounded at ``SOFT_FIRST_SD`` x
    ``s`` on the ``STAT_SIGMA_MM``-denoised image; ``core`` its deep part) with its edge moved to
    half contrast where the tissue beyond differs measurably from the lesion.

    Root cause of the leak this repairs: the denoising blurs a real edge, so within about
    3 sigma of a boundary with tissue of contrast C the blurred value leaves the region's
    +/- 3 s range: the homogeneous region stops short of every contrasted edge (a 30 HU tumour
    against 100 HU liver lost a 3.5 mm rim, Dice 0.41). The tissue beyond is read on the
    denoised image just past that blur (``3 sigma`` .. ``3 sigma + SHELL_MM[0]`` outside ``r``,
    the voxel nearest to each band voxel). The edge is placed on the lightly smoothed image
    (``SMOOTH_SIGMA_MM``, whose blur moves an edge less): where the tissue beyond differs from
    the lesion's median there by more than 2 x ``SOFT_FIRST_SD`` of its robust SD in the core
    (the midpoint then lies 3 SD from both tissues, so noise misplaces < 0.2 % of the band's
    voxels: a 10 HU step is measurable when the SD is under 1.7 HU), the band voxels closer to
    the lesion's median than to that tissue are the lesion (half maximum, as the lung rule's
    midpoint). Only the rim the blur can have removed is added: a band voxel no further out
    than sigma x Phi^-1(1 - 3 s / C) plus a voxel (how far a blurred step of contrast C moves
    the +/- 3 s bound), blurred towards the tissue beyond on the denoised image (a voxel of a
    third tissue between, e.g. muscle between a sarcoma and fat, differs the other way).
    Elsewhere (no measurable contrast: a sarcoma against muscle) the region's border stands.
    ``sm2``: ``roi`` denoised at ``STAT_SIGMA_MM`` (computed once by the caller). ``floor``: the noise floor on the denoised image (scaled to the lightly smoothed one)."""
    from scipy.special import ndtri

    band_mm = 3.0 * STAT_SIGMA_MM
    skf = np.asarray(sk, float)
    # Everything below lies within band_mm + SHELL_MM[0] of ``r`` (the band, the outer shell;
    # ``core`` is inside ``r``): it is computed on r's box grown by that distance along each
    # axis (a voxel beyond is farther along that axis alone). The box holds every feature of
    # both distance transforms (r's voxels, the outer shell's), and each line of the box every
    # feature of the array's line through it, so the distances and nearest voxels are scipy's
    # own on the whole box, value for value. Issue 20: the regions fill a sixth of their boxes.
    box = bbox_slices(r, band_mm + SHELL_MM[0], skf)
    if box is None:   # an empty region: the whole array, as scipy reads a map with no feature
        box = tuple(slice(0, n) for n in r.shape)
    sub = r[box]
    d_out = ndimage.distance_transform_edt(~sub, sampling=sk)
    outer = (d_out > band_mm) & (d_out <= band_mm + SHELL_MM[0])
    band = (d_out > 0) & (d_out <= band_mm) & allowed[box]
    if not (outer.any() and band.any() and core.any()):
        return r
    sm1 = _smoothed(roi, SMOOTH_SIGMA_MM, sk)[box]   # the whole box's (the soft-tissue rule's)
    floor1 = floor * _smoothed_noise_floor(1.0, SMOOTH_SIGMA_MM, sk) / _smoothed_noise_floor(1.0, STAT_SIGMA_MM, sk)
    m1, s1 = _robust(sm1[core[box]], floor1)
    # the tissue beyond each band voxel: the outer-shell voxel nearest to it
    _, oind = ndimage.distance_transform_edt(~outer, sampling=sk, return_indices=True)
    bk = np.argwhere(band)
    sm2b = sm2[box]
    beyond = sm2b[tuple(oind[:, bk[:, 0], bk[:, 1], bk[:, 2]])]
    c = np.abs(beyond - m1)
    v = sm1[band]
    distinct = c > 2.0 * SOFT_FIRST_SD * s1
    closer = np.abs(v - m1) < np.abs(v - beyond)
    towards = np.sign(sm2b[band] - m1) == np.sign(beyond - m1)
    reach = STAT_SIGMA_MM * ndtri(1.0 - SOFT_FIRST_SD * s / np.maximum(c, 1.01 * SOFT_FIRST_SD * s)) + float(max(sk[1:]))
    add = np.zeros(r.shape, bool)
    add[box][tuple(bk[distinct & closer & towards & (d_out[band] <= reach)].T)] = True
    return _component_at(r | add, seed, sk)


def _shell(m, sk, r0, r1):
    """Voxels farther than ``r0`` and within ``r1`` (mm) of ``m``: two ball dilations."""
    from .common import dilate_mm

    out = dilate_mm(m, r1, sk)
    out &= ~dilate_mm(m, r0, sk)
    return out


def _lung_lesion(roi, seed, m0, lung, env, sk, open_min, s_axis, roof=None, fringe=None):
    """(region, [lower, upper] HU, first region) of a lesion inside the lung envelope: the
    region at half maximum between the parenchyma and the lesion's core, and the region at the
    first (detection) threshold it was refined from (the dense structure the click lies in).
    ``fringe``: a list told (voxels of the basin, of the larger blob) when the returned region
    is a fat-density basin split from a denser, thicker blob (`_split_from_larger_blobs`)."""
    par = roi[lung & (roi > -1000)]
    bg = float(np.median(par)) if par.size else AIR_CLICK_HU  # normal lung (Gevenois 1996)
    bg_sd = 1.4826 * float(np.median(np.abs(par - bg))) if par.size else 50.0
    # calcifications inside a nodule stay in (a calcified nodule clicked on its calcium too)
    upper = max(BONE_CLICK_HU, m0) + CALCIFICATION_MARGIN_HU
    t_detect = bg + max(LESION_OVER_LUNG_MIN_HU, LESION_OVER_LUNG_NOISE_SD * bg_sd)  # a lesion is denser than the parenchyma by more
    # than its noise and at least 125 HU (ground glass -700..-300 HU over lung ~ -850 HU)
    if m0 < t_detect:
        raise InputError(f"the point is on lung parenchyma ({m0:.0f} HU at the click, parenchyma "
                         f"{bg:.0f} HU): click inside the lesion")
    t = min(t_detect, m0 - CLICK_MARGIN_HU)

    cut: list = []   # `_split_from_larger_blobs`' fat-density basins, of the last growth

    def grow(thr, at):
        cut.clear()
        r = (roi >= thr) & (roi <= upper) & env
        if roof is not None:  # (low, high) open S faces: only what lung roofs and floors
            r = _roofed_columns(r, lung, s_axis, roof)
        r = _component_at(r, at, sk)
        return _fill(_separate(_with_cavities(r, roi, s_axis), at, sk, open_min, split=roi, fringe=cut), s_axis) if r.any() else r

    region = grow(t, seed)
    got = list(cut)
    if region.any():
        inner = ndimage.binary_erosion(region)
        core = roi[inner] if inner.sum() >= 8 else roi[region]
        t2 = 0.5 * (bg + float(np.percentile(core, 25)))
        if t2 > t:
            # the refined region is grown and separated from the core of the lesion the click lies
            # in, found on the first region (ascent from the click on its distance map, within
            # the voxels above the new threshold), not from the click: a click near the lesion's
            # edge, where the higher threshold leaves it a lobe behind a narrow neck, gave that
            # lobe (lung2's mass clicked on its cranial slice: 0.5 mL of 48 mL). Not from the
            # first region's deepest voxel: that can lie in another structure joined to it
            depth = _edt(region, sk) * ((roi >= t2) & (roi <= upper))
            r2 = grow(t2, _climb(depth, seed, sk) if depth[seed] > 0 else seed)
            if r2.any():
                first, region, t = region, r2, t2
                if fringe is not None:
                    fringe += cut
                return region, [t, upper], first
            cut.clear()
            cut += got
    if fringe is not None:
        fringe += cut
    return region, [t, upper], region


def _equivalent_diameter_mm(m: np.ndarray, sk) -> float:
    """Diameter (mm) of the sphere of ``m``'s volume (spacing ``sk``, mm)."""
    return 2.0 * (3.0 * float(m.sum()) * float(np.prod(sk)) / (4.0 * np.pi)) ** (1.0 / 3.0)


def _displaced_mass(roi_w, seed_w, lung_w, enclosed, region, sl, wsl, sk, open_min, s_axis):
    """The lung mass at the click read without the per-slice envelope, or None: a mass is dense
    tissue that displaces the lung, so the lung lies above and below it along S but need not lie
    between it and the chest wall (a mass against the chest wall pushes the lung away from the
    pleura; one filling the lung's cross-section leaves only a crescent, and the per-slice hull of
    that crescent cuts the mass at a chord). ``enclosed`` (bool, the box ``wsl``): the dense
    tissue around the click whose columns along S have aerated lung (``lung_w``) above and below
    (`_roofed_columns`; the chest wall, the spine and the organs under the diaphragm continue
    along S into other tissue and are not in it), attachments cut (`_separate`). Where it holds
    two tissues of clearly different density (Ashman's D >= ``BIMODAL_D`` between the two Otsu
    classes of its voxels above fat, 1 mm-denoised, medians ``ISO_MARGIN_HU`` apart: the
    enhancing heart or great vessels joined to a mass across the pleura and pericardium) and the
    click lies in the less dense class, not inside the denser one (a necrotic centre in the
    mass's wall), the denser class is split off: the click's component of the rest (with the
    partial-volume fringe against the lung), holes filled, attachments cut again. Without such
    a split (one tissue, or two classes that are parts of the lesion around the click) it is not
    taken: the lung also roofs organs of a mass's density (the heart on a non-contrast CT),
    which the roofed reading cannot tell from the mass.

    Taken (returned, bool on ``wsl``) only when it is closed in the box (no face), a mass
    (equivalent diameter >= ``MASS_DIAMETER_MM``: a nodule is surrounded by lung, which the
    envelope holds; a vessel junction the lung encloses stays flagged, not taken), holds most of
    ``region`` (the envelope's outline on ``sl``: ``PROBE_MIN_OVERLAP``), differs from it by more
    than the click spread (voxels in one and not the other above ``CLICK_VOLUME_SPREAD`` - 1 of
    ``region``: else the envelope's outline stands), and is bordered by aerated lung as a lung
    lesion is (``LUNG_CONTEXT_FRACTION`` of its 1-4 mm shell).
    ``roi_w``: HU on ``wsl``; ``seed_w``: the click on it; ``region``: bool on ``sl`` (within
    ``wsl``); ``sk``: spacing (mm, k, j, i); ``s_axis``: `_slice_planes`' axis."""
    if not enclosed.any() or not enclosed[seed_w]:
        return None
    from skimage.filters import threshold_otsu

    sm = _smoothed(roi_w, SMOOTH_SIGMA_MM, sk)
    vals = sm[enclosed & (sm >= FAT_MAX_HU)]
    if vals.size <= 100 or np.ptp(vals) <= 0:
        return None
    t = float(threshold_otsu(vals))
    lo_v, hi_v = vals[vals < t], vals[vals >= t]
    if not (lo_v.size and hi_v.size):
        return None
    m1, s1 = _robust(lo_v, 0.0)
    m2, s2 = _robust(hi_v, 0.0)
    if abs(m1 - m2) < ISO_MARGIN_HU or np.sqrt(2.0) * abs(m1 - m2) < BIMODAL_D * max(float(np.hypot(s1, s2)), 1e-6):
        # one tissue: the lung also roofs organs of the mass's density (the heart on a
        # non-contrast CT), which nothing here tells from the mass: the envelope's outline stands
        return None
    denser = enclosed & (sm >= t)
    if sm[seed_w] >= t or fill_holes_3d(denser)[seed_w]:
        # the click is in the denser class, or in a hole of it (a necrotic centre inside the
        # mass's wall): the two classes are parts of the lesion around the click, not a denser
        # structure beside it
        return None
    cand = fill_holes_3d(_component_at(enclosed & ~denser, seed_w, sk))
    if not cand.any():
        return None
    cand = _fill(_separate(cand, seed_w, sk, open_min), s_axis)
    if float((enclosed & ~cand).sum()) <= (CLICK_VOLUME_SPREAD - 1.0) * float(cand.sum()):
        return None   # the two classes are parts of one lesion, nothing beside it was split off
    if not cand.any() or _touched_faces(cand) or _equivalent_diameter_mm(cand, sk) < MASS_DIAMETER_MM:
        return None   # open, or not a mass: a nodule is surrounded by lung, which its envelope holds
    r_g = np.zeros(cand.shape, bool)
    inner = tuple(slice(a.start - w.start, a.stop - w.start) for a, w in zip(sl, wsl))
    r_g[inner] = region
    n_r = float(region.sum())
    n_c = float(cand.sum())
    both = float((cand & r_g).sum())
    if both < PROBE_MIN_OVERLAP * n_r or n_c + n_r - 2.0 * both <= (CLICK_VOLUME_SPREAD - 1.0) * n_r:
        return None
    sh = _shell(cand, sk, *LUNG_SHELL_MM)
    if not sh.any() or float(lung_w[sh].mean()) < LUNG_CONTEXT_FRACTION:
        return None
    return cand


def _with_cavities(r: np.ndarray, roi: np.ndarray, s_axis) -> np.ndarray:
    """``r`` (a lung lesion's region at its threshold, before the attachments are cut) with the
    cavities its wall encloses: its 3-D holes, and the holes of its axial sections (``s_axis``)
    whose median is gas (at or below ``GAS_MEDIAN_HU``: air, not lung parenchyma, which lies
    above it; Gevenois 1996). Why before the opening (``_separate``): a cavitating nodule's wall
    can be thinner than the opening's ball (its radius comes from the wall's own inscribed
    radius), so the opening cut a 2 mm wall and the hole filling after it found an open ring
    (new-user trial 41 M4: a 16 mm nodule with a 9 mm cavity came out as its wall, 13.8 mm mean
    diameter, Lung-RADS 4A instead of 4B). A cavity is part of the lesion (Fleischner glossary,
    Hansell et al., Radiology 2008: a gas-filled space within a nodule or mass); a section's
    hole of lung parenchyma (a ring of vessels round lung) is not taken."""
    f = fill_holes_3d(r)
    holes = _fill(f, s_axis) & ~f
    if holes.any():
        lab, n, _ = components(holes, connectivity=6)
        sel = np.ones(n + 1, bool)
        sel[0] = False
        gas = np.zeros(n + 1, bool)
        gas[sel] = label_medians(roi, lab, sel) <= GAS_MEDIAN_HU
        f |= gas[lab]
    return f


def _soft_lesion(roi, seed, m0, sd0, org, sk, open_min, s_axis, final=()):
    """(region, [lower, upper] HU, subtype) of a soft-tissue lesion (liver or soft-tissue tumour)."""
    sm = _smoothed(roi, SMOOTH_SIGMA_MM, sk)
    ms, sds = _click_stats(sm, seed, sk)
    allowed = (roi > FAT_MAX_HU) & (roi < BONE_CLICK_HU)
    if org is not None:
        allowed &= org
    first = _component_at((sm >= ms - SOFT_FIRST_SD * sds) & (sm <= ms + SOFT_FIRST_SD * sds) & allowed, seed, sk)
    if not first.any():
        first = np.zeros(roi.shape, bool)
        first[seed] = True
    shell = _shell(first, sk, *SHELL_MM) & (sm > SHELL_MIN_HU) & (sm < BONE_CLICK_HU)
    if org is not None:
        shell &= org
    bg = float(np.median(sm[shell])) if shell.any() else ms + 100.0
    mid = 0.5 * (ms + bg)
    if ms < bg:  # hypodense lesion
        lo_t, hi_t, sub = max(ms - SOFT_RANGE_SD * max(sds, sd0), FAT_MAX_HU), mid, "hypodense"
    else:
        lo_t, hi_t, sub = mid, min(ms + SOFT_RANGE_SD * max(sds, sd0), BONE_CLICK_HU), "hyperdense"
    r = _component_at((sm >= lo_t) & (sm <= hi_t) & allowed, seed, sk)
    if r.any() and (set(_touched_faces(r)) & set(final)):
        # the lesion touches tissue of its own density (e.g. at the organ's edge): keep it within
        # the radius at which it faces the tissue around it (voxels near the shell's level)
        bg_sd = 1.4826 * float(np.median(np.abs(sm[shell] - bg))) if shell.any() else sds
        around = np.abs(sm - bg) <= FACING_SD * max(bg_sd, NOISE_FLOOR_HU)
        cut = _cut_at_facing_radius(r, ndimage.binary_dilation(around), _dist_grid(roi.shape, seed, sk), sk)
        if cut is not None:
            r = _component_at(cut, seed, sk)
            sub += "; no intensity edge"
    region = _fill(_separate(r, seed, sk, open_min), s_axis) if r.any() else r
    if org is not None:
        region &= org
    if sub == "hypodense" and region.any() and shell.any():
        # a hypodense region enclosed by a layer of the surrounding tissue's HU that is itself
        # closed inside the box and at most NECROSIS_MAX_RATIO times the region: the click may be
        # on the necrotic or cystic centre of a larger tumour with a viable rim
        bg_sd = 1.4826 * float(np.median(np.abs(sm[shell] - bg)))
        rim = (np.abs(sm - bg) <= FACING_SD * max(bg_sd, NOISE_FLOOR_HU)) & allowed
        whole = _fill(_separate(_component_at(rim | region, seed, sk), seed, sk, open_min), s_axis)
        if not _touches_border(whole) and region.sum() < whole.sum() <= NECROSIS_MAX_RATIO * region.sum():
            sub += "; rim"
    return region, [lo_t, hi_t], sub



def _soft_at(roi, seed, m0, sd0, org, sk, open_min, s_axis, final):
    """(region, [lower, upper] HU, subtype with "; no intensity edge" / "; rim" suffixes) of the
    soft-tissue model at ``seed`` in ``roi``: the edge rule (``_soft_lesion``), or the
    statistical model (``_soft_statistical``) where that rule finds no intensity edge or gives
    less than the statistical model's confident core."""
    region, thr, sub = _soft_lesion(roi, seed, m0, sd0, org, sk, open_min, s_axis, final)
    no_edge = sub.endswith("; no intensity edge")
    r_st, thr_st, core_st = _soft_statistical(roi, seed, org, sk, open_min, s_axis)
    if r_st.any() and (no_edge or int(region.sum()) < int(core_st.sum())):
        # the edge rule found no edge, or a result smaller than the confident core of the
        # homogeneous region at the click (noise made a speck of it): the statistical model
        region, thr = r_st, thr_st
        sub = sub.split(";")[0] + "; no intensity edge"
    return region, thr, sub


def _stopped_at_edges(region: np.ndarray, sl: tuple, ct: Volume):
    """The share (0..1) of the border of ``region`` (the statistical model's homogeneous region
    on the box ``sl`` of ``ct``) that has an intensity edge (`edge_support`), when it is at least
    ``EDGE_SUPPORT_MIN``, else None. Why: the statistical model is for a lesion whose border is
    not seen (a sarcoma among muscle of its HU: expert outlines have an edge along 16-51 % of
    their border); a homogeneous region with an edge along most of its border was stopped by the
    tumour's own heterogeneity or by another tissue, not by the lack of contrast."""
    if not region.any():
        return None
    m = np.zeros(ct.shape, bool)
    m[sl] = region
    share, _ = edge_support(m, ct)
    return share if share is not None and share >= EDGE_SUPPORT_MIN else None


def _whole_around_part(roi, region, org, sk, open_min, s_axis, final, edged_core=False):
    """(whole, [lower, upper] HU, subtype, (fraction of ``region`` inside the probe's outline,
    probe voxels)) when the soft-tissue ``region`` grown from a click is a part of a larger
    closed lesion of heterogeneous density, else None.

    Why: a tumour is often heterogeneous (a denser or enhancing part, a necrotic or cystic
    part, and the rest; soft-tissue sarcomas typically, Murphey et al., RadioGraphics 2009),
    and a seeded region takes its statistics at the seed (Adams & Bischof, IEEE PAMI 1994), so a
    click in one part gives that part: its outline is then an edge inside the tumour and the
    volume depends on where the click lies (STS_002 clicked in its denser part: 27 mL of a
    53 mL sarcoma, Dice 0.60; issue 14). A second probe is grown by the same model from the
    tissue beyond the region: the soft tissue (between ``FAT_MAX_HU`` and ``BONE_CLICK_HU``,
    within the organ) of its ``SHELL_MM`` shell, when that is at least half of the shell (a
    lesion bordered mostly by fat, air or bone has met its host there), within ``FACING_SD``
    robust SD of the shell's median, adjacent to the region; the probe click is its deepest
    voxel (its statistics not mixed with the region's). The region is a part of a larger
    lesion when the probe's outline is closed in the box (it touches no face: a host organ or
    muscle runs on, as the necrosis rule above assumes), holds more than ``PROBE_MIN_OVERLAP`` of
    the region (the two clicks grow over one lesion; tissue beside it stops at its edge), is larger than ``CLICK_VOLUME_SPREAD`` times it
    (a smaller difference is within the one-click consistency), and at most
    ``NECROSIS_MAX_RATIO`` times it (a part is at least a quarter of its tumour, as for a
    necrotic centre). The whole is the union of both outlines with its holes filled.

    ``edged_core``: ``region`` is the statistical model's homogeneous region whose border has
    an intensity edge along most of it (``_stopped_at_edges``): it stopped at a change of
    density, not for want of one, so it is the homogeneous core of a heterogeneous tumour, not
    a part of a quarter or more of it; the ``NECROSIS_MAX_RATIO`` bound is then widened to
    ``EDGED_CORE_MAX_RATIO`` (a core is at least a tenth of its tumour: an organ closed in the
    box around a click in it is far larger than the click's region, the phantom pancreas 353
    times, review 43 H1; the probe's outline must still be closed in the box and hold most of
    the region). Why:
    the model's window is the click ball's spread on the denoised image (a few HU), narrower
    than a heterogeneous tumour's own spread (Lung_Dx-A0001's perihilar mass: p10-p90 -1..33 HU),
    so it gave the 7-10 mL core of the 58 mL mass, and the probe's closed 53-55 mL outline was
    refused at four times that (new-user trial 49 M1: which of the two models was taken hung on
    a 0.45 mm shift of the grid)."""
    if not region.any() or any(f not in final for f in _touched_faces(region)):
        return None  # the caller grows the box first
    sm = _smoothed(roi, SMOOTH_SIGMA_MM, sk)
    allowed = (roi > FAT_MAX_HU) & (roi < BONE_CLICK_HU)
    if org is not None:
        allowed &= org
    shell = _shell(region, sk, *SHELL_MM)
    tissue = shell & allowed
    if not shell.any() or 2 * int(tissue.sum()) < int(shell.sum()):
        return None
    bg = float(np.median(sm[tissue]))
    bg_sd = 1.4826 * float(np.median(np.abs(sm[tissue] - bg)))
    layer = (np.abs(sm - bg) <= FACING_SD * max(bg_sd, NOISE_FLOOR_HU)) & allowed & ~region
    depth = _edt(layer, sk)
    lab, n, counts = components(layer & shell, connectivity=6)
    n0 = int(region.sum())
    for c in (np.argsort(-counts[1:], kind="stable")[:PROBES] + 1) if n else ():
        if 2 * counts[c] < counts[1:].max():
            break  # the largest parts of the layer only
        probe = _deepest_probe(np.where(lab == c, depth, 0.0), region, sk)
        m1, sd1 = _click_stats(roi, probe, sk)
        r2, thr2, sub2 = _soft_at(roi, probe, m1, sd1, org, sk, open_min, s_axis, final)
        n2 = int(r2.sum())
        held = int((r2 & region).sum()) / n0
        if (n2 and not _touched_faces(r2) and held > PROBE_MIN_OVERLAP
                and CLICK_VOLUME_SPREAD * n0 < n2
                and n2 <= (EDGED_CORE_MAX_RATIO if edged_core else NECROSIS_MAX_RATIO) * n0):
            whole = _fill(r2 | region, s_axis)
            return (whole & org if org is not None else whole), thr2, sub2, (held, n2)
    return None


def _deepest_probe(depth: np.ndarray, ref: np.ndarray, sk) -> tuple:
    """The voxel (index tuple) of the largest ``depth`` (a distance map, mm; > 0 somewhere)
    whose ball of ``CLICK_BALL_MM`` (the ball a click's statistics come from) is deepest on
    average (its statistics least mixed with the tissue beyond), ties broken by the distance
    (mm) to the centroid of ``ref`` (bool, same shape; the centroid of the deepest voxels when
    ``ref`` is empty). Why: on thick slices a distance map has plateaus (a layer one or two
    slices thick is equally deep along much of its length), and ``np.argmax`` takes the first
    voxel in the array's storage order, so the same image stored with a flipped or transposed
    axis gave another probe click and another outline (new-user trial 19: Lung_Dx-A0001
    flipped along z, 35.4 instead of 58.9 mL, Dice 0.75). This rule depends on the geometry
    only, not on the axis order (up to exact ties of both measures)."""
    top = float(depth.max())
    cand = np.argwhere(depth >= top - 1e-6 * max(top, 1.0))
    if len(cand) == 1:
        return tuple(int(v) for v in cand[0])
    skf = np.asarray(sk, float)
    b = ball(CLICK_BALL_MM, skf).astype(np.float32)
    # the ball's mean at the candidates only: correlated on their box grown by the ball's size
    # (within the array; beyond it the constant mode's zeros, as on the whole array), so each
    # candidate's sum reads the same voxels in the same order (issue 20: the candidates' box is
    # about a seventh of the depth map's; 2.3 of the demo's CPU-s)
    lo = np.maximum(cand.min(0) - np.asarray(b.shape), 0)
    hi = np.minimum(cand.max(0) + np.asarray(b.shape) + 1, depth.shape)
    box = tuple(slice(int(l), int(h)) for l, h in zip(lo, hi))
    bm = ndimage.correlate(depth[box].astype(np.float32), b / float(b.sum()), mode="constant")[tuple((cand - lo).T)]
    c = np.argwhere(ref).mean(0) if ref.any() else cand.mean(0)
    near = -(((cand - c) * skf) ** 2).sum(1)
    return tuple(int(v) for v in cand[int(np.lexsort((near, np.round(bm, 4)))[-1])])


def _cut_at_facing_radius(region, facing, dseed, sk):
    """``region`` limited to a ball around the click whose radius is where the region faces
    ``facing`` tissue: the facing boundary nearest to the click (within 1.5 x the nearest
    distance, 75th percentile), plus a voxel. None if it faces nothing."""
    face = region & facing
    if not face.any():
        return None
    d = dseed[face]
    near = d[d <= 1.5 * float(d.min()) + float(max(sk))]
    return region & (dseed <= float(np.percentile(near, 75)) + float(max(sk[1:])))


def _dist_grid(shape, seed, sk) -> np.ndarray:
    """Distance (mm) of every voxel of a box from the seed voxel (anisotropic spacing)."""
    g = np.ogrid[tuple(slice(0, n) for n in shape)]
    return np.sqrt(sum(((gi - c) * s) ** 2 for gi, c, s in zip(g, seed, sk))).astype(np.float32)


def _lung_subtype(region, roi, meas_diam, sk=(1.0, 1.0, 1.0)):
    """solid / part_solid / ground_glass / calcified / mass of a lung lesion (Fleischner glossary,
    Hansell 2008): a mass above 30 mm; calcified when its median is above ``CALCIFIED_MIN_HU``;
    otherwise from its solid component (voxels above
    ``GROUND_GLASS_MAX_HU``): none at least a micronodule (``MICRONODULE_MM`` equivalent
    diameter) -> ground glass; solid over >= 80 % of the lesion's interior (the region less a
    boundary layer of one voxel, where partial volume with the lung lowers every edge) -> solid;
    else part-solid. An air cavity (voxels below ``GAS_MEDIAN_HU``: gas, not ground glass, which
    lies above -700 HU) and the one-voxel partial-volume layer of its wall are left out of the
    interior, so a cavitating solid nodule is solid (new-user trial 36 L5: a 16 mm nodule with a
    4.5 mm cavity typed part-solid)."""
    if meas_diam > MASS_DIAMETER_MM:
        return "mass"
    if float(np.median(roi[region])) > CALCIFIED_MIN_HU:
        return "calcified"
    solid = region & (roi > GROUND_GLASS_MAX_HU)
    d_solid = (6.0 * solid.sum() * float(np.prod(sk)) / np.pi) ** (1.0 / 3.0)
    if d_solid < MICRONODULE_MM:
        return "ground_glass"
    inner = ndimage.binary_erosion(region)
    gas = region & (roi < GAS_MEDIAN_HU)
    if gas.any():
        inner &= ~ndimage.binary_dilation(gas, np.ones((3, 3, 3), bool))
    if inner.sum() < 8:
        inner = region & ~gas if (region & ~gas).sum() >= 8 else region
    return "solid" if float(solid[inner].mean()) >= SOLID_INTERIOR_FRACTION else "part_solid"


def _segment_box(a, ct, seed_g, radius, organ, kind, open_min, env_prev=None, final=True,
                 max_radius=MAX_RADIUS_MM, data=None, part_ml=None):
    # part_ml: a list set to the volumes (mL: the click's region, the probe's lesion, their union)
    # when the click lay in a part of a heterogeneous tumour (``_whole_around_part``), else emptied
    if part_ml is not None:
        part_ml.clear()
    sk = ct.spacing_kji
    half = np.ceil(radius / sk).astype(int)
    lo = np.maximum(np.asarray(seed_g) - half, 0)
    hi = np.minimum(np.asarray(seed_g) + half + 1, ct.shape)
    sl = tuple(slice(int(l), int(h)) for l, h in zip(lo, hi))
    roi = a[sl].astype(np.float32)
    seed = tuple(int(v) for v in np.asarray(seed_g) - lo)
    org = organ[sl] if organ is not None else None
    s_axis = _slice_planes(ct)  # the array axis nearest S, or the patient's planes (oblique grid)
    m0, sd0 = _click_stats(roi, seed, sk)
    if m0 < AIR_CLICK_HU:
        raise InputError(f"the point is in air ({m0:.0f} HU at the click): click inside the lesion")
    bone_msg = (f"the point is in bone or calcification ({m0:.0f} HU) outside the lung: click inside "
                "the lesion")
    if m0 > BONE_CLICK_HU and kind == "soft_tissue":
        raise InputError(bone_msg)
    region, thr, sub, k, lung, in_envelope, first = None, None, "", kind, None, False, None
    fringe: list = []   # `_lung_lesion`'s fat-density basin split from a larger blob
    via_concavity = False  # the click's lung envelope is a concavity the lung does not outweigh
    # faces of the box beyond which the region cannot be followed (the image's edge, or all at
    # the size limit): a soft-tissue region reaching one has leaked into same-density tissue
    final = [(ax, sd) for ax in range(3) for sd in (0, 1)
             if final or (lo[ax] == 0 if sd == 0 else hi[ax] == ct.shape[ax])]
    if kind in (None, "lung_nodule"):
        # the envelope is judged on a box of at least ENVELOPE_RADIUS_MM (a lung cut by a small
        # box looks smaller than the lesion it surrounds), then cropped to this box
        eh = np.ceil(max(radius, ENVELOPE_RADIUS_MM) / sk).astype(int)
        elo = np.maximum(np.asarray(seed_g) - eh, 0)
        ehi = np.minimum(np.asarray(seed_g) + eh + 1, ct.shape)
        esl = tuple(slice(int(l), int(h)) for l, h in zip(elo, ehi))
        lung, env, rej = _lung_envelope(
            a[esl].astype(np.float32), sk, s_axis, ct.voxel_volume_ml,
            None if data is None else data.data[esl],
            None if data is None else _enclosed_by_body(data, esl, sk),
            _field_ends(esl, ct.shape, s_axis, None if data is None else data.data[esl]))
        inner = tuple(slice(int(l - el), int(h - el)) for l, h, el in zip(lo, hi, elo))
        eseed = tuple(int(v) for v in np.asarray(seed_g) - elo)
        joined = None
        if rej[eseed] and not env[eseed]:
            # the click lies in a concavity of the lung larger than the lung beside it (a large
            # mass pushing the lung away or filling its cross-section): tried when the usual
            # envelope gives no lung lesion (the click says which concavity is the lesion's;
            # joined first, it took the liver under the dome for a click on a mass's caudal slice)
            joined = (env | _component_at(rej, eseed, sk))[inner]
        lung, env = lung[inner], env[inner]
        for attempt in (env, joined):
            if attempt is None:
                continue
            env = attempt
            if env_prev is not None:  # a larger box keeps what a smaller one enclosed
                env = env | env_prev[sl]
            if org is not None:
                env = env & org if kind is None else env | org
            near = ndimage.binary_dilation(env, iterations=1)[seed] if env.any() else False
            if not (near or kind == "lung_nodule"):
                continue
            env = env | _component_at(env, seed, sk, within_mm=5.0) if kind == "lung_nodule" else env
            in_envelope = bool(env[seed])
            via_concavity = attempt is joined
            if not env[seed]:
                env = env.copy()
                env[seed] = True
            fringe = []
            region, thr, first = _lung_lesion(roi, seed, m0, lung, env, sk, open_min, s_axis, fringe=fringe)
            if kind is None and region.any():
                sh = _shell(region, sk, *LUNG_SHELL_MM)
                frac = float(lung[sh].mean()) if sh.any() else 0.0
                k = "lung_nodule" if frac >= LUNG_CONTEXT_FRACTION else None
            else:
                k = "lung_nodule"
            if k == "lung_nodule" and region.any():
                break
    if kind is None and k == "lung_nodule" and (via_concavity or not in_envelope) and m0 > FAT_MAX_HU:
        # the click is beside the lung's envelope or only in a concavity the lung does not
        # outweigh: a lung crescent wrapped round a convex organ (the liver dome under the
        # diaphragm) has that organ's cross-section as its concavity, and the lung rule then grows
        # through the organ. A soft-tissue lesion at the click that is closed in the box (its own
        # intensity edge all round) and not bordered by aerated lung (the typing rule above) lies
        # outside the lung: it is taken instead
        r_s, thr_s, sub_s = _soft_lesion(roi, seed, m0, sd0, org, sk, open_min, s_axis, ())
        if r_s.any() and _touched_faces(r_s):
            # the edge rule's threshold comes from the median of a shell round a first estimate
            # that can run out of the box (Lung_Dx-A0001's perihilar mass on a grid tilted 25
            # degrees: 58 HU on the CT, 85 HU on the resampled copy, open instead of closed); the
            # homogeneous region at the click (`_soft_statistical`, the model the soft-tissue
            # outline falls back to) is the other reading of a closed soft-tissue lesion there
            r_st = _soft_statistical(roi, seed, org, sk, open_min, s_axis)[0]
            if r_st.any() and not _touched_faces(r_st):
                r_s = r_st
        if r_s.any() and not _touched_faces(r_s):
            sh = _shell(r_s, sk, *LUNG_SHELL_MM)
            if (float(lung[sh].mean()) if sh.any() else 0.0) < LUNG_CONTEXT_FRACTION:
                k = "soft_tissue"
    notes = []
    if m0 > BONE_CLICK_HU and not (k == "lung_nodule" and in_envelope):
        # a calcified nodule is clicked inside the lung envelope; bone elsewhere is refused
        raise InputError(bone_msg)
    if k is None or k == "soft_tissue":
        k = "soft_tissue"
        region, thr, sub = _soft_at(roi, seed, m0, sd0, org, sk, open_min, s_axis, final)
        edged = _stopped_at_edges(region, sl, ct) if sub.endswith("; no intensity edge") else None
        part = _whole_around_part(roi, region, org, sk, open_min, s_axis, final, edged_core=edged is not None)
        if edged is not None and part is None:
            # the homogeneous region stopped at intensity edges all round and no closed lesion
            # around it was found: it may be only the core of a heterogeneous tumour
            sub = sub.split(";")[0]
            notes.append(
                f"{CORE_NOTE} of a heterogeneous tumour, or reach beyond the tumour: the edge rule found no "
                "clear intensity edge, so the lesion was taken as the homogeneous region round the click "
                f"(window {thr[0]:.1f}..{thr[1]:.1f} HU on the denoised CT, the spread at the click), yet the "
                f"tissue beyond differs from it by more than {ISO_MARGIN_HU:g} HU along {100 * edged:.0f} % of "
                "its border, so it stopped at changes of density (the tumour's own necrotic, denser or "
                "enhancing parts, or other tissue), not for want of contrast; its border is approximate: "
                "check it, add clicks on the rest of the tumour (--add) or remove what is not (--remove)")
        if part is not None:
            # the click lay in a part of the lesion whose density differs from the rest of it
            whole, thr, sub, (v_part, v_probe) = part
            v = ct.voxel_volume_ml
            notes.append(
                f"the outline {DEPENDS}: the region grown from it ({region.sum() * v:.1f} mL) is "
                f"enclosed by a layer of soft tissue of another density, and a click in that layer grows one "
                f"closed lesion of {v_probe * v:.1f} mL holding {100 * v_part:.0f} % of it (a heterogeneous "
                "tumour: a denser, enhancing or necrotic part and the rest); the outline given is the union of "
                f"the two, holes filled ({whole.sum() * v:.1f} mL). If that layer is an organ or tissue around "
                "the lesion, not the lesion, exclude it (--remove) or click the lesion with the organ mask")
            if part_ml is not None:   # the volumes the note gives: the range of the result (_click_range)
                part_ml += [float(region.sum()) * v, float(v_probe) * v, float(whole.sum()) * v]
            region = whole
            if edged is not None:  # its border is judged by the edge rule's check, not the regrowth from a core
                sub = sub.split(";")[0]
                notes.append(
                    "the homogeneous region round the click stopped at an intensity edge along "
                    f"{100 * edged:.0f} % of its border: taken as the core of a heterogeneous tumour, so the "
                    "closed lesion grown from the layer around it is given; its border is approximate. If the "
                    "click lies in an organ (no lesion there), that organ is what was outlined")
        if sub.endswith("; rim"):
            sub = sub.split(";")[0]
            notes.append("the click may be on the necrotic or cystic centre of a larger tumour: a closed "
                         "layer of other tissue surrounds the result; if that layer is the tumour's rim, "
                         "add a click on it (--add) or click on the rim")
        if sub.endswith("; no intensity edge"):
            sub = sub.split(";")[0]
            notes.append(NO_EDGE_NOTE + " against the tissue around it (e.g. a "
                         "tumour in muscle on a non-contrast CT): it was taken as the homogeneous region "
                         "round the click and its border is approximate; check it, give the organ mask, "
                         "or add or remove clicks (--add, --remove)")
        if lung is not None and region.any():
            sh = _shell(region, sk, *LUNG_SHELL_MM)
            frac = float(lung[sh].mean()) if sh.any() else 0.0
            if frac >= LUNG_CONTEXT_FRACTION:
                # by the region rule a lung lesion: `segment_lesion` grows it again from its core
                notes.append(_Note(
                    f"the lesion was typed soft tissue but aerated lung borders {100 * frac:.0f} % of "
                    "it: if it is a lung lesion (e.g. clicked on its edge slice at the diaphragm), "
                    "click nearer its centre or give kind='lung_nodule'", "lung_bordered", (100 * frac,)))
    if k == "lung_nodule" and first is not None and region.any() and first.sum() > SMALLER_THAN_FIRST * region.sum():
        # the refinement to half maximum kept a small part of the dense structure the click
        # lies in (a lobe cut off behind a neck, or a solid part within ground glass)
        v = ct.voxel_volume_ml
        notes.append(f"the lesion ({region.sum() * v:.2f} mL) is much smaller than the dense structure "
                     f"the click lies in ({first.sum() * v:.2f} mL at the detection threshold): the outline "
                     "may hold only part of the lesion; check it, or add a click (--add) on the rest")
    if k == "lung_nodule" and region is not None and region.any() and fringe and m0 > FAT_MAX_HU:
        # lesion20: lung2's mass clicked on its caudal 5 mm section gave its 0.7 mL fringe (Dice
        # 0.01), warned only as fat density; the larger blob may be the heart, so it is not taken.
        # Only for a click in solid tissue (its 2 mm ball's median above fat, as in
        # `_solid_click_grew_into_fat`): a small nodule on coarse voxels reads below -30 HU by its
        # own partial volume (the phantom's 10 mm perifissural nodule on 2 mm voxels: median -111 HU)
        v = ct.voxel_volume_ml
        rest = fringe[-1][1]
        notes.append(f"the outline ({region.sum() * v:.2f} mL) has fat's density and was split from a denser, thicker "
                     f"structure joined to it ({rest * v:.1f} mL): a lesion is denser than fat, so the click may "
                     f"lie on the partial-volume edge of that structure (e.g. a mass's end section) and the "
                     f"outline {DEPENDS}; click nearer the lesion's centre")
    # the caller tries a larger box when the region reaches a face that is not final: judged there
    grows = region is not None and any(f not in final for f in _touched_faces(region))
    if k == "lung_nodule" and region.any() and lung is not None and not grows:
        # the lesion as the lung itself bounds it: dense tissue at the same thresholds whose
        # columns along S have lung above and below (a lesion inside the lung is surrounded by it;
        # the chest wall, the mediastinum and the organs under the diaphragm continue along S),
        # with no per-slice envelope. An outline much smaller than that was cut by the envelope
        # inside the lesion (a mass filling the lung's cross-section clicked off its middle)
        # judged on the envelope's box (a whole lung), ``max_radius`` along S (both within the
        # lesion's size limit), whose faces count as not lung: the aorta or the spine run
        # through it and are dropped
        wh = np.minimum(eh, np.ceil(max(radius, max_radius) / sk).astype(int))
        wh[_axis_of(s_axis)] = int(np.ceil(max(radius, max_radius) / sk[_axis_of(s_axis)]))
        wlo = np.maximum(np.asarray(seed_g) - wh, 0)
        wsl = tuple(slice(int(l), int(h)) for l, h in zip(wlo, np.minimum(np.asarray(seed_g) + wh + 1, ct.shape)))
        roi_w = a[wsl].astype(np.float32)
        seed_w = tuple(int(v) for v in np.asarray(seed_g) - wlo)
        lung_w = _lung_air(roi_w, ct.voxel_volume_ml, None if data is None else data.data[wsl],
                           None if data is None else _enclosed_by_body(data, wsl, sk))[0]
        try:
            enclosed, _, _ = _lung_lesion(roi_w, seed_w, m0, lung_w, np.ones(roi_w.shape, bool),
                                          sk, open_min, s_axis, (False, False))
        except InputError:  # the larger box's parenchyma reads the click as lung: nothing to compare
            enclosed, lung_w = region, None
        # only where the envelope is in doubt: the click lay in a concavity the lung does not
        # outweigh, the outline is much smaller than the dense tissue the lung encloses, or it is a
        # mass (the lung it displaces need not lie between it and the chest wall or mediastinum)
        doubt = (via_concavity or enclosed.sum() > SMALLER_THAN_FIRST * region.sum()
                 or _equivalent_diameter_mm(region, sk) >= MASS_DIAMETER_MM)
        displaced = None if lung_w is None or not doubt else _displaced_mass(
            roi_w, seed_w, lung_w, enclosed, region, sl, wsl, sk, open_min, s_axis)
        if displaced is not None:
            # the mass displaces the lung from the chest wall or fills the lung's cross-section:
            # the per-slice envelope cut it, the lung around it along S bounds it
            region, sl, env = displaced, wsl, lung_w | displaced
            enclosed = region
        if enclosed.sum() > SMALLER_THAN_FIRST * region.sum():
            v = ct.voxel_volume_ml
            notes.append(f"the lesion ({region.sum() * v:.2f} mL) is much smaller than the dense tissue "
                         f"enclosed by lung around the click ({enclosed.sum() * v:.2f} mL): {PART_OF_MASS} "
                         "(or the mass is joined to the heart or a vessel); check it, or add a click (--add) "
                         "on the rest")
    env_g = None
    if k == "lung_nodule":
        env_g = np.zeros(a.shape, bool)
        env_g[sl] = env
    return region, thr, sub, k, sl, env_g, notes


def _retyped_note(why: str, meas2: LesionMeasurements, what: str = "nodule") -> str:
    """The warning of a region first read as a lung lesion and typed soft tissue (``meas2``: the
    soft-tissue result): ``why`` and the outcome, with the outline's volume only when its size is
    given (trial 70 D1: STS_010's warning printed the 510.58 and 113.50 mL its JSON withheld)."""
    vol = "" if meas2.size_withheld else f" ({meas2.volume_ml:.2f} mL)"
    return (f"{why}: typed soft tissue{vol}; if this is a lung {what}, "
            f"{'segment it with' if what == 'nodule' else 'check the outline given with'} --kind lung_nodule")


def _retyped(p, how: str = "typed again as soft tissue"):
    """The progress of a run typed again as soft tissue (or ``how``): its lines say so (trial 70 D6:
    "region within 40 mm", "80 mm" printed twice, once per typing)."""
    return lambda f, msg: p(f, msg.replace("lesion:", f"lesion ({how}):", 1))


_UNSET = object()  # segment_lesion's _data not given (None: the image has no padding)


def organ_envelope(organ: np.ndarray) -> np.ndarray:
    """The organ mask [k, j, i] with its enclosed holes filled: a lesion (or a vessel) inside an
    organ is often its own label, a hole in the organ's (LiTS and TotalSegmentator write the
    liver without its tumours); as a bounding mask the organ holds them. Filled in 3D on the
    organ's bounding box (`scipy.ndimage.binary_fill_holes`); a hole open to the box's faces
    (a lesion at the capsule) stays open."""
    organ = np.asarray(organ, bool)
    if not organ.any():
        return organ
    idx = [np.flatnonzero(organ.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    sl = tuple(slice(int(i[0]), int(i[-1]) + 1) for i in idx)
    out = organ.copy()
    out[sl] = ndimage.binary_fill_holes(organ[sl])
    return out


def _canonical_storage(ct: Volume) -> tuple:
    """(``ct`` stored LPS-canonically on its quantised affine, perm, flip): `volume.as_lps_canonical`
    (every voxel keeps its world position and value; DICOM's order, as the segment rules run on),
    then `volume.on_quantised_grid` (another storage's reordered affine, equal up to ~1e-13 mm,
    becomes the same floats); ``ct`` itself when already so stored."""
    from ..volume import as_lps_canonical, on_quantised_grid

    vol, perm, flip = as_lps_canonical(ct)
    return on_quantised_grid(vol), perm, flip


def segment_lesion(ct: Volume, point_ras, organ: np.ndarray | None = None, kind: str | None = None,
                   max_radius_mm: float = MAX_RADIUS_MM, open_mm: float = 1.0, include=(), exclude=(),
                   progress=None, _from_core=None, _data=_UNSET, _at_core=False,
                   **_legacy) -> tuple[np.ndarray, LesionMeasurements]:
    """(mask [k, j, i] on the CT grid, measurements) of the lesion under ``point_ras`` (RAS mm).

    organ: optional bounding mask [k, j, i] (e.g. the liver); kind: force "lung_nodule" or
    "soft_tissue" instead of deciding it from the grown region; max_radius_mm: the largest
    distance from the click the lesion may reach (150 mm: a 30 cm mass; a warning when hit);
    include / exclude: extra RAS points (N, 3) whose lesion is added / whose part is removed.
    Raises InputError for a point outside the image, in air or in bone; ImagioError when no
    lesion is found at the click, or when a soft-tissue outline taken without an intensity edge
    does not reach back to the click when grown from its own core (``_check_from_core``).
    ``_from_core``: internal (a regrowth from the core of an earlier outline: no further check).
    ``_data``: internal (the measured voxels of ``ct`` and their tissue, `_Measured`, from the outer call).
    ``_at_core``: internal (a click at the core of a region typed again, `_typed_at_core`: not again).
    """
    a = check_ct(ct)
    can = _canonical_storage(ct)
    if can[0] is not ct:
        # the outline, its checks and their clicks grown on one canonical storage of the CT, the mask
        # back in the file's order: the farthest voxel a check click is put at, argmax ties and first-hit
        # order then fall alike for every storage of one world image (new-user trial 112 F2: Lung_Dx-A0001
        # stored flipped left-right grew the same 51.6 mL outline and 33.1 mL check outline, but that check's
        # own probe fell on another of the equally far voxels, grew 1030.4 mL and withheld the range)
        from ..volume import reorient_array, unreorient_array

        vol, perm, flip = can
        org = None if organ is None else reorient_array(np.asarray(organ), perm, flip)
        m, meas = segment_lesion(vol, point_ras, organ=org, kind=kind, max_radius_mm=max_radius_mm, open_mm=open_mm,
                                 include=include, exclude=exclude, progress=progress, _from_core=_from_core,
                                 _at_core=_at_core, **_legacy)
        return unreorient_array(m, perm, flip), meas
    p = as_progress(progress)
    point = np.asarray(point_ras, float).reshape(3)
    if kind not in (None, "lung_nodule", "soft_tissue"):
        raise InputError(f"kind must be 'lung_nodule' or 'soft_tissue', got {kind!r}")
    seed_g = _seed_voxel(ct, point)
    if organ is not None:
        organ = organ_envelope(organ)
        if not organ[tuple(seed_g)]:
            raise InputError(f"the point {np.round(point, 1).tolist()} (RAS mm) lies outside the organ mask: "
                             "click inside the organ, add the lesion's label to --organ-labels, or leave "
                             "out --organ")
    sk = ct.spacing_kji
    radius = min(START_RADIUS_MM, max_radius_mm)
    if isinstance(_from_core, dict) and "radius" in _from_core:  # the box the region needed before
        radius = min(float(_from_core["radius"]), max_radius_mm)
    warnings: list[str] = []
    kind_box, env_g, hit_limit, part_ml = kind, None, False, []
    if _data is _UNSET:
        data = _measured_data(ct)
        data = None if data is None else _Measured(a, data, anatomical_axes(ct)["S"][0])
    else:
        data = _data
    while True:
        p(0.1, f"lesion: region within {radius:g} mm of the click")
        region, thr, sub, k, sl, env_g, notes = _segment_box(
            a, ct, seed_g, radius, organ, kind_box, open_mm, env_g,
            final=radius >= max_radius_mm, max_radius=max_radius_mm, data=data, part_ml=part_ml)
        kind_box = k  # the type decided in the smallest box that holds the click's surroundings
        inner_faces = [(ax, s) for ax, s in _touched_faces(region)
                       if (sl[ax].start > 0 if s == 0 else sl[ax].stop < ct.shape[ax])]
        if not inner_faces:
            break
        if radius >= max_radius_mm:
            warnings.append(f"{SIZE_LIMIT} ({max_radius_mm:g} mm from the click): "
                            "it may have leaked into its surroundings; check it, or give the organ mask")
            hit_limit = True
            break
        radius = min(2.0 * radius, max_radius_mm)
    if not region.any():
        raise ImagioError("the lesion segmentation came out empty: the click is not inside a "
                          "distinct lesion; click nearer its centre")
    mask = np.zeros(ct.shape, bool)
    mask[sl] = region
    gas = kind is None and k == "lung_nodule" and _bordered_by_gas(a, mask, ct)
    if kind is None and k == "lung_nodule" and (gas or _solid_click_grew_into_fat(a, mask, seed_g, sk, lambda: _pv_depth_kji(ct))):
        # a lung lesion is bordered by lung, and the chest wall lies between the lung and
        # outside air: a "lung" region bordered more by gas (outside air) than by lung-like air
        # is a limb or trunk lying in the concavity of a lung-like table top or blanket; so is
        # a "lung" region of fat grown from a click in solid tissue (the table's pads on a crop)
        lung_ml = float(mask.sum()) * ct.voxel_volume_ml
        m2, meas2 = segment_lesion(ct, point_ras, organ=organ, kind="soft_tissue", max_radius_mm=max_radius_mm,
                                   open_mm=open_mm, include=include, exclude=exclude, progress=_retyped(p),
                                   _data=data)
        why = ("bordered more by gas (outside air, bowel gas) than by that air" if gas else
               "its core has fat's HU (a region grown through body fat, or partial volume of a nodule on "
               "thick slices or a reformat of them)")
        as_lung = "" if meas2.size_withheld else f" ({lung_ml:.2f} mL as a lung nodule)"
        # the words follow the image: the aerated air round the region named lung only where it lies
        # inside the body's outline (trial 85 L2: STS_002's thigh, bordered by outside air, "read as lung")
        outside = not gas and _aerated_border_outside_body(a, mask, ct, data)
        meas2.warnings.append(_retyped_note(
            f"air of lung parenchyma's density lies around the click (lung, or e.g. a table pad or cushion), but "
            f"the region it encloses{as_lung} is {why}" if gas else
            f"the region grown from the click{as_lung} has a core of fat's HU (grown through body fat) and is "
            "bordered by air of lung parenchyma's density that lies outside the body's outline (outside air, a "
            "table pad or cushion; no lung there)" if outside else
            f"the region around the click reads as lung{as_lung} but {why}", meas2))
        return m2, meas2
    if (kind is None and k == "lung_nodule" and _from_core is None and radius > START_RADIUS_MM
            and _lung_context(mask, ct) < LUNG_CONTEXT_FRACTION):
        # the type is decided from the region (issue 14: stable across clicks in one mass): it was
        # judged on the region in the first box, and the outline grown on in larger boxes (a
        # perihilar mass followed into the hilum and mediastinum) is no longer bordered by lung as
        # a lung lesion is (the same rule, LUNG_CONTEXT_FRACTION, on the final outline). New-user
        # trial: clicks in Lung_Dx-A0001's mass gave 'soft_tissue' 34-59 mL or 'lung_nodule'
        # 131-206 mL bordered by lung over 19 % (59 % outside the reader boxes)
        lung_ml, ctx = float(mask.sum()) * ct.voxel_volume_ml, _lung_context(mask, ct)
        try:
            m2, meas2 = segment_lesion(ct, point_ras, organ=organ, kind="soft_tissue", max_radius_mm=max_radius_mm,
                                       open_mm=open_mm, include=include, exclude=exclude, progress=_retyped(p),
                                       _data=data)
        except (InputError, ImagioError):
            m2 = None
        if m2 is not None:
            as_lung = "" if meas2.size_withheld else f" ({lung_ml:.1f} mL)"
            meas2.warnings.append(_retyped_note(
                f"the region grown from the click as a lung lesion{as_lung} is bordered by aerated lung over "
                f"only {100 * ctx:.1f} % of its surface (a lung lesion: at least {100 * LUNG_CONTEXT_FRACTION:.0f} %), so "
                "it ran out of the lung (hilum, mediastinum or chest wall)", meas2, "lesion"))
            # the doubt found on the lung run stays with the result (the 100 mm phantom mass: the
            # soft-tissue run gave 0.2 mL with no word of the 'part of a mass' found before)
            carried = [f"as a lung lesion: {n}" for n in notes if PART_OF_MASS in n]
            if carried:
                meas2.warnings += carried
                meas2.part_of_mass = True
            return m2, meas2
    bordered = [n for n in notes if getattr(n, "kind", "") == "lung_bordered"]
    if kind is None and k == "soft_tissue" and _from_core is None and not _at_core and bordered:
        got = _typed_at_core(ct, point_ras, seed_g, mask, bordered[0], dict(
            organ=organ, max_radius_mm=max_radius_mm, open_mm=open_mm, include=include, exclude=exclude,
            progress=_retyped(p, "grown again from the core of the click's region"), _data=data))
        if isinstance(got, str):
            notes = [got if n is bordered[0] else n for n in notes]
        else:
            return got
    click_ml: list = list(part_ml)   # (this click's, another click's) volumes the click checks grew, mL
    leaks: list = []   # volumes (mL) of outlines grown by the click checks that leaked
    crossing: list = []   # edge shares (0-1) of the crossings of check outlines back into this one
    if k == "soft_tissue" and _from_core is None and any(n.startswith((NO_EDGE_NOTE, CORE_NOTE + " of")) for n in notes):
        # taken without an intensity edge: the outline must be the one its own core gives
        mask, notes, thr = _check_from_core(ct, seed_g, mask, notes, thr, radius,
                                            dict(organ=organ, max_radius_mm=max_radius_mm, open_mm=open_mm,
                                                 _data=data), box=sl, volumes=click_ml, leaks=leaks)
        mask, notes = _cut_necked_leak(ct, seed_g, mask, notes)
    if k == "soft_tissue" and _from_core is None and not any(DEPENDS in n for n in notes):
        notes = _click_agreement(ct, seed_g, mask, notes, radius,
                                 dict(organ=organ, max_radius_mm=max_radius_mm, open_mm=open_mm, _data=data),
                                 volumes=click_ml, leaks=leaks)
    if (k == "lung_nodule" and _from_core is None and not any(DEPENDS in n for n in notes)
            and mask.sum() * ct.voxel_volume_ml > np.pi / 6 * MASS_DIAMETER_MM ** 3 / 1000.0):
        # a lung lesion's outline is bounded by the lung envelope, which joins the hilum and the
        # mediastinum to a perihilar mass: clicked at the mass's edge, the region followed the
        # mediastinum (new-user trial 19, Lung_Dx-A0001 clicked on the mass's caudal slice:
        # 168 mL, 35 % inside the collection's boxes, silent); the same probe as for soft tissue,
        # for outlines larger than a nodule (a 30 mm ball, 14.1 mL: a mass, or a leak) only, so
        # the nodules of `detect` are not segmented twice
        notes = _click_agreement(ct, seed_g, mask, notes, radius,
                                 dict(organ=organ, max_radius_mm=max_radius_mm, open_mm=open_mm, _data=data),
                                 kind="lung_nodule", volumes=click_ml, leaks=leaks)
    if (_from_core is None and not any(DEPENDS in n for n in notes)
            and (kind is None or k == "soft_tissue"
                 or mask.sum() * ct.voxel_volume_ml > np.pi / 6 * MASS_DIAMETER_MM ** 3 / 1000.0)):
        # the checks above grow the lesion from clicks inside its outline: they cannot see the
        # rest of a mass beyond a core-only outline (issue 14; the nodules `detect` types as lung
        # nodules, forced and nodule-sized, are not probed again)
        notes = _check_from_outside(ct, mask, notes, k, radius,
                                    dict(organ=organ, max_radius_mm=max_radius_mm, open_mm=open_mm, _data=data),
                                    volumes=click_ml, leaks=leaks, thr=thr, crossing=crossing)
    for q in np.asarray(include, float).reshape(-1, 3):
        m2, _ = segment_lesion(ct, q, organ=organ, kind=k, max_radius_mm=max_radius_mm, open_mm=open_mm, _data=data)
        added_ml = float((m2 & ~mask).sum()) * ct.voxel_volume_ml
        if added_ml < ct.voxel_volume_ml * 0.5:
            # the user clicked there to grow the lesion: a click that adds nothing is said
            notes.append(f"the added click at R,A,S = {np.round(q, 1).tolist()} mm added nothing: the region "
                         "grown from it lies inside the lesion already; outline that part by hand "
                         "(Slicer's Paint/Grow from seeds) if it belongs to the lesion")
        else:
            notes.append(f"the added click at R,A,S = {np.round(q, 1).tolist()} mm added {added_ml:.3f} mL")
        mask |= m2
    ex = np.asarray(exclude, float).reshape(-1, 3)
    if len(ex):
        mask = _exclude(mask, ct, seed_g, [_seed_voxel(ct, q) for q in ex])
        if not mask.any():
            raise ImagioError("the exclude points removed the whole lesion; put them outside it")
        # the click-agreement probe ran on the outline before the cut: its point may be gone
        # (new-user trial 21: a stale 'a click elsewhere inside this outline' after --remove)
        notes = [n + " (found on the outline before the --remove points cut it)" if DEPENDS in n else n
                 for n in notes]
    if np.asarray(include).size and not len(ex):
        # the checks ran on the outline before the added clicks grew it: their words are of that outline
        notes = [n + " (found on the outline before the --add points edited it)" if DEPENDS in n else n
                 for n in notes]
    if not mask[seed_g]:
        # trial 11: a click in STS_008 came back as an outline of the neighbouring muscle, not
        # holding the click, warned only as "unreliable"
        # within two voxel diagonals of the outline the click lies at its border (partial volume and
        # the cut's own step): the same structure, its border near the click in doubt (new-user trial
        # 93 F4: clicks 2.5-3.2 mm inside lung2's hand-drawn mass were told "may be another structure")
        d_out = _mm_to_outline(mask, ct, seed_g)
        near = d_out <= 2.0 * float(np.linalg.norm(ct.spacing_kji))
        notes.append(_not_at_click(point_ras, f"it was cut back to a region beside it, whose border lies {d_out:.1f} mm "
                                   "from the click", joined=near))
    p(0.9, "lesion: measurements")
    meas = measure(mask, ct, a, kind=k)
    meas.part_of_mass = any(PART_OF_MASS in n for n in notes)
    meas.crossing_edge_support = round(min(crossing), 3) if crossing else None
    meas.threshold_hu = [round(float(v), 1) for v in thr]
    if k == "lung_nodule":
        meas.subtype = _lung_subtype(mask, a, meas.long_axis_mm, sk)
        if meas.subtype in ("solid", "mass", "calcified"):   # one density (measurements.py)
            meas.volume_pv_ml = partial_volume_ml(mask, ct, a, float(thr[0]))
        cavity_ml = float(np.count_nonzero(mask & (a < GAS_MEDIAN_HU))) * ct.voxel_volume_ml
        if (6.0 * cavity_ml * 1000.0 / np.pi) ** (1.0 / 3.0) >= MICRONODULE_MM:   # a cavity that can be seen
            notes.append(f"the lesion holds {cavity_ml:.2f} mL of air (below {GAS_MEDIAN_HU:g} HU): a cavity, "
                         "counted in its volume and left out of its solid/ground-glass typing; judge the "
                         "cavity's wall on the images")
    else:
        meas.subtype, meas.host_hu = attenuation_subtype(mask, a, sk, organ)
    _click_range(meas, click_ml, notes, edited=bool(np.asarray(include).size or len(ex)), leaks=leaks,
                 own_limit=bool(hit_limit and _from_core is None))
    if any(n.startswith(OWN_LEAK) for n in notes):
        # an outline that leaked did not stop at changes of density: no "may hold only the core"
        # beside its leak (trial 70 D4), and its no_intensity_edge flag is not read from that note
        # (trial 71: STS_022's JSON said no_intensity_edge true beside edge_support 0.807, the note
        # it came from dropped afterwards)
        notes = [n for n in notes if not n.startswith(CORE_NOTE)]
    no_edge = any(n.startswith((NO_EDGE_NOTE, CORE_NOTE)) for n in notes)
    meas.hit_size_limit, meas.no_intensity_edge = hit_limit, no_edge
    if k == "soft_tissue" and _from_core is None:
        share, sides = edge_support(mask, ct)
        meas.edge_support = None if share is None else round(share, 3)
        if share is not None and share < EDGE_SUPPORT_MIN:
            _edge_support_note(notes, share, sides)
    if _from_core is None:
        # where the edge-support warning already said the border is not seen, and on which sides,
        # the share is kept and not said again (trial 72 D2: one fact, one warning)
        said = meas.edge_support is not None and meas.edge_support < EDGE_SUPPORT_MIN
        _unimaged_border_note(meas, notes, mask, ct, thr, say=not said)
    plaus = _plausibility(mask, ct, meas, hit_limit=hit_limit, no_edge=no_edge,
                          measured=None if data is None else data.data)
    own = [i for i, n in enumerate(notes) if n.startswith(OWN_LEAK)]
    if own:
        # this outline's own leak is said once, in _click_range's note (trial 68 L6: STS_022's leak was
        # said four times): the size-limit warning says less than it, and the image's edge goes into it
        warnings = [w for w in warnings if not w.startswith(SIZE_LIMIT)]
        edge = [w for w in plaus if w.startswith(EDGE_UNBOUNDED)]
        if edge:
            plaus = [w for w in plaus if w not in edge]
            notes[own[0]] = notes[own[0]].replace("reached the size limit, so",
                                                  "reached the size limit and the image's edge, so", 1)
    meas.warnings = [str(w) for w in warnings + notes + plaus] + meas.warnings   # plain text out (`_Note`s are internal)
    # leaked: this outline's own leak, by the criteria a check outline is judged by (``_leaked``:
    # the size limit, the image's edge without a border of its own, irregular); a check
    # outline's leak is ``check_leaked`` (trial 64: STS_002's 58.4 mL outline, Dice 0.87, was
    # called leaked for a check click's 483.8 mL)
    meas.leaked = bool(meas.leaked or (_from_core is None and _leaked(meas)))
    p(1.0, "lesion: done")
    return mask, meas


def _not_at_click(point_ras, why: str, joined: bool = False) -> str:
    """The warning of an outline that does not hold the click at ``point_ras`` (RAS mm), ``why``.
    ``joined``: the click's own region lies mostly in the outline (the same structure, its border
    near the click in doubt), else the outline may be another structure than the click's."""
    at = f"the outline does NOT contain the click at R,A,S = {np.round(np.asarray(point_ras, float), 1).tolist()} mm: {why}"
    if joined:
        return (at + ", so the outline's border near the click is in doubt: the lesion may reach the click "
                "there (the lung's envelope stops an outline against the mediastinum or the chest wall) or the click "
                "lies on the tissue beside it; check the border near the click on the images, and add a click "
                "(--add) or outline that part by hand if it belongs to the lesion")
    return at + (", so it may be another structure; check it on the images and click again nearer the "
                 "lesion's centre")


def _mm_to_outline(mask: np.ndarray, ct: Volume, seed_g: tuple) -> float:
    """Distance (mm) from the voxel ``seed_g`` (k, j, i) to the nearest voxel of ``mask`` (bool
    [k, j, i] on ``ct``'s grid, non-empty), voxel centre to voxel centre in RAS (any grid)."""
    pts = ct.kji_to_world(np.argwhere(mask).astype(float))
    at = ct.kji_to_world(np.asarray(seed_g, float)[None])[0]
    return float(np.sqrt(((pts - at) ** 2).sum(axis=1)).min())


def _typed_at_core(ct: Volume, point_ras, seed_g: tuple, mask: np.ndarray, note: "_Note", kw: dict):
    """The lesion of a soft-tissue outline ``mask`` (bool [k, j, i], CT grid) grown from the click
    ``point_ras`` (RAS mm; voxel ``seed_g``) that aerated lung borders as it borders a lung lesion
    (``note``: the `_segment_box` note of kind "lung_bordered", its share in ``volumes_ml``):
    (mask, measurements) of the lesion grown from the outline's core (`_core_of`, typed there by
    the same rules, `segment_lesion` with ``kw``) when that is a lung lesion holding at least
    PROBE_MIN_OVERLAP of ``mask``, with a warning that says so; else the note's new words (str),
    which say that the type, so the outline, depends on where the click lies (``click_dependent``).

    Why (issue 14: the type is decided from the region, not the click's voxels): lung2's mass
    clicked 1.5 mm inside its label's medial edge (R,A,S -40.2, 83.8, -270.0, trial 75) lies in
    tissue against the mediastinum that the per-slice hull of the lung does not enclose, so the
    lung rule was never tried there: typed soft tissue, 33.9 mL, not flagged, while the centre
    gives a lung nodule of 40.0 mL. The region grown from the click was bordered by lung over
    27 % (a lung lesion by the region rule: LUNG_CONTEXT_FRACTION)."""
    share = note.volumes_ml[0] if note.volumes_ml else 100 * LUNG_CONTEXT_FRACTION
    core = _core_of(mask, seed_g, ct.spacing_kji)
    at = ct.kji_to_world(np.asarray(core, float)[None])[0]
    v0 = float(mask.sum()) * ct.voxel_volume_ml
    try:
        m2, meas2 = segment_lesion(ct, at, _at_core=True, **kw)
    except (InputError, ImagioError):
        m2, meas2 = None, None
    held = float((m2 & mask).sum()) / max(int(mask.sum()), 1) if m2 is not None else 0.0
    where = np.round(at, 1).tolist()
    if meas2 is not None and meas2.kind == "lung_nodule" and held >= PROBE_MIN_OVERLAP:
        meas2.warnings.insert(0, (
            f"grown from the click as soft tissue, the region ({v0:.1f} mL) is bordered by aerated lung over "
            f"{share:.0f} % of its surface (a lung lesion: at least {100 * LUNG_CONTEXT_FRACTION:.0f} %), and grown "
            f"from its core (R,A,S = {where} mm) it is a lung lesion holding {100 * held:.0f} % of it: the type is "
            "the region's, so the lung lesion grown from the core is given (the click lies in tissue beside the "
            "lung's envelope, e.g. against the mediastinum or the chest wall)"))
        if not m2[tuple(seed_g)]:
            # the click's region lies mostly in the lung lesion (``held``): one structure, whose border
            # near the click is in doubt (trial 91 L3: lung2's mass clicked 2.8 mm inside its label's
            # edge was told the outline "may be another structure")
            meas2.warnings.insert(1, _not_at_click(
                point_ras, f"it is the lung lesion grown from the core of the click's region, which holds "
                f"{100 * held:.0f} % of that region; the click lies {_mm_to_outline(m2, ct, seed_g):.1f} mm outside "
                "its border", joined=True))
        return m2, meas2
    got = ("no lesion" if meas2 is None else f"{meas2.kind.replace('_', ' ')} ({meas2.volume_ml:.1f} mL, holding "
           f"{100 * held:.0f} % of it)")
    return note.retold(
        f"the lesion was typed soft tissue but aerated lung borders {share:.0f} % of it (a lung lesion: at least "
        f"{100 * LUNG_CONTEXT_FRACTION:.0f} %), and grown from its core (R,A,S = {where} mm) it gives {got}: "
        f"its type, so its outline, {DEPENDS}; if it is a lung lesion (e.g. clicked on its edge slice at the "
        "diaphragm), click nearer its centre or give kind='lung_nodule'")


def forced_kind_note(ct: Volume, point_ras, kind: str | None, mask: np.ndarray, organ=None,
                     max_radius_mm: float = MAX_RADIUS_MM, open_mm: float = 1.0) -> str | None:
    """A warning when the user forced ``kind`` and the type decided from the region around the
    click is another one whose outline differs (volumes more than ``CLICK_VOLUME_SPREAD`` apart),
    or None (``kind`` None, same type, similar outlines, or no automatic outline).

    ct: the CT; point_ras: the click (RAS mm); mask: the forced outline [k, j, i] on the CT grid.
    Why: each type has its own model (a lung lesion is bounded by aerated lung, a soft-tissue one
    by an intensity edge); forcing the soft-tissue model on a lung nodule gave 0.25-2.2 mL of a
    4.1 mL phantom nodule without a word. Costs one automatic segmentation, only when forced."""
    if kind is None:
        return None
    try:
        auto, meas = segment_lesion(ct, point_ras, organ=organ, max_radius_mm=max_radius_mm, open_mm=open_mm)
    except (InputError, ImagioError):
        return None
    if meas.kind == kind:
        return None
    v0, v1 = float(mask.sum()) * ct.voxel_volume_ml, float(auto.sum()) * ct.voxel_volume_ml
    if max(v0, v1) <= CLICK_VOLUME_SPREAD * min(v0, v1):
        return None
    return (f"the lesion type was forced to {kind!r}, but the region around the click reads as {meas.kind!r}: "
            f"that type's outline is {v1:.2f} mL against {v0:.2f} mL forced; check which one follows the lesion "
            f"on the images (leave the type to be decided unless you know it is wrong)")


def edge_support(mask: np.ndarray, ct: Volume) -> tuple:
    """(share of the boundary of ``mask`` that has an intensity edge, [anatomical sides where
    most of it has none]) of a lesion outline ([k, j, i] bool on the grid of ``ct``, HU); (None,
    []) when nothing can be judged.

    A boundary voxel (one of the outline's own, 6-connected to outside) has an edge when the
    mean HU of the lesion's side (``SHELL_MM`` inside: beyond the partial-volume blur) and
    that of the tissue beyond (``SHELL_MM`` outside), each within a window of
    2 x ``CLICK_BALL_MM`` around it, differ by more than ``ISO_MARGIN_HU`` (two soft tissues
    closer than 10 HU are one attenuation: Hamer et al., RadioGraphics 2006; Silverman et al.,
    Radiology 2019). Values are clipped to ``SHELL_MIN_HU``..``BONE_CLICK_HU`` (air and bone are
    an edge, not a mean). Boundary voxels on the image's faces, or whose window holds no voxel
    of either side, are not judged. The sides are Right/Left/Anterior/Posterior/Superior/
    Inferior by the largest RAS component of the voxel's offset from the outline's centroid;
    a side is listed when most of its judged voxels have no edge. Vectorised (box filters)."""
    from .common import bbox_slices

    sk = np.asarray(ct.spacing_kji, float)
    sl = bbox_slices(mask, SHELL_MM[1] + 2.0 * CLICK_BALL_MM + float(sk.max()), sk)
    if sl is None:
        return None, []
    m = mask[sl]
    v = np.clip(ct.array[sl].astype(np.float32), SHELL_MIN_HU, BONE_CLICK_HU)
    din, dout = _edt(m, sk), _edt(~m, sk)
    size = np.maximum(np.rint(2.0 * CLICK_BALL_MM / sk).astype(int) | 1, 1)

    def local_mean(sel):
        w = ndimage.uniform_filter(sel.astype(np.float32), size)
        return ndimage.uniform_filter(np.where(sel, v, 0.0).astype(np.float32), size) / np.maximum(w, 1e-6), w > 1e-6

    mi, oki = local_mean(m & (din > SHELL_MM[0]) & (din <= SHELL_MM[1]))
    mo, oko = local_mean(~m & (dout > SHELL_MM[0]) & (dout <= SHELL_MM[1]))
    bd = m & ~ndimage.binary_erosion(m, border_value=1)
    faces = np.zeros(m.shape, bool)  # the image's own faces: not judged (warned separately)
    for ax in range(3):
        if sl[ax].start == 0:
            faces[(slice(None),) * ax + (0,)] = True
        if sl[ax].stop >= ct.shape[ax]:
            faces[(slice(None),) * ax + (-1,)] = True
    pts = np.argwhere(bd & oki & oko & ~faces)
    if not len(pts):
        return None, []
    edge = np.abs(mi - mo)[tuple(pts.T)] > ISO_MARGIN_HU
    lo = np.array([s_.start for s_ in sl])
    off = ct.kji_to_world((pts + lo).astype(float)) - ct.kji_to_world((np.argwhere(m).mean(0) + lo)[None])[0]
    side = side_codes(off)
    n_all = np.bincount(side, minlength=6)
    n_no = np.bincount(side[~edge], minlength=6)
    return float(edge.mean()), [SIDE_NAMES[i] for i in range(6) if n_all[i] and 2 * n_no[i] > n_all[i]]


def _unimaged_border_note(meas: LesionMeasurements, notes: list, mask: np.ndarray, ct: Volume, thr,
                          say: bool = True) -> None:
    """Set ``meas.unimaged_border`` (and its sides) from `unimaged_border` and, when it reaches
    ``UNIMAGED_BORDER_MIN`` (and ``say``), say in ``notes`` that the size there is the tool's, not an imaged
    border's, on which side and against what tissue (trial 106 MED 3: Lung_Dx-A0001's mass got
    no doubt at all on an oblique re-grid, its size withheld as click-dependent on its own grid)."""
    share, sides, hu = unimaged_border(mask, ct, thr)
    meas.unimaged_border = None if share is None else round(share, 3)
    meas.unimaged_border_sides = list(sides)
    if not say or share is None or share < UNIMAGED_BORDER_MIN:
        return
    where = f"mostly on its {', '.join(sides)} side" if 0 < len(sides) < 6 else "all round"
    notes.append(f"{UNIMAGED_NOTE} over {100 * share:.0f} % of its surface ({where}, where it abuts tissue of "
                 f"{hu:.0f} HU, within its own density band: in the chest e.g. the chest wall, the mediastinum or "
                 "collapsed lung, elsewhere a muscle or an organ): there no change of density stops the region, so "
                 "the outline was placed by the tool's shape limits, not at an edge on the image, and its volume "
                 "and diameters depend on where those limits cut, whatever the click or the grid "
                 "(unimaged_border): read the size as approximate, check the outline on that side, compare sizes "
                 "only on the same reconstruction and outline, or outline it by hand (contrast CT or PET may show "
                 "the border)")


def unimaged_border(mask: np.ndarray, ct: Volume, band) -> tuple:
    """(share, [sides], median HU) of the surface of a lesion outline (``mask``, [k, j, i] bool on
    the grid of ``ct``, HU) beyond which the tissue lies within the HU ``band`` the region was grown
    in (``threshold_hu``, widened to at least the outline's median HU +/- ``ISO_MARGIN_HU``): there
    the CT shows no border (the growing did not stop for a change of density; the outline was
    placed by the tool's shape limits: the opening, the neck cuts, the size
    limit), so the outline's size there is the tool's, not the lesion's, whatever the click; (None,
    [], None) when nothing can be judged. Why not the click checks alone: a linearly interpolated
    re-grid (an oblique reformat) lowers the noise, so the band narrows and every check click grows
    the same outline (trial 106 MED 3: Lung_Dx-A0001's mass, size withheld on its own grid, 44.3 mL
    without doubt on a 17/10 deg re-grid).

    The share is of surface area (mm2), not of voxels, so it does not depend on the grid: it is the
    volume share of the shell ``SHELL_MM`` outside the outline (beyond the partial-volume blur,
    within the adjacent tissue; a shell's volume is its area times its depth) whose HU, smoothed by
    ``SMOOTH_SIGMA_MM`` (a Gaussian in mm: the noise each voxel carries on any grid is lowered
    before it is compared), lies in ``band``. Voxels outside the measured field (padding) are out of
    any band. The sides (Right/Left/Anterior/Posterior/Superior/Inferior, by the largest RAS component
    of the shell voxel's offset from the outline's centroid) are those holding at least a quarter
    of that unimaged shell; the median HU is the unimaged tissue's (raw HU). Vectorised."""
    from .common import bbox_slices

    sk = np.asarray(ct.spacing_kji, float)
    sl = bbox_slices(mask, SHELL_MM[1] + 3.0 * SMOOTH_SIGMA_MM + float(sk.max()), sk)
    if sl is None:
        return None, [], None
    m = mask[sl]
    raw = ct.array[sl].astype(np.float32)
    sm = ndimage.gaussian_filter(raw, SMOOTH_SIGMA_MM / sk, mode="nearest")
    dout = _edt(~m, sk)
    shell = ~m & (dout > SHELL_MM[0]) & (dout <= SHELL_MM[1])
    if not shell.any():
        return None, [], None
    # the band, and at least the lesion's median +/- ISO_MARGIN_HU (two soft tissues closer than that
    # are one attenuation, Hamer 2006): a band the noise set narrow (an interpolated grid's) does not
    # make same-density tissue a border (the synthetic wall on an oblique 2.5 mm re-grid: band 5 HU wide)
    med = float(np.median(raw[m]))
    lo_hu, hi_hu = min(float(band[0]), med - ISO_MARGIN_HU), max(float(band[1]), med + ISO_MARGIN_HU)
    same = shell & (sm >= lo_hu) & (sm <= hi_hu)
    share = float(np.count_nonzero(same)) / float(np.count_nonzero(shell))
    if not same.any():
        return share, [], None
    pts = np.argwhere(same)
    lo = np.array([s_.start for s_ in sl])
    off = ct.kji_to_world((pts + lo).astype(float)) - ct.kji_to_world((np.argwhere(m).mean(0) + lo)[None])[0]
    n = np.bincount(side_codes(off), minlength=6)
    sides = [SIDE_NAMES[i] for i in np.argsort(-n) if 4 * n[i] >= len(pts)]
    return share, sides, float(np.median(raw[same]))


def attenuation_subtype(mask: np.ndarray, a: np.ndarray, sk, organ: np.ndarray | None = None) -> tuple:
    """(subtype, host median HU) of a soft-tissue lesion: "hypoattenuating", "iso-attenuating" or
    "hyperattenuating" relative to the tissue around it, or ("", None) when none is measurable.

    mask, a: lesion mask and CT (HU) [k, j, i] on the same grid; sk: spacing (mm) along k, j, i;
    organ: optional host organ mask [k, j, i] (e.g. the liver): the host is read inside it only.
    The host is the tissue in a shell ``SHELL_MM`` (mm) beyond the outline (``_shell``, on the
    outline's box), between ``SHELL_MIN_HU`` (lung and air not) and ``BONE_CLICK_HU`` (no bone),
    its soft tissue only (above ``FAT_MAX_HU``) when that is at least half of it: a soft-tissue
    tumour is described against the muscle around it and an organ's lesion against the organ's
    parenchyma, not against the fat planes between (a tumour lying in fat is judged against the
    fat); the lesion's value is its median over the same HU range
    (necrotic parts included). Within ``ISO_MARGIN_HU`` of the host's median the lesion is
    iso-attenuating (two soft tissues differing less than 10 HU are not read as distinct:
    Hamer et al., RadioGraphics 2006; Silverman et al., Radiology 2019; lesion.json), else hypo-
    or hyperattenuating (terms of the Fleischner glossary, Hansell et al., Radiology 2008: CT
    describes attenuation, not density). The attenuation is judged against the host, never
    against the click's voxels or the tissue the first estimate touched (a sarcoma of muscle
    density was typed "hyperdense")."""
    from .common import bbox_slices

    sl = bbox_slices(mask, SHELL_MM[1] + float(max(sk)), sk)
    if sl is None:
        return "", None
    m, v = mask[sl], a[sl]
    tissue = (v > SHELL_MIN_HU) & (v < BONE_CLICK_HU)
    host = _shell(m, sk, *SHELL_MM) & tissue
    if organ is not None:
        host &= organ[sl]
    soft = host & (v > FAT_MAX_HU)
    if 2 * int(soft.sum()) >= int(host.sum()):
        host = soft  # mostly soft tissue around it: the reference is that tissue, not the fat between
    inner = m & tissue
    if not (host.any() and inner.any()):
        return "", None
    h, l_ = float(np.median(v[host])), float(np.median(v[inner]))
    if abs(l_ - h) <= ISO_MARGIN_HU:
        return "iso-attenuating", h
    return ("hypoattenuating" if l_ < h else "hyperattenuating"), h


def _core_of(mask: np.ndarray, seed: tuple, sk, a: np.ndarray | None = None) -> tuple:
    """The core (``_climb`` on the distance map) of the blob of ``mask`` that ``seed`` lies in
    (the deepest voxel of ``mask`` when ``seed`` is outside it), as a [k, j, i] index.

    ``a``: the CT (HU, same grid): the core is then sought among the voxels of the tissue the
    click lies in only: on ``a`` denoised at ``STAT_SIGMA_MM``, within ``ISO_MARGIN_HU`` of the
    median in the click's ``CLICK_BALL_MM`` ball (two soft tissues less than 10 HU apart are
    one attenuation, Hamer et al. 2006; lesion.json), when the outline holds any. Why: the
    outline has its holes filled (a necrotic or cystic centre is part of the lesion), so its
    deepest point can lie in the necrosis, another tissue; a regrowth seeded there grew the
    necrosis, and the overshoot rule then cut a necrotic tumour back to its necrotic centre (a
    45 mL phantom mass with a 4 mL necrotic centre 25 HU below it, in fat with muscle of its
    own density on one side: 3 mL from clicks in its viable part, or no outline)."""
    from .common import bbox_slices

    sl = bbox_slices(mask, 0.0, sk)
    lo = np.array([s_.start for s_ in sl])
    depth = _edt(mask[sl], sk)
    local = tuple(int(v) for v in np.clip(np.asarray(seed) - lo, 0, np.array(depth.shape) - 1))
    if a is not None:
        sm = ndimage.gaussian_filter(a[sl].astype(np.float32), STAT_SIGMA_MM / np.asarray(sk, float))
        at = float(np.median(_ball_values(sm, local, sk, CLICK_BALL_MM, mask[sl])))
        tissue = np.abs(sm - at) <= ISO_MARGIN_HU
        if (tissue & (depth > 0)).any():
            depth = depth * tissue
    if depth[local] > 0:
        c = _climb(depth, local, sk)
    else:
        c = tuple(int(v) for v in np.unravel_index(int(np.argmax(depth)), depth.shape))
    return tuple(int(v) for v in np.asarray(c) + lo)


def _regrow_in_box(ct, a, sl, core, kw, at_limit: bool, near=None):
    """(mask on the CT grid, [lower, upper] HU) of the statistical model (``_soft_statistical``)
    grown from ``core`` (a [k, j, i] index inside ``sl``) on the search box ``sl`` the first
    outline was taken on, or None when that region reaches a face of the box beyond which the
    image continues within the size limit (``at_limit``: the box reached ``max_radius_mm``, so
    every face is final): the caller then grows it in boxes of its own. The first outline came
    from the same model on the same box (it had no intensity edge), so only the seed differs:
    the edge rule, the box search and the measurements of a second ``segment_lesion`` run are
    not repeated. ``near``: the first outline (CT grid): the model is run first on its box grown
    by the reach of the model's statistics ball, edge band and shell (``CLICK_BALL_MM`` +
    3 ``STAT_SIGMA_MM`` + ``SHELL_MM``), within ``sl``, and on the whole box only when the
    region reaches that crop's inner faces (an outline from the core is mostly within the
    click's: the search box is up to 300 mm wide)."""
    from .common import bbox_slices

    sk = ct.spacing_kji
    organ = kw.get("organ")
    s_axis = _slice_planes(ct)
    crops = [sl]
    if near is not None and near.any():
        tight = bbox_slices(near, CLICK_BALL_MM + 3.0 * STAT_SIGMA_MM + SHELL_MM[1], sk)
        crop = tuple(slice(max(t.start, b.start), min(t.stop, b.stop)) for t, b in zip(tight, sl))
        if crop != sl:
            crops.insert(0, crop)
    for c in crops:
        lo = np.array([s_.start for s_ in c])
        seed = tuple(int(v) for v in np.asarray(core) - lo)
        r, thr, _ = _soft_statistical(a[c].astype(np.float32), seed, organ[c] if organ is not None else None,
                                      sk, kw.get("open_mm", 1.0), s_axis)
        if not r.any():
            return np.zeros(ct.shape, bool), thr

        def open_face(ax, sd):  # the image continues beyond this face within the search
            inner = c[ax].start > sl[ax].start if sd == 0 else c[ax].stop < sl[ax].stop
            beyond = sl[ax].start > 0 if sd == 0 else sl[ax].stop < ct.shape[ax]
            return inner or (beyond and not at_limit)

        if any(open_face(ax, sd) for ax, sd in _touched_faces(r)):
            continue
        out = np.zeros(ct.shape, bool)
        out[c] = r
        return out, thr
    return None


def _check_from_core(ct, seed_g, mask, notes, thr, radius, kw, box=None, volumes=None, leaks=None) -> tuple:
    """(mask, notes, thr) of a soft-tissue lesion taken without an intensity edge
    (``_soft_statistical``): cut back to the outline grown from its own core when most of it is
    not given back from there, with a warning when the volumes differ; ImagioError when the
    outline from its core does not reach the click.

    Why: without an edge the outline is the homogeneous region whose statistics come from a
    ball at the click, so it depends on where the click lies: a click near the lesion's edge
    samples the tissue beside it and the region floods that tissue (a 28 mL sarcoma clicked at
    its edge gave 499 mL of the thigh's muscle, with only an "unreliable" warning). A lesion's
    outline must not depend on the click (issue 14: volumes from any interior click within
    ``CLICK_VOLUME_SPREAD``; seeded region growing depends on its seeds, Adams & Bischof, IEEE
    PAMI 1994). The check: find the outline's core (``_core_of``: the ascent to its largest
    inscribed ball, as for lung nodules) and grow the outline again from a click there.
    - The core's outline does not reach within ``CLICK_BALL_MM`` of the click (the radius of
      the ball the click's statistics came from): the click's outline is mostly other tissue
      than the lesion at its own core, so the click lay at the lesion's edge or beside it. No
      outline and no volume is handed out (ImagioError).
    - The click's outline is more than ``OVERSHOOT_RATIO`` times the core's (it is mostly
      tissue the lesion's core does not reach: a 28 mL sarcoma clicked 10 mm from its core
      gave 731 mL, its core gives back 65 mL around the click): it is cut back to the core's
      outline, with a warning.
    - Otherwise, when the two volumes differ by more than ``CLICK_VOLUME_SPREAD``, the click's
      outline is kept (a regrowth from the core is not better in general: its statistics come
      from the most homogeneous part, and repeated regrowth drifted) with a warning that its
      volume depends on the click.
    ``radius``: the search box's radius (mm) the outline needed, the regrowth's first box;
    ``kw``: the keyword arguments of ``segment_lesion``; ``box``: the slices of the search box
    the outline was taken on: the regrowth is run there first (``_regrow_in_box``: the same
    model from another seed, no second ``segment_lesion`` run) and in boxes of its own only
    when it reaches that box's inner faces. ``volumes``: a list the two volumes (mL: the
    click's, the core's) are appended to when the click's outline is kept (``_click_range``).
    ``leaks``: a list the core's volume is appended to instead when the core's outline leaked,
    judged as a click there run alone would be (``_check_outline_leak``): it is no bound."""
    sk = np.asarray(ct.spacing_kji, float)
    core = _core_of(mask, seed_g, sk, ct.array)
    if float(np.linalg.norm((np.asarray(core) - seed_g) * sk)) <= CLICK_BALL_MM:
        return mask, notes, thr  # the click is at its outline's core already: the regrowth is the same
    grown = None
    if box is not None:
        grown = _regrow_in_box(ct, ct.array, box, core, kw,
                               at_limit=radius >= kw.get("max_radius_mm", MAX_RADIUS_MM), near=mask)
        if grown is not None and not grown[0].any():
            return mask, notes, thr  # nothing grows at the core: nothing to compare
    if grown is None:
        try:
            m2, meas2 = segment_lesion(ct, ct.kji_to_world(np.asarray(core, float)[None])[0], kind="soft_tissue",
                                       _from_core={"radius": radius}, **kw)
        except (InputError, ImagioError):  # nothing grows at the core: nothing to compare
            return mask, notes, thr
        grown = m2, meas2.threshold_hu, meas2
    m2, thr2 = grown[:2]
    meas2 = grown[2] if len(grown) > 2 else None
    v0, v1 = float(mask.sum()) * ct.voxel_volume_ml, float(m2.sum()) * ct.voxel_volume_ml
    sl = _bbox_around(m2, seed_g, CLICK_BALL_MM, sk)
    if _edt(~m2[sl], sk)[tuple(np.asarray(seed_g) - [s_.start for s_ in sl])] > CLICK_BALL_MM:
        raise ImagioError(
            f"no stable lesion outline at this click: the region grown from it ({v0:.1f} mL, without an "
            f"intensity edge) is not given back when grown from its own core ({v1:.1f} mL from there, away "
            "from the click), so the click lies at the lesion's edge or in tissue of its density beside it "
            "and no volume can be given; click nearer the lesion's centre, give the organ mask, or outline "
            "it by hand")
    confirmed = float((m2 & mask).sum()) / max(float(mask.sum()), 1.0)
    if v0 > OVERSHOOT_RATIO * v1:
        return m2, notes + [f"the region grown from the click ({v0:.1f} mL) was cut back to the outline grown "
                            f"from its own core ({v1:.1f} mL): only {100 * confirmed:.0f} % of it was given back "
                            "from there, the rest is tissue of the lesion's density beside it; the volume is "
                            "unreliable; check it"], [round(float(v), 1) for v in thr2]
    why = _check_outline_leak(ct, core, m2, meas2, "soft_tissue", radius, kw, v0) if leaks is not None else None
    if why:
        leaks.append(v1)
        return mask, notes + [_Note(f"the region grown from the click ({v0:.1f} mL) differs from the one grown from "
                                    f"its own core, which leaked ({v1:.1f} mL: {why}): the volume {DEPENDS}, this "
                                    "outline may have leaked as well or hold only part of the lesion; check it",
                                    "core_leak", (v0, v1), (v1,))], thr
    if volumes is not None:
        volumes += [v0, v1]
    if max(v0, v1) > CLICK_VOLUME_SPREAD * min(v0, v1):
        notes = notes + [_Note(f"the region grown from the click ({v0:.1f} mL) differs from the one grown from its "
                               f"own core ({v1:.1f} mL): the volume {DEPENDS} and is "
                               "unreliable; check it, or compare clicks", "core_differs", (v0, v1))]
    return mask, notes, thr


def _check_outline_leak(ct, at_g, m2, meas2, kind, radius, kw, v0: float, leaked_ml: list | None = None) -> str | None:
    """Why the outline ``m2`` (CT grid) that a click check grew from the voxel ``at_g`` ([k, j, i])
    leaked (words for a note), or None when it did not: the leak criteria the click at ``at_g``
    would get run alone. ``meas2``: its measurements (None: measured here); ``kind``: the model
    it was grown by; ``radius``, ``kw``: as ``_click_agreement``; ``v0``: the volume (mL) of the
    outline being checked.

    Why: a check outline's volume is given as an end of the lesion's range, so it must be judged
    as the click itself would be: run alone, a click is called leaked when its outline leaked
    (``_leaked``: size limit, no border at the image's edge, irregular, a lung outline not
    bordered by lung) or when a click elsewhere inside its outline grew an outline that leaked
    (``_click_agreement``). The check runs with ``_from_core`` (no checks of its own), so the
    second half was missing: new-user trial, Lung_Dx-A0001 clicked at LPS 41.8, 191.5, -229: a
    probe grew a closed, regular 1051 mL outline (3 % inside the reader boxes) that passed
    ``_leaked`` and was given as the top of '162.1-1051.0 mL', not leaked; run alone, a click
    inside it grows 1204 mL to the size limit, so it is leaked. That second probe is grown only
    for an outline whose volume lies more than ``CLICK_VOLUME_SPREAD`` from ``v0`` (one that
    would be an end of the range); it runs without further checks (one level), so the cost is
    one more run of the model. ``leaked_ml``: a list the volume (mL) of the outline that leaked
    (``m2``'s, or the second probe's) is appended to."""
    if meas2 is None:   # an outline regrown in the click's own box (``_regrow_in_box``): not at the limit
        meas2 = measure(m2, ct, ct.array, kind=kind)
        _plausibility(m2, ct, meas2)
    v1 = float(m2.sum()) * ct.voxel_volume_ml
    if _leaked(meas2, m2, ct):
        if leaked_ml is not None:
            leaked_ml.append(v1)
        return _leak_reason(meas2, "that outline")
    if not v1 or max(v0, v1) <= CLICK_VOLUME_SPREAD * min(v0, v1):
        return None
    sub, why = [], []
    _click_agreement(ct, tuple(int(x) for x in at_g), m2, [], radius, kw, kind=kind, leaks=sub, nested=why)
    if sub:
        if leaked_ml is not None:
            leaked_ml.append(max(sub))
        return f"a click inside its outline grew {max(sub):.1f} mL that leaked, as {why[0]}"   # why: "that outline ..."
    return None


def _probe_ball_ml(depth_mm: float) -> float:
    """Volume (mL) of the ball a probe click's statistics come from: radius ``CLICK_BALL_MM``, or
    ``depth_mm`` (how deep the probe lies inside the outline it was placed in) when that is less.
    A probe outline smaller than that ball did not grow even the homogeneous tissue round its own
    click (the smallest measurable lesion, 10 mm across, holds that ball: RECIST 1.1, lesion.json
    ``click_ball_mm``): no lesion was found at that click, so its volume is no bound of the lesion."""
    r = min(CLICK_BALL_MM, float(depth_mm))
    return 4.0 / 3.0 * np.pi * r ** 3 / 1000.0


def _click_agreement(ct, seed_g, mask, notes, radius, kw, kind="soft_tissue", volumes=None, leaks=None,
                     nested: list | None = None) -> list:
    """``notes`` with a warning when a second click inside the outline ``mask`` (CT grid) of
    type ``kind`` ("soft_tissue" or "lung_nodule", the model the probe is grown by) gives a
    volume that differs from it by more than ``CLICK_VOLUME_SPREAD``.

    Why: issue 14 asks that the volumes from any clicks at least 5 mm inside a lesion agree
    within 15 % and that an outline which depends on the click says so; seeded region growing
    depends on its seed (Adams & Bischof, IEEE PAMI 1994). The regrowth from the outline's core
    (``_check_from_core``) sees nothing when the click lies near that core, or when the outline
    has an intensity edge (a click in a denser part of a sarcoma gave half of it, silently).
    The probe is the voxel of the outline at least ``CLICK_BALL_MM`` inside it (60 % of its
    deepest point when it is thinner: ``_interior_clicks`` of the tests) farthest from the click,
    the click another user could have given; it is grown by the same model (``segment_lesion``
    without further checks, the search box the outline needed). ``volumes``: a list the two
    volumes (mL: this click's, the probe's; 0 when the probe grows no lesion: nothing, or an
    outline smaller than its own statistics ball, ``_probe_ball_ml``) are appended to.
    ``leaks``: a list the probe's volume is appended to when its outline leaked, judged as that
    click run alone would be (``_check_outline_leak``). ``nested``: this is that judgement's own
    probe: only ``_leaked`` is applied to it (one level), and the words for why it leaked are
    appended to this list."""
    from .common import bbox_slices

    sk = np.asarray(ct.spacing_kji, float)
    sl = bbox_slices(mask, 0.0, sk)
    if sl is None:
        return notes
    lo = np.array([s_.start for s_ in sl])
    depth = _edt(mask[sl], sk)
    inside = np.argwhere(depth >= min(CLICK_BALL_MM, 0.6 * float(depth.max())))
    pick = int(np.argmax((((inside + lo - np.asarray(seed_g)) * sk) ** 2).sum(1)))
    far = inside[pick] + lo
    if float(np.linalg.norm((far - np.asarray(seed_g)) * sk)) <= CLICK_BALL_MM:
        return notes  # the outline is too small to hold a click elsewhere
    try:
        m2, meas2 = segment_lesion(ct, ct.kji_to_world(far[None].astype(float))[0], kind=kind,
                                   _from_core={"radius": radius}, **kw)
    except (InputError, ImagioError):
        m2, meas2 = np.zeros(mask.shape, bool), None
    v0, v1 = float(mask.sum()) * ct.voxel_volume_ml, float(m2.sum()) * ct.voxel_volume_ml
    at = np.round(ct.kji_to_world(far[None].astype(float))[0], 1).tolist()
    if meas2 is not None and leaks is not None:
        why = (_leak_reason(meas2, "that outline") if _leaked(meas2, m2, ct) else None) if nested is not None else \
            _check_outline_leak(ct, far, m2, meas2, kind, radius, kw, v0)
        if why and nested is not None:
            nested.append(why)
        if why:
            # the probe's outline is no bound of the lesion: said as a leak, not given as a volume
            leaks.append(v1)
            return notes + [_Note(f"the volume {DEPENDS}: a click elsewhere inside this outline (R,A,S = {at} mm) grew "
                                  f"an outline that leaked ({v1:.1f} mL: {why}) instead of the lesion; this "
                                  f"click's outline ({v0:.1f} mL) may have leaked as well or hold only part of the "
                                  "lesion: check it on the images, or add or remove clicks (--add, --remove)",
                                  "check_leak", (v0, v1), (v1,))]
    ball = _probe_ball_ml(float(depth[tuple(inside[pick])]))
    if v1 < ball:
        # the probe grew no lesion (or less than its own statistics ball): no volume of the lesion
        if volumes is not None:
            volumes += [v0, 0.0]
        return notes + [f"the volume {DEPENDS}: a click elsewhere inside this outline (R,A,S = {at} mm) "
                        f"{'grew no lesion' if not v1 else f'grew only {v1:.2f} mL, less than the {ball:.2f} mL ball its statistics come from'}"
                        f", so no lesion is found there although this click's outline ({v0:.1f} mL) holds it: "
                        "the lesion's border is not found from a click; check it on the images, or add or "
                        "remove clicks (--add, --remove)"]
    if volumes is not None:
        volumes += [v0, v1]
    if max(v0, v1) <= CLICK_VOLUME_SPREAD * min(v0, v1):
        return notes
    return notes + [f"the volume {DEPENDS}: a click elsewhere inside this outline (R,A,S = {at} mm) gives "
                    f"{v1:.1f} mL against {v0:.1f} mL from this click (more than "
                    f"{100 * (CLICK_VOLUME_SPREAD - 1):.0f} % apart): the outline is unreliable; check it, "
                    "compare clicks, or add or remove clicks (--add, --remove)"]


def _lung_context(mask: np.ndarray, ct: Volume) -> float:
    """Share of the ``LUNG_SHELL_MM`` shell around ``mask`` (bool [k, j, i], CT grid) that is
    aerated (below ``GROUND_GLASS_MIN_HU``: aerated lung, Hansell 2008 / Gevenois 1996)."""
    from .common import bbox_slices

    sl = bbox_slices(mask, LUNG_SHELL_MM[1], ct.spacing_kji)
    if sl is None:
        return 0.0
    sh = _shell(mask[sl], ct.spacing_kji, *LUNG_SHELL_MM)
    return float((ct.array[sl][sh] < GROUND_GLASS_MIN_HU).mean()) if sh.any() else 0.0


def _leaked(meas: LesionMeasurements, mask: np.ndarray | None = None, ct: Volume | None = None) -> bool:
    """True when the outline ``mask`` (CT grid) that ``meas`` measures leaked: it reached the size
    limit (``max_radius_mm`` from its click), or it touches the image's edge without a border of
    its own (``edge_size_unreliable``), or it is irregular (fills less than ``MIN_FILL_OF_SPHERE``
    of the sphere on its long axis: grown along tubes or a wall), or it was grown as a lung
    lesion and aerated lung borders less than ``LUNG_CONTEXT_FRACTION`` of it (the share the
    typing rule asks of a lung lesion: the lung model followed the mediastinum or the chest
    wall out of the lung; sets ``meas.lung_context``). Such an outline is no bound of the
    lesion's volume (issue 14, new-user trial: a probe click in Lung_Dx-A0001's mass grew
    1051 mL, 3 % inside the reader boxes, and was given as the top of the lesion's range)."""
    if meas.kind == "lung_nodule" and mask is not None and ct is not None:
        meas.lung_context = _lung_context(mask, ct)
    return bool(meas.hit_size_limit or meas.edge_size_unreliable or meas.irregular
                or (meas.lung_context is not None and meas.lung_context < LUNG_CONTEXT_FRACTION))


def _leak_reason(meas: LesionMeasurements, it: str = "it") -> str:
    """The words for why ``_leaked`` holds for ``meas``; ``it``: the outline's name in them ("that
    outline" for an outline other than the one the warning is about: lesion16, STS_022's warning
    said "it is irregular" of a check outline while the JSON said irregular false)."""
    why = []
    if meas.lung_context is not None and meas.lung_context < LUNG_CONTEXT_FRACTION:
        why.append(f"grown as a lung lesion, yet aerated lung borders only {100 * meas.lung_context:.1f} % of it")
    if meas.hit_size_limit:
        why.append(f"{it} reached the size limit")
    if meas.edge_size_unreliable:
        why.append(f"{it} reached the image's edge without a border of its own")
    if meas.irregular:
        why.append(f"{it} is irregular, grown along tubes or a wall")
    return ", ".join(why)


def _check_from_outside(ct, mask, notes, kind, radius, kw, volumes=None, leaks=None, thr=None,
                        crossing=None) -> list:
    """``notes`` with a warning when the lesion grown from the tissue of its own density class
    just outside ``mask`` (the outline, CT grid) holds most of it and is larger: the outline
    may hold only part of the lesion. ``volumes`` / ``leaks``: lists the volumes (mL: this
    outline's and the probe's) are appended to (``_click_range``), a leaked probe's to ``leaks``.

    Why: the other checks (``_check_from_core``, ``_click_agreement``) grow the lesion from
    clicks inside the outline, so they cannot see the rest of a heterogeneous mass beyond an
    outline that holds only its core (new-user trial, Lung_Dx-A0001: clicks inside the mass gave
    34 and 59 mL, neither flagged). The probes (``lesion_shell.outside_probes``) lie in the
    ``SHELL_MM`` shell (beyond the partial-volume blur) in the outline's HU class (ground glass,
    fat, soft tissue: lesion.json), contiguous with it, at least ``CLICK_BALL_MM`` deep in the
    outline joined with that tissue (an interior click of the larger lesion, issue 14), at most
    ``PROBES``; each is grown by the same model (the lesion's type forced, no further checks).
    A probe outline holding more than ``PROBE_MIN_OVERLAP`` of the outline is the same lesion:
    larger than ``CLICK_VOLUME_SPREAD`` times it, the outline holds only part of it (warning,
    ``PART_OF_MASS``); one that leaked (``_leaked``) is said as a leak. Seeded region growing
    depends on its seeds (Adams & Bischof, IEEE PAMI 1994).

    A probe outline holding less is another structure only when it stops at the outline's
    border; one that crosses it back into the outline where the CT shows no intensity edge
    (``lesion_shell.crossing_edge``: the step across the border reaches Rose's
    contrast-to-noise ratio, ``ROSE_CNR``, along less than ``EDGE_SUPPORT_MIN`` of the crossing)
    shows that the outline's border there is not the lesion's (new-user trial: Lung_Dx-A0001, a
    click in the 59 mL mass gave 34.3 mL, 0.24 of it held by a 16.7 mL probe, 49 % of which lay
    inside it, across a border with no edge). The outline is kept, not merged with the probe's
    (that tissue's own extent is not confirmed: there a click inside it leaked, and the union,
    42.8 mL, is still not the mass): the volume is said to depend on the click, with the union
    as the top of its range (``volumes``), or, when the probe's outline leaked judged as its
    click run alone would be (``_check_outline_leak``), as a leak, so that no range is given.
    ``crossing``: a list the edge share of each such crossing is appended to
    (``LesionMeasurements.crossing_edge_support``: the local finding beside the global
    ``edge_support``, trial 63 L4).

    ``thr``: the outline's HU band ([lower, upper], the band it was grown in). A probe whose
    tissue lies outside it (``_probe_tissue``) is a click on another tissue, not on this
    outline's: a leak of its outline is not this outline's (it goes to no ``leaks``; trial 64:
    STS_002's probe at -86 HU beside an outline of 21-183 HU, in a fat-density part of the
    sarcoma, leaked to 483.8 mL and the 58.4 mL outline, Dice 0.87, was called leaked). Its
    warning says the outline may leave out a part of other density (``PART_OF_MASS``) and names
    the probe's HU against the band; a crossing with no edge by such a probe whose outline leaked
    still says the volume depends on the click (its border there is not seen)."""
    from .lesion_shell import crossing_edge, host_tissue, judge_probe, outside_probes
    from .resolution import effective_resolution_mm

    sk = np.asarray(ct.spacing_kji, float)
    probes = outside_probes(ct.array, mask, sk, (GROUND_GLASS_MIN_HU, GROUND_GLASS_MAX_HU, FAT_MAX_HU, BONE_CLICK_HU),
                            SHELL_MM, CLICK_BALL_MM, SMOOTH_SIGMA_MM, PROBES, _deepest_probe)
    v = ct.voxel_volume_ml
    v0 = float(mask.sum()) * v
    parts = []
    for q in probes:
        at = ct.kji_to_world(np.asarray(q, float)[None])[0]
        try:
            m2, meas2 = segment_lesion(ct, at, kind=kind, _from_core={"radius": radius}, **kw)
        except (InputError, ImagioError):
            continue
        ctx = _lung_context(m2, ct)   # once: the host rule and the leak test both read it
        if meas2.kind == "lung_nodule":
            meas2.lung_context = ctx
        if (ctx < LUNG_CONTEXT_FRACTION
                and host_tissue(ct.array, mask, m2, sk, SMOOTH_SIGMA_MM, FACING_SD, NOISE_FLOOR_HU)):
            # a solid organ around the lesion, not more of it (review 45 H2). Inside the lung
            # (the probe's outline bordered by aerated lung) no solid organ hosts a lesion: soft
            # tissue contiguous with it is more of the mass, whatever its density (an enhancing
            # or necrotic part), so the probe is judged as before
            continue
        verdict = judge_probe(mask, m2, _leaked(meas2), PROBE_MIN_OVERLAP, CLICK_VOLUME_SPREAD)
        at = np.round(at, 1).tolist()
        v1 = float(m2.sum()) * v
        share = None
        if verdict == "other" and m2.any():
            share = crossing_edge(ct.array, mask, m2, sk, effective_resolution_mm(ct.array, sk), SHELL_MM,
                                  2.0 * CLICK_BALL_MM, ROSE_CNR, (SHELL_MIN_HU, BONE_CLICK_HU), NOISE_FLOOR_HU)
            if share is not None and share < EDGE_SUPPORT_MIN:
                verdict = "crossed"
                if crossing is not None:
                    crossing.append(share)
        if verdict in ("part", "leaked", "crossed"):
            parts.append((v1, at, q, m2, meas2, verdict, share, _probe_tissue(ct, q, thr)))
    best = None
    for v1, at, q, m2, meas2, verdict, share, (tissue, same) in sorted(parts, key=lambda t: -t[0]):
        # every leaked probe is said; the largest part that did not leak, judged as its click run
        # alone would be (its own interior probe too: ``_check_outline_leak``), is the range's top.
        # A probe on tissue outside this outline's HU band is not a click on this outline's tissue:
        # its leak is that tissue's, not this outline's (no ``leaks``: trial 64, STS_002)
        where = f"A check click just outside it (R,A,S = {at} mm) lies on {tissue}"
        if verdict == "crossed":
            leaked_ml: list = []   # the outline that leaked: the probe's, or a click's inside it
            why = _check_outline_leak(ct, q, m2, meas2, kind, radius, kw, v0, leaked_ml)
            vu = float((m2 | mask).sum()) * v
            # one short sentence per fact (trial 65/66: an 850-character warning, its leak said twice)
            crossed = (f"{where}. Its outline ({v1:.1f} mL) crosses this outline's border; "
                       f"{100 * float((m2 & mask).sum()) / max(float(m2.sum()), 1.0):.0f} % of it lies inside. "
                       f"The border there shows no intensity edge: the contrast-to-noise ratio reaches Rose's "
                       f"{ROSE_CNR:g} along {100 * share:.0f} % of the crossing (crossing_edge_support).")
            if why:
                if leaks is not None and same:
                    leaks += leaked_ml
                notes = notes + [_Note(
                    # judged as its click run alone: its own outline, or one grown from a click inside
                    # it, leaked (trial 65 L2: "That check outline leaked" named the 16.7 mL outline
                    # when a click inside it grew the 569.9 mL one). Said instead of PROBE_RUN: the
                    # click run alone is what that caveat asks for
                    f"{PART_OF_MASS}; this outline is {v0:.1f} mL. {crossed} Clicked alone, that check click fails: {why}. "
                    + ("" if same else f"That leak is of the other tissue, yet the border is not seen there: "
                                       f"the volume {DEPENDS}. ")
                    + "Check it on the images, add a click there (--add) or outline it by hand.",
                    "check_leak", (v0, v1, *leaked_ml), leaked_ml if same else ())]
                continue
            if volumes is not None:
                volumes += [v0, vu]
            sizes = f"with that outline it is {vu:.1f} mL, without it {v0:.1f} mL."
            sizes = f"The volume {DEPENDS}: {sizes}" if vu > CLICK_VOLUME_SPREAD * v0 else sizes[0].upper() + sizes[1:]
            notes = notes + [
                f"{PART_OF_MASS}. {crossed} {PROBE_RUN} {sizes} Check on the images which is the lesion; add a click there "
                "(--add) or remove what is not (--remove)."]
            continue
        if verdict == "part" and best is not None:
            continue
        why = _leak_reason(meas2) if verdict == "leaked" else _check_outline_leak(ct, q, m2, meas2, kind,
                                                                                  radius, kw, v0)
        if why and not same:
            # another tissue beside (or within) the lesion grew an outline over this one that leaked:
            # this outline may leave out a part of the lesion of other density; its own border is
            # not in question (the check clicks on its own tissue judge that)
            notes = notes + [
                f"{PART_OF_MASS}. {where}. Grown from there, an outline held this one and "
                f"leaked ({v1:.1f} mL): {why}. That leak is of the other tissue, not of this outline "
                f"({v0:.1f} mL). {PROBE_RUN} Check on the images whether that tissue is part of the lesion; "
                "if so add it (--add) or outline it by hand."]
            continue
        if why:
            if leaks is not None:
                leaks.append(v1)
            notes = notes + [_Note(
                f"{where}. Grown from there, an outline held this one ({v0:.1f} mL) and leaked ({v1:.1f} mL): "
                f"{why}. So the lesion is not told from that tissue: this outline may hold only part of it or none "
                f"of its border. {PROBE_RUN} Check it on the images, give the organ mask, or outline it by hand.",
                "check_leak", (v0, v1), (v1,))]
            continue
        best = (v1, at, float((m2 & mask).sum()) * v, float((m2 & ~mask).sum()) * v, where)
    if best is not None:
        v1, at, held, added, where = best
        if volumes is not None:
            volumes += [v0, v1]
        notes = notes + [
            f"{PART_OF_MASS}. {where}. Grown from there, {v1:.1f} mL holds "
            f"{100 * held / max(v0, 1e-9):.0f} % of this outline ({v0:.1f} mL) and {added:.1f} mL more tissue "
            f"contiguous with it. {PROBE_RUN} Check on the images which is the lesion; add a click there (--add) "
            "or remove what is not (--remove)."]
    return notes


def _probe_tissue(ct, q, thr) -> tuple:
    """(words, same) for the tissue a check click at the voxel ``q`` ([k, j, i]) lies on, against
    the outline's HU band ``thr`` ([lower, upper] HU, the band the model grew it in; None: not
    judged, taken as the same tissue). Its HU is the median of the CT within ``CLICK_BALL_MM``
    of it (the ball a click's statistics come from, the smallest measurable lesion's radius:
    single voxels are noisy, and a fat speck under the click is not the tissue it samples);
    ``same`` is True when that lies inside the band. The words name the voxel's own HU too (what
    a viewer shows there). ``ct``: Volume (HU); ``q``: indices on its grid.

    Why: the check clicks test whether the result is stable to where the user clicks within the
    same tissue (issue 14; seeded region growing depends on its seeds, Adams & Bischof, IEEE PAMI
    1994). A check click on tissue the outline's own band leaves out is a click on another tissue
    (new-user trial 64: STS_002's probe at -86 HU beside an outline of 21-183 HU, a fat-density
    part of the sarcoma): what it grows says whether that tissue belongs to the lesion, not
    whether this outline leaked, and the words must say which it is."""
    sk = np.asarray(ct.spacing_kji, float)
    q = tuple(int(x) for x in q)
    hu = float(np.median(_ball_values(ct.array, q, sk, CLICK_BALL_MM)))
    tissue = (f"a {float(ct.array[q]):.0f} HU voxel; the tissue round it (median within {CLICK_BALL_MM:g} mm) "
              f"is {hu:.0f} HU")
    if thr is None:
        return tissue, True
    lo, hi = float(thr[0]), float(thr[1])
    same = lo <= hu <= hi
    band = f"this outline's band of {lo:.0f} to {hi:.0f} HU"
    # the verdict names the tissue's median, not the voxel (new-user trial 65 L2: "a -86 HU voxel in
    # tissue of 41 HU ..., inside this outline's band of 21 to 183 HU" read as if -86 HU were inside)
    if same and lo <= float(ct.array[q]) <= hi:
        # the voxel agrees with its tissue: the tissue's HU alone (trial 65/66: a shorter warning)
        tissue = f"tissue of {hu:.0f} HU (median within {CLICK_BALL_MM:g} mm)"
    return ((f"{tissue}, which is inside {band}" if same else
             f"{tissue}, which is outside {band}: another tissue, such as a part of the mass of other density "
             "or the tissue around it"), same)


def _click_range(meas, volumes, notes, edited: bool = False, leaks=(), own_limit: bool = False) -> None:
    """Set ``meas.volume_range_ml`` ([min, max] mL over the outlines the click checks grew,
    this click's included; None when no other click was grown, or when an end of it cannot be
    trusted) and ``meas.click_dependent``, and add a warning to ``notes`` that gives the range
    instead of one volume, or says why none is given.

    Why: a volume that changes two-fold with the click spans a whole volume doubling, the
    measure of a nodule's growth (issue 14; lesion.json ``click_dependent_ratio``): one figure
    from one click is then not the lesion's volume, so the summary gives the range
    (``LesionMeasurements.volume_summary_ml`` is None) and programs read ``click_dependent``.
    A note that says the volume ``DEPENDS`` on the click (volumes more than
    ``CLICK_VOLUME_SPREAD`` apart, issue 14) sets the flag too: the words and the flag agree
    (new-user trial: such notes came with ``click_dependent`` false).
    The outline written (``meas.volume_ml``, after any cut of a necked leak) is in the range
    (review 44 M2). ``edited``: the user's --add/--remove points changed the outline after the
    checks: the user has judged it, so its volume stands (not click-dependent), the range of
    the outlines before the edit goes to ``meas.volume_range_before_edit_ml`` (not
    ``volume_range_ml``: it is not the edited outline's range, new-user trial) and is said in a
    note. ``leaks``: volumes (mL) of outlines the checks grew that leaked (``_leaked``, judged
    as their clicks run alone would be: ``_check_outline_leak``): they never bound the range,
    and the outlines that did not leak cannot bound it either (the lesion's border is not found
    from a click: one larger outline leaked), so no range is given; the outline is marked
    ``check_leaked`` and ``click_dependent`` (no single volume is the lesion's) and the warning says
    a check click's outline leaked (new-user trial: '162.1-1051.0 mL', the 1051 mL outline 3 % inside
    the reader boxes). When a note in ``notes`` (a `_Note` with ``leaks_ml``) already names every leaked volume (the check's own
    warning, which says where and why), the outcome is put in front of that note instead
    ("click-dependent outline (no volume or range is given): ..."), so the leak is said once
    (trials 65 L2 / 66 L4: STS_002's 483.8 mL leak was said in two warnings). ``leaked`` is this outline's own (trial 64: a check outline's leak marked a
    58.4 mL outline of STS_002, Dice 0.87, leaked): ``own_limit`` here, the rest of ``_leaked`` in
    ``segment_lesion``.
    A check click that grew no lesion (volume 0: nothing, or less than its own statistics ball,
    ``_probe_ball_ml``) gives no bottom of a range either: no range, ``click_dependent``, and
    the warning says the volume is not found from a click (new-user trial: '0.1-7.5 mL' for a
    core-only outline of a mass). ``own_limit``: the outline written (edited or not) reached the
    size limit (``max_radius_mm`` from its click): it is no bound of the lesion either, so it is
    ``leaked`` and ``click_dependent`` (no volume presented), also after an edit (new-user trial
    58: a 628 mL outline at the size limit was given as the bottom of a range, and an --add to a
    size-limited outline made its 982 mL a firm volume)."""
    v = [float(x) for x in volumes]
    meas.leaked = own_limit   # this outline's own leak (segment_lesion adds ``_leaked``'s other criteria)
    meas.check_leaked = bool(len(leaks))
    # the range of the outlines the checks grew; the outline written is in it unless the user
    # edited it after the checks (trial 58 M2: the range before the edit held the edited volume)
    if len(v) >= 2 and not edited:
        v.append(float(meas.volume_ml))
    found = [x for x in v if x > 0]
    rng = ([round(min(found), 2), round(max(found), 2)] if found else [0.0, 0.0]) if len(v) >= 2 else None
    leaked_ml = ", ".join(f"{x:.1f}" for x in sorted({round(float(x), 1) for x in leaks}))
    said = any(DEPENDS in n for n in notes)   # a note says the volume depends on the click
    if own_limit:
        meas.click_dependent = True
        # this outline's own leak says all a check's leak would (trial 70 D4: STS_022 said its core's
        # 1614 mL leak in a warning of its own beside its own 3351 mL leak): those notes go, their volumes
        # are named here once
        other = sorted({x for n in notes for x in getattr(n, "leaks_ml", ())} | {round(float(x), 1) for x in leaks})
        notes[:] = [n for n in notes if not getattr(n, "leaks_ml", ())]
        also = (f"; {'outlines' if len(other) > 1 else 'an outline'} grown from the tool's check clicks leaked as "
                f"well ({', '.join(f'{x:.1f}' for x in other)} mL)" if other else "")
        # (trial 72 D3: click_dependent true and no warning said so) the size limit is measured from the
        # click, so where this outline stops depends on the click
        notes.append(f"{OWN_LEAK} ({meas.volume_ml:.1f} mL"
                     f"{', after the --add/--remove edit' if edited else ''}) reached the size limit, so it "
                     "followed tissue of the lesion's density beyond the lesion and its volume is not the "
                     f"lesion's; the limit is measured from the click, so the outline {DEPENDS}{also}: check it on "
                     "the images, cut it (--remove), give the organ mask or outline it by hand")
        if edited:
            meas.volume_range_before_edit_ml = rng
        return
    if meas.check_leaked and not edited:
        meas.click_dependent = True
        said_at = [i for i, n in enumerate(notes) if getattr(n, "leaks_ml", ())]   # `_Note`s naming a leak
        named = {x for i in said_at for x in notes[i].leaks_ml}
        if said_at and all(round(float(x), 1) in named for x in leaks):
            # the check's own warning names the leak: said once, with the outcome in front (trial 65
            # L2 / 66 L4: STS_002's 483.8 mL leak was said in two warnings)
            n = notes[said_at[0]]
            notes[said_at[0]] = n.retold(f"click-dependent outline (no volume or range is given): {n[:1].lower()}{n[1:]}")
            return
        notes.append(f"click-dependent outline: a check click's outline leaked ({leaked_ml} mL) instead of "
                     "following the lesion. So the lesion's border is not found from a click, and no volume or "
                     f"range is given. The outline written is this click's ({meas.volume_ml:.1f} mL); it may hold "
                     "only part of the lesion or more. Check it on the images, correct it (--add, --remove) or "
                     "outline it by hand.")
        return
    if meas.check_leaked:
        notes.append(f"before the --add/--remove points edited it, an outline grown by the click checks leaked "
                     f"({leaked_ml} mL); the edited outline's volume "
                     f"({meas.volume_ml:.1f} mL) is given: check the edit on the images")
    if rng is None:
        meas.click_dependent = bool(said and not edited)
        return
    empty = min(v) <= 0
    dependent = empty or said or max(v) > CLICK_DEPENDENT_RATIO * min(v)
    if edited:
        meas.volume_range_before_edit_ml = rng
        if not dependent:
            return
        lo, hi = rng
        notes.append(f"before the --add/--remove points edited it, {CHECK_CLICKS} gave {lo:.1f}-{hi:.1f} mL"
                     f"{' (and a click that grew no lesion)' if empty else ''}; the edited outline's volume "
                     f"({meas.volume_ml:.1f} mL) is given: check the edit on the images")
        return
    meas.click_dependent = dependent
    if empty:
        notes.append(f"click-dependent outline: the volume is not found from a click: a click elsewhere inside this "
                     f"outline grew no lesion, so no range is given; the outline written is this click's "
                     f"({meas.volume_ml:.1f} mL), possibly only part of the lesion (its core) or tissue beside it: "
                     "check it on the images, correct it (--add, --remove) or outline it by hand")
        return
    meas.volume_range_ml = rng
    if meas.click_dependent:
        lo, hi = meas.volume_range_ml
        # how far apart the volumes are, only where it is true (trial 75: STS_008 said "21.3-21.9 mL, more
        # than 15 % apart": the outline depended on the click by another note's finding, an outside check
        # click, while its volumes were 2.7 % apart)
        apart = (f", more than {CLICK_DEPENDENT_RATIO:g}-fold apart" if max(v) > CLICK_DEPENDENT_RATIO * min(v)
                 else f", more than {100 * (CLICK_VOLUME_SPREAD - 1):.0f} % apart" if max(v) > CLICK_VOLUME_SPREAD * min(v)
                 else "")
        at = [i for i, n in enumerate(notes) if DEPENDS in n]
        if at:
            # a note already says that the outline depends on the click, and how: the range goes in
            # front of it, not into a second warning (trial 68 L6: said twice on STS_008, STS_010 and
            # Lung_Dx-A0001, whose second warning called the union written "this click's"). The range is
            # the outlines', not the lesion's: "treat the volume as that range" was untrue on STS_010
            # (trial 69: clicks 73.2-113.5 mL, the sarcoma 182.8 mL)
            n = notes[at[0]]
            if {round(lo, 1), round(hi, 1)} <= set(getattr(n, "volumes_ml", ())):
                # the note names both ends of the range already (trial 70 D2: STS_010 said "73.2-113.5 mL"
                # and then "113.5 mL ... 73.2 mL"): the outcome only, the volumes once
                # (trial 72 D1: "the region grown from the click (113.5 mL)" gave the withheld volume as
                # the region's: the two outlines are said as the range volume_range_ml carries)
                told = (f"the outlines grown from the click and from its own core differ ({lo:.1f}-{hi:.1f} mL, "
                        f"volume_range_ml): the volume {DEPENDS} and is unreliable; check it, or compare clicks"
                        if n.kind == "core_differs" else f"{n[:1].lower()}{n[1:]}")
                notes[at[0]] = n.retold(f"click-dependent outline (no single volume or diameter is the lesion's, and "
                                        f"the lesion may be smaller or larger than both): {told}")
                return
            notes[at[0]] = (f"click-dependent outline ({CHECK_CLICKS} give {lo:.1f}-{hi:.1f} mL{apart}: no single "
                            f"volume or diameter is the lesion's, and it may lie outside that range): {n[:1].lower()}{n[1:]}")
            return
        notes.append(f"click-dependent outline: {CHECK_CLICKS} give {lo:.1f}-{hi:.1f} mL{apart}, "
                     f"so no single volume or diameter is the lesion's, and it may lie outside that range; "
                     f"the outline written is "
                     f"{meas.volume_ml:.1f} mL; check it on the images, or correct it (--add, --remove, or by hand)")


def _necked_parts(mask: np.ndarray, seed: tuple, sk) -> np.ndarray:
    """The parts of ``mask`` ([k, j, i], full image grid) joined to the blob of ``seed`` only
    through a neck and reaching the image's edge (a bool mask of the same shape; empty when
    there are none).

    The outline's distance map (mm, ``_edt``) is split into blobs by a marker-controlled
    watershed on its inverse (Meyer & Beucher, J Vis Commun Image Represent 1990; scikit-image),
    the markers being the outline eroded by ``OPEN_FRACTION`` of the inscribed radius R at the
    seed's core (``_climb``), i.e. the blobs an opening with the radius derived from the core
    separates (Kuhnigk et al., IEEE TMI 2006: attachments of a nodule cut by an opening whose
    radius comes from the nodule's own core). Adjacent blobs are merged, deepest neck first,
    while the neck (the deepest point of their common border on the distance map) is at least
    ``OPEN_FRACTION`` of the inscribed radius of the thinner of the two (merged) blobs: a
    shoulder or a lobe joined broadly is part of the same mass, a neck narrower than half the
    thinner blob is a join of two masses (saddle-based merging of watershed basins, the
    "dynamics" of Grimaud, SPIE 1769, 1992). Of the resulting masses other than the seed's, the
    ones that reach the image's edge are returned: a compact tumour is bounded, a region that
    ran through a neck (a fascial plane between muscles) along a muscle out of the field of
    view is the tissue it leaked into. A lobe joined through a neck but enclosed in the image
    (a lobulated or necrotic tumour) is kept. Loops run over blob pairs, not voxels."""
    from skimage.segmentation import watershed

    from .common import bbox_slices

    out = np.zeros(mask.shape, bool)
    sl = bbox_slices(mask, 0.0, sk)
    if sl is None:
        return out
    lo = np.array([s_.start for s_ in sl])
    m = mask[sl]
    depth = _edt(m, sk)
    local = tuple(int(v) for v in np.clip(np.asarray(seed) - lo, 0, np.array(m.shape) - 1))
    core = _climb(depth, local, sk) if m[local] else tuple(np.unravel_index(int(np.argmax(depth)), m.shape))
    lab, n = ndimage.label(depth > OPEN_FRACTION * float(depth[core]))
    if n < 2 or not lab[core]:
        return out
    basins = watershed(-depth, lab, mask=m)
    gmax = np.zeros(n + 1)
    gmax[1:] = ndimage.maximum(depth, basins, index=np.arange(1, n + 1))
    neck = np.zeros((n + 1) * (n + 1))  # deepest common border point of each blob pair
    for ax in range(3):
        a_, b_ = [slice(None)] * 3, [slice(None)] * 3
        a_[ax], b_[ax] = slice(0, -1), slice(1, None)
        la, lb = basins[tuple(a_)], basins[tuple(b_)]
        sel = (la > 0) & (lb > 0) & (la != lb)
        d = np.minimum(depth[tuple(a_)], depth[tuple(b_)])[sel]
        np.maximum.at(neck, np.minimum(la[sel], lb[sel]) * (n + 1) + np.maximum(la[sel], lb[sel]), d)
    pairs = np.nonzero(neck)[0]
    parent = np.arange(n + 1)

    def root(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for e in pairs[np.argsort(-neck[pairs])]:
        ra, rb = root(e // (n + 1)), root(e % (n + 1))
        if ra != rb and neck[e] >= OPEN_FRACTION * min(gmax[ra], gmax[rb]):
            parent[ra] = rb
            gmax[rb] = max(gmax[ra], gmax[rb])
    group = np.array([root(i) for i in range(n + 1)])[basins]
    group[basins == 0] = -1
    at_edge = set()
    for ax in range(3):
        if sl[ax].start == 0:
            at_edge |= set(np.unique(np.take(group, 0, axis=ax)).tolist())
        if sl[ax].stop >= mask.shape[ax]:
            at_edge |= set(np.unique(np.take(group, -1, axis=ax)).tolist())
    at_edge -= {-1, int(group[core])}
    if not at_edge:
        return out
    keep = m & ~np.isin(group, sorted(at_edge))
    keep = _component_at(keep, core, sk)
    out[sl] = m & ~keep
    return out


def _cut_necked_leak(ct, seed_g, mask, notes) -> tuple:
    """(mask, notes) of a soft-tissue outline taken without an intensity edge, with the parts
    beyond a neck that run out of the image (``_necked_parts``) cut off, and a warning giving
    both volumes; unchanged when there are none. Why: such a region that regrows to itself from
    its own core (``_check_from_core`` cannot see it) still flooded a muscle through a fascial
    plane (STS_014: 1448 mL for a 423 mL sarcoma)."""
    cut = _necked_parts(mask, seed_g, np.asarray(ct.spacing_kji, float))
    if not cut.any():
        return mask, notes
    v0, v1 = float(mask.sum()) * ct.voxel_volume_ml, float((mask & ~cut).sum()) * ct.voxel_volume_ml
    return mask & ~cut, notes + [
        f"the region grown from the click ({v0:.1f} mL) was cut to its compact part ({v1:.1f} mL): "
        f"{v0 - v1:.1f} mL joined to it only through a neck narrower than half its thickness ran out of "
        "the image (tissue of the lesion's density it leaked into, e.g. a muscle); the volume is "
        "unreliable; check it, or add a click there (--add) if the lesion continues there"]


def _bbox_around(mask, seed, margin_mm, sk):
    """Slices of the box of ``mask`` and ``seed`` together, grown by ``margin_mm``."""
    from .common import bbox_slices

    m = mask.copy()
    m[tuple(seed)] = True
    return bbox_slices(m, margin_mm, sk)


def _pv_depth_kji(ct: Volume) -> np.ndarray:
    """Per array axis [k, j, i], the depth (mm) of a lesion's partial-volume layer: the largest
    spacing, and along each axis the CT's own resolution there when its grid was interpolated
    from a coarser one (`_interpolated_resolution`): a blurred edge is as deep as the resolution,
    not the grid (new-user trial 46 M1: lung1's 5 mm sections on a 1.5 mm grid). On an oblique
    reformat the thick sections' blur lies across the grid's axes and shows on every one of them
    (trial 77: lung1 on a 25/12/-8 deg grid of 0.7 x 0.9 x 2.0 mm reads 3.6, 4.2 and 3.7 mm along
    i, j, k), so each axis takes its own."""
    sk = np.asarray(ct.spacing_kji, float)
    depth = np.full(3, float(sk.max()))
    res = _interpolated_resolution(ct)
    if res is not None:
        depth = np.maximum(depth, res)
    return depth


def _solid_click_grew_into_fat(a, mask, seed, sk, depth_kji) -> bool:
    """True when a click in solid tissue (2 mm ball median above -30 HU) gave a region whose
    interior (deeper than the partial-volume layer ``depth_kji()`` (a callable giving mm per
    axis, `_pv_depth_kji`, called only past the click's test: the CT's noise estimate is costly):
    partial volume with the lung round a small nodule lies in its outer layer) has a median of
    fat (-190..-30 HU; adipose tissue, Lamba et al.,
    AJR 2014). The lung rule keeps what is denser than the aerated "lung" round it; a lung
    lesion is denser than fat, so a region whose core is fat has grown through the body's fat
    and the aerated material beside it is not the lesion's lung (a CT table's pads read
    -800..-900 HU like lung on a crop that holds no outside air). A thick-slice nodule on a
    finer reformat (lung1's 5 mm slices on an oblique 2 mm or a 1.5 mm grid) had a core of
    fat's HU by partial volume and became "soft tissue" (new-user trials 16 and 46): the depth
    along S is the CT's own resolution there when the grid is interpolated; on native grids it
    stays the largest spacing (judging a deeper core there makes a part-solid nodule's
    solid-to-ground-glass blend read as fat). A cavity (gas,
    below ``GAS_MEDIAN_HU``) and the one-voxel layer of its wall are left out of the core: a
    cavitating nodule's filled cavity and its blurred wall read -190..-30 HU together.
    A region the lung encloses (`_enclosed_by_lung`) holds no body fat: False (a thin lesion's
    whole core lies in its partial-volume blur: the phantom's 5 mm-thick perifissural nodule)."""
    from .common import bbox_slices, erode_mm

    if _click_stats(a, seed, sk)[0] <= FAT_MAX_HU or not mask.any():
        return False
    if _enclosed_by_lung(a, mask, sk):
        return False
    sl = bbox_slices(mask, 0.0, sk)
    # an ellipsoid of semi-axes depth_kji (mm): a ball of the largest depth on a grid whose
    # spacing is scaled by largest / depth per axis
    depth = np.asarray(depth_kji(), float)
    r = float(np.max(depth))
    deep = erode_mm(mask[sl], r, np.asarray(sk, float) * r / depth)
    # a cavity's gas and the partial-volume layer of its wall are not fat (`_lung_subtype`)
    gas = mask[sl] & (a[sl] < GAS_MEDIAN_HU)
    if gas.any():
        deep &= ~ndimage.binary_dilation(gas, np.ones((3, 3, 3), bool))
    if not deep.any():
        return False
    med = float(np.median(a[sl][deep]))
    return bool(FAT_MIN_HU <= med < FAT_MAX_HU)


def _enclosed_by_lung(a, mask, sk) -> bool:
    """True when ``mask`` (bool [k, j, i], non-empty; ``a`` the CT's HU, ``sk`` its spacing, mm)
    lies inside the lung: closed in the image (it touches no face of the array) and bordered by
    aerated lung (below ``GROUND_GLASS_MIN_HU``) over more than ``ENCLOSED_LUNG_FRACTION`` of its
    ``LUNG_SHELL_MM`` shell. Body fat lies outside the pleura (chest wall, mediastinum, below the
    diaphragm), so a region grown through it is bordered beyond the fat by the wall, by what lies
    outside the body or by the field's edge, not by lung over most of its surface (STS_002's
    thigh on the table pads: 35 % of its shell, and the image's faces). A region the lung
    borders all round holds no body fat: a core of fat's HU there is the partial volume of a
    thin lesion with the lung round it (the phantom's 10 mm perifissural nodule, 5 mm thick, on
    1 mm voxels: the core left by a one-voxel erosion reads -190..-30 HU, its shell is lung
    over 100 %) or a fat-containing nodule (hamartoma), a lung lesion either way."""
    from .common import bbox_slices

    if _touched_faces(mask):
        return False
    sl = bbox_slices(mask, LUNG_SHELL_MM[1], sk)
    sh = _shell(mask[sl], sk, *LUNG_SHELL_MM)
    return bool(sh.any() and (a[sl][sh] < GROUND_GLASS_MIN_HU).mean() > ENCLOSED_LUNG_FRACTION)


def _aerated_border_outside_body(a, mask, ct, data=None) -> bool:
    """True when most of the aerated air (below ``LUNG_HU``) in the 1-4 mm shell of ``mask``
    (``LUNG_SHELL_MM``) belongs to air components lying mostly outside the body's outline in
    their axial slices (`body.mostly_in_slice_hull` on `_Measured.body`: the in-plane pieces of
    measured tissue that hold bone, the patient's trunk or limb, not the table or its pads):
    outside air or a pad, not lung (the lungs lie inside the thoracic cage, so a lung cut by the
    field of view is still enclosed by the body's outline in every slice). ``data``: the
    `_Measured` of ``ct`` (None: an image without padding, every voxel measured). The air is
    labelled (6-connected) in the slab of whole slices that the shell spans. Used for the words of
    a retyped region only (new-user trial 85 L2: STS_002's thigh "read as lung")."""
    from .body import mostly_in_slice_hull

    sk = ct.spacing_kji
    s_axis = anatomical_axes(ct)["S"][0] if data is None else data.s_axis
    meas = data if data is not None else _Measured(a, np.broadcast_to(np.True_, a.shape), s_axis)
    sl = bbox_slices(mask, LUNG_SHELL_MM[1] + float(max(sk)), sk)
    shell = np.zeros(a.shape, bool)
    shell[sl] = _shell(mask[sl], sk, *LUNG_SHELL_MM)
    zs = sl[s_axis]
    slab = tuple(zs if ax == s_axis else slice(None) for ax in range(3))
    air = (a[slab] < LUNG_HU) & meas.data[slab]
    lab, n, _ = components(air, connectivity=6)
    at = lab[shell[slab] & air]
    if not at.size:
        return False
    keep = np.zeros(n + 1, bool)
    keep[np.unique(at)] = True
    plane = [float(x) for ax, x in enumerate(sk) if ax != s_axis]
    inside = mostly_in_slice_hull(lab, keep, meas.body(zs, plane), s_axis)
    return bool((~inside[at]).sum() > inside[at].sum())


def _bordered_by_gas(a, mask, ct) -> bool:
    """True when more of the 1-4 mm shell of ``mask`` is gas (air components of >= 0.5 mL with
    a median <= -950 HU: outside air, bowel gas) than lung-like air (median above -950 HU). The
    air components are those of the whole image (a crop changes the median of the outside air:
    its partial-volume layer at the skin weighs more), found on a grid coarsened to <= 8 M
    voxels (a median of a large component does not depend on the sampling), within the measured
    data only (`padding.data_mask`: not the padding of a reformat, its blended rim, nor the
    array's outer voxel layer): a resampled grid's fill (-1024) over a face or in the corners of
    an oblique reformat would otherwise join the cut lungs to the outside air, the joined
    component's median reads as gas and a lung nodule becomes "soft tissue" at half its volume
    (new-user trial 16, LIDC-0001 with one air face: 5.84 -> 2.74 mL)."""
    from ..padding import data_mask
    from .common import bbox_slices

    f = 1
    while a.size / f ** 3 > 8_000_000:
        f += 1
    sub = a[::f, ::f, ::f]
    data, _ = data_mask(Volume(sub, np.eye(4)))
    lab, n, counts = components((sub < LUNG_HU) & data, connectivity=6)
    sl = bbox_slices(mask, LUNG_SHELL_MM[1] + float(max(ct.spacing_kji)), ct.spacing_kji)
    sh = np.argwhere(_shell(mask[sl], ct.spacing_kji, *LUNG_SHELL_MM)) + [s_.start for s_ in sl]
    shell_lab = lab[tuple(np.minimum(sh // f, np.array(sub.shape) - 1).T)]
    near = np.unique(shell_lab)
    near = near[(near > 0) & (counts[near] * ct.voxel_volume_ml * f ** 3 >= 0.5)]
    if not near.size:
        return False
    sel = np.zeros(n + 1, bool)
    sel[near] = True
    is_gas = np.zeros(n + 1, bool)
    is_gas[sel] = label_medians(sub, lab, sel) <= GAS_MEDIAN_HU
    lung = sel & ~is_gas
    return bool(is_gas[shell_lab].sum() > lung[shell_lab].sum())


def _seed_voxel(ct: Volume, point: np.ndarray) -> tuple:
    if not ct.contains_world(point[None])[0]:
        from ..coords import point_text

        raise InputError(
            f"the point R,A,S = {point_text(point)} mm is outside the image ({ct.outside_text(point)}); "
            "click inside the lesion")
    return tuple(int(v) for v in np.clip(np.rint(ct.world_to_kji(point[None])[0]), 0, np.array(ct.shape) - 1))


def _exclude(mask, ct, seed, ex_seeds):
    """The lesion without the voxels nearer (Euclidean, mm) to an exclude point than to the click."""
    sk = ct.spacing_kji
    box = tuple(slice(int(v.min()), int(v.max()) + 1) for v in np.argwhere(mask).T)
    lo = np.array([b.start for b in box])
    shape = tuple(b.stop - b.start for b in box)
    d_click = _dist_grid(shape, tuple(np.asarray(seed) - lo), sk)
    keep = np.ones(shape, bool)
    for s in ex_seeds:
        keep &= d_click <= _dist_grid(shape, tuple(np.asarray(s) - lo), sk)
    out = np.zeros_like(mask)
    out[box] = mask[box] & keep
    return out


def _interpolated_resolution(ct: Volume) -> np.ndarray | None:
    """Per array axis [k, j, i], the resolution (mm, `resolution.effective_resolution_mm`) a
    lesion's partial-volume layer takes on an interpolated grid, else None. On a grid along the
    patient's axes: the axis nearest S only, when `_resolution_along_s` finds it (elsewhere 0).
    On an oblique grid (`_slice_planes`: a reformat, whose values are interpolated): every
    axis, when the axis nearest S shows a resolution above ``RESAMPLED_SECTIONS_MIN_MM`` (what
    sections of <= ``MEASUREMENT_MAX_SLICE_MM`` do not give). The spacing ratio is not asked
    there: the thick sections' blur lies along the patient's S, across the grid's axes, and a
    line along a tilted axis leaves it sooner (trial 77: lung1's 5 mm sections on a 25/12/-8 deg
    grid of 0.7 x 0.9 x 2.0 mm read 3.7 mm along the axis nearest S, 1.8 times its spacing, and
    4.2 and 3.6 mm in-plane). On axis-aligned grids the in-plane axes are not read: native scans'
    in-plane noise reads up to 4.6 mm (STS_008's i axis, 0.98 mm pixels; lung1's 3.5 mm), as the
    module `resolution` says of filtered back-projection."""
    from .resolution import effective_resolution_mm

    ax = anatomical_axes(ct)["S"][0]
    if isinstance(_slice_planes(ct), int):
        along = _resolution_along_s(ct)
        if along is None:
            return None
        out = np.zeros(3)
        out[ax] = along[0]
        return out
    res = np.asarray(effective_resolution_mm(ct.array, ct.spacing_kji), float)
    return res if res[ax] > RESAMPLED_SECTIONS_MIN_MM else None


def _resolution_along_s(ct: Volume) -> tuple[float, float] | None:
    """(resolution, spacing) in mm along the array axis nearest S when the CT's noise shows a
    resolution there (`resolution.effective_resolution_mm`) above ``RESAMPLED_SECTIONS_MIN_MM``
    (what sections of <= ``MEASUREMENT_MAX_SLICE_MM`` do not give) and at least
    ``RESAMPLED_SECTIONS_RATIO`` times the spacing (thick overlapping sections, or a grid
    interpolated from thicker ones: lesion.json's measured values;
    `resolution.resolution_along_s`), else None."""
    from .resolution import resolution_along_s

    found = resolution_along_s(ct, RESAMPLED_SECTIONS_MIN_MM, RESAMPLED_SECTIONS_RATIO)
    return None if found is None else found[:2]


def _edge_support_note(notes: list, share: float, sides: list) -> None:
    """Say in ``notes`` (warning texts, changed in place) that the outline has an intensity edge
    along only ``share`` (0-1) of its boundary, the rest on its ``sides`` (names; none or all six:
    "all round"). Where a note already says the lesion has no clear intensity edge
    (``NO_EDGE_NOTE``), the share goes into that note, which keeps its start (the flag
    ``no_intensity_edge`` is read from it) and gives the advice once (trial 72 D2: STS_010's two
    warnings both said there was no edge and both advised the organ mask); else a warning of its own."""
    # every side listed (or none most often) says no side: "all round" (trial 71: STS_010's
    # "mostly on its right, left, anterior, posterior, superior, inferior side")
    where = "all round" if len(sides) in (0, 6) else f"mostly on its {', '.join(sides)} side"
    beyond = (f"elsewhere ({where}) the tissue beyond lies within {ISO_MARGIN_HU:g} HU of the lesion, so the border "
              "there is not seen on this CT and is where the region growing stopped, not an edge")
    at = [i for i, n in enumerate(notes) if n.startswith(NO_EDGE_NOTE)]
    if at:
        notes[at[0]] = (f"{NO_EDGE_NOTE} against the tissue around it (e.g. a tumour in muscle on a non-contrast "
                        f"CT): it was taken as the homogeneous region round the click, with an intensity edge along "
                        f"only {100 * share:.0f} % of its boundary; {beyond}. Its border is approximate, and its "
                        "volume and Dice against an expert outline may be far off: check it, give the organ mask, "
                        "add or remove clicks (--add, --remove), or outline it on MR / by hand")
        return
    notes.append(f"the outline has an intensity edge along only {100 * share:.0f} % of its boundary: {beyond}; its "
                 "volume and Dice against an expert outline may be far off: check it, give the organ mask, or "
                 "outline it on MR / by hand")


def _near_field_end(mask: np.ndarray, ct: Volume, thr, measured: np.ndarray | None) -> tuple | None:
    """(distance mm, [sides]) where the outline ``mask`` (bool [k, j, i] on ``ct``'s grid)
    ends in tissue of its own density within ``SHELL_MM[1]`` of the end of the measured field
    of view, else None. The end of the measured field is the first voxel beyond an array face
    or off ``measured`` (bool [k, j, i], the tool's measured voxels, `_measured_data`: a
    reformat's padding and its blended rim are not; None: all measured), distances (mm, voxel
    centre to voxel centre, the grid's spacing, any orientation) by the Euclidean distance
    transform. An outline that ends in tissue of its own density (a voxel outside it, 6-next to
    it, within ``thr`` = [lower, upper] HU, the thresholds it was grown with) did not stop at its
    own intensity edge there: it was stopped by the lung envelope (the hull of a lung cut by the
    field of view stops short of the face where no other piece of that lung reaches it: lung2's
    mass on a 60 mm crop, 24.0 of 40.0 mL, 30.2 mL since `_joined_beyond_the_end`) or
    the opening; and a border is judged on the tissue up to ``SHELL_MM[1]`` beyond it
    (`edge_support`, the soft-tissue edge rule's shell), so where the field ends closer than
    that, what lies beyond the outline was not seen (issue 14). The sides are the patient's
    (`side_codes`) of the offsets from those voxels to their nearest unmeasured voxel, most
    frequent first."""
    from ..morph6 import dilate6

    sk = np.asarray(ct.spacing_kji, float)
    sl = bbox_slices(mask, SHELL_MM[1] + float(sk.max()), sk)
    if sl is None or thr is None or len(thr) < 2:
        return None
    m = mask[sl]
    ok = np.ones(m.shape, bool) if measured is None else measured[sl]
    a = ct.array[sl]
    dense = (a >= thr[0]) & (a <= thr[1]) & ok & ~m
    stop = m & dilate6(dense)
    if not stop.any():
        return None
    # the box's own faces inside the array are measured beyond: only the array's faces end the field
    big = np.ones(tuple(n + 2 for n in m.shape), bool)
    big[1:-1, 1:-1, 1:-1] = ok
    for ax in range(3):
        for end, at_face in ((0, sl[ax].start == 0), (-1, sl[ax].stop >= ct.shape[ax])):
            if at_face:
                big[(slice(None),) * ax + (end,)] = False
    if big.all():
        return None
    dist, idx = ndimage.distance_transform_edt(big, sampling=sk, return_indices=True)
    inner = (slice(1, -1),) * 3
    dist = dist[inner]
    near = stop & (dist <= SHELL_MM[1])
    if not near.any():
        return None
    pts = np.argwhere(near)
    to = np.stack([idx[ax][inner][near] for ax in range(3)], axis=1) - 1   # the nearest unmeasured voxel
    lo = np.array([s_.start for s_ in sl])
    codes = side_codes(ct.kji_to_world((to + lo).astype(float)) - ct.kji_to_world((pts + lo).astype(float)))
    n = np.bincount(codes, minlength=6)
    return float(dist[near].min()), [SIDE_NAMES[i] for i in np.argsort(-n, kind="stable") if n[i]]


def _open_ends(mask: np.ndarray, ct: Volume, thr, measured: np.ndarray | None = None) -> list:
    """[(side "inferior" / "superior", share, S mm of the end section)] of the ends along the
    head-foot axis of a lung lesion's outline ``mask`` (bool [k, j, i] on ``ct``'s grid) that are
    not bounded by aerated lung: beyond the outline's end section (its first / last section along
    the array axis nearest S, `anatomical_axes`), more than ``END_SECTION_DENSE_SHARE`` of its
    footprint on the next section lies within ``thr`` ([lower, upper] HU, the thresholds the
    outline was grown with: tissue of its own density). A lesion in the lung has lung beyond its
    ends; a mass on the diaphragm or against the chest wall or mediastinum was stopped there by
    the lung's envelope, not by an edge of its own, and may continue beyond (issue 14: lung2's
    mass, 95 % beyond its caudal end, the label two sections longer). Ends on the array's face or
    with less than half of that footprint measured (``measured``: bool [k, j, i], the measured
    voxels, `_measured_data`; None: all) are left to the field-of-view checks
    (`_near_field_end`). ``share``: that fraction (0-1); S: the mean S (RAS mm) of the end
    section's voxels."""
    if thr is None or len(thr) < 2 or not mask.any():
        return []
    ax, sign = anatomical_axes(ct)["S"]
    others = tuple(x for x in range(3) if x != ax)
    idx = np.flatnonzero(mask.any(axis=others))
    out = []
    for end, step in ((int(idx[0]), -1), (int(idx[-1]), 1)):
        nb = end + step
        if not 0 <= nb < mask.shape[ax]:
            continue
        foot = np.take(mask, end, axis=ax)
        ok = foot if measured is None else foot & np.take(measured, nb, axis=ax)
        if 2 * int(ok.sum()) < int(foot.sum()):
            continue
        beyond = np.take(ct.array, nb, axis=ax)[ok]
        share = float(((beyond >= thr[0]) & (beyond <= thr[1])).mean())
        if share > END_SECTION_DENSE_SHARE:
            pts = np.argwhere(foot)
            kji = np.insert(pts, ax, end, axis=1).astype(float)
            s_mm = float(ct.kji_to_world(kji)[:, 2].mean())
            out.append(("superior" if step * sign > 0 else "inferior", share, s_mm))
    return out


def _open_end_warning(ends: list, thick_mm: float) -> str:
    """The warning on a lung lesion's ends not bounded by lung (`_open_ends`' list, non-empty);
    ``thick_mm``: the spacing along the head-foot axis."""
    said = " and ".join(f"its {side} end (the section at S = {s_mm:.1f} mm: {100 * share:.0f} % of its footprint "
                        f"on the next section, {thick_mm:.2g} mm beyond, is tissue of its own density)"
                        for side, share, s_mm in ends)
    return (f"the outline's extent along the head-foot axis is not bounded by aerated lung at {said}: a lesion "
            "in the lung has lung beyond its ends, so there the outline stopped where the lung's envelope ends "
            "(e.g. on the diaphragm or against the chest wall or mediastinum), not at an edge of its own; the "
            "lesion may continue beyond and its volume and diameters be under-measured: check the sections "
            "beyond it, and add a click on the rest (--add) or outline it by hand")


def _face_sides(ct: Volume, faces) -> list:
    """The patient's sides (``SIDE_NAMES``, `side_codes`) of the array faces ``faces`` [(axis,
    side 0: index 0 / 1: last index)] of ``ct``: the outward direction of each, any grid
    orientation; each side once, in the faces' order."""
    out = []
    for ax, sd in faces:
        step = np.zeros((1, 3))
        step[0, ax] = 1.0 if sd else -1.0
        name = SIDE_NAMES[int(side_codes(ct.kji_to_world(step) - ct.kji_to_world(np.zeros((1, 3))))[0])]
        if name not in out:
            out.append(name)
    return out


def _plausibility(mask, ct, meas, hit_limit: bool = False, no_edge: bool = False,
                  measured: np.ndarray | None = None) -> list:
    """Warnings on an implausible result; sets ``meas``'s matching flags. ``hit_limit``: the
    region reached ``max_radius_mm``; ``no_edge``: it was taken without an intensity edge (the
    statistical soft-tissue model); ``measured``: the measured voxels (`_measured_data`; None:
    all), whose end the outline may come near (`_near_field_end`)."""
    out = []
    d_eq = (6.0 * meas.volume_ml * 1000.0 / np.pi) ** (1.0 / 3.0)
    if d_eq < MICRONODULE_MM:
        out.append(f"the lesion is tiny ({meas.volume_ml * 1000:.0f} mm^3, equivalent diameter "
                   f"{d_eq:.1f} mm): the click may not be on a lesion; check it")
    sphere_ml = np.pi / 6.0 * meas.long_axis_mm ** 3 / 1000.0
    if sphere_ml > 0 and meas.volume_ml < MIN_FILL_OF_SPHERE * sphere_ml:
        meas.irregular = True
        out.append(f"the lesion is irregular (it fills {100 * meas.volume_ml / sphere_ml:.0f} % of "
                   "the sphere on its long axis): it may have leaked along vessels or a wall; check it")
    thick = float(np.max(ct.spacing))
    along_s = None if thick > MEASUREMENT_MAX_SLICE_MM else _resolution_along_s(ct)
    # what partial volume makes approximate: the sizes given, or only the outline when they are
    # withheld (trial 70 D3: "makes the diameters and the volume approximate" with all of them null);
    # the warning that withholds them says so (trial 72 D3: no aside in brackets here)
    what = "the outline's border" if meas.size_withheld else "the diameters and the volume"
    # how far partial volume can move the volume (trial 97 LOW-1: "approximate" with no number)
    rng = meas.volume_border_range_ml
    span = ("" if meas.size_withheld or not rng else
            f": the volume lies within {rng[0]:.2f}-{rng[1]:.2f} mL by partial volume alone (the outline's border "
            "voxels counted half out, the voxels just outside it half in: volume_border_range_ml)")
    if thick > MEASUREMENT_MAX_SLICE_MM:
        # an oblique reformat's step is not its sections' thickness: say what its noise shows
        # (new-user trial 100 F6: lung1's 5 mm sections on a tilted 2.5 mm grid read "2.5 mm sections")
        res = _interpolated_resolution(ct) if not isinstance(_slice_planes(ct), int) else None
        sections = (f"{thick:.2g} mm sections" if res is None or float(np.max(res)) <= thick else
                    f"a tilted {thick:.2g} mm grid (an oblique reformat, its values interpolated from sections whose "
                    f"noise shows a resolution of about {float(np.max(res)):.1f} mm)")
        out.append(f"measured on {sections}: partial volume makes {what} "
                   f"approximate{span} (measurements need <= {MEASUREMENT_MAX_SLICE_MM:g} mm sections, "
                   "Fleischner Society 2017)" + ("" if meas.size_withheld else
                                                  "; compare sizes over time on the same reconstruction"))
    elif along_s is not None:   # new-user trial 44 F3: 5 mm sections interpolated to 0.7 mm, said nothing
        out.append(f"the CT's sections are {along_s[1]:.2g} mm apart but its noise shows a resolution of about "
                   f"{along_s[0]:.1f} mm along the head-foot axis, which sections of <= {MEASUREMENT_MAX_SLICE_MM:g} mm "
                   "do not give (thick or overlapping sections, or a grid interpolated from thicker ones): partial "
                   f"volume makes {what.replace(' and the volume', ', the volume')} and the solid/part-solid type "
                   "approximate (measurements "
                   f"need <= {MEASUREMENT_MAX_SLICE_MM:g} mm sections, Fleischner Society 2017); check the series' "
                   "reconstructed section thickness and measure on thin sections")
    if _touches_border(mask):
        # a lesion cut by the field of view keeps its own border elsewhere: a region that spans
        # the image from a face to the opposite one has filled it (its border is not seen), and
        # one taken without an intensity edge may have flooded same-density tissue to the edge
        faces = _touched_faces(mask)
        spans = any((ax, 0) in faces and (ax, 1) in faces for ax in range(3))
        irregular = sphere_ml > 0 and meas.volume_ml < MIN_FILL_OF_SPHERE * sphere_ml
        meas.touches_image_edge, meas.spans_image = True, spans
        out.append(_edge_warning(meas.volume_ml, hit_limit or irregular or spans or no_edge,
                                 sides=_face_sides(ct, faces)))
    else:
        near = _near_field_end(mask, ct, meas.threshold_hu, measured)
        if near is not None:
            out.append(_edge_warning(meas.volume_ml, False, near_mm=near[0], sides=near[1]))
    if meas.kind == "lung_nodule":
        ends = _open_ends(mask, ct, meas.threshold_hu, measured)
        if ends:
            out.append(_open_end_warning(ends, float(ct.spacing_kji[anatomical_axes(ct)["S"][0]])))
    tissue_hu = fat_density_hu(mask, ct, meas)
    if tissue_hu is not None:
        meas.fat_density = True
        out.append(f"the lesion's mean density (its air left out) is {tissue_hu:.0f} HU, that of fat (adipose tissue "
                   "-190..-30 HU): a solid lesion is denser, so the outline has probably grown into fat; "
                   "check it (expected only for a fat-containing tumour such as a lipoma or liposarcoma), "
                   "click nearer the lesion's centre, or give the kind")
    return out


def fat_density_hu(mask, ct, meas) -> float | None:
    """The mean HU of the lesion's tissue when it lies in fat's band (``FAT_MIN_HU`` ..
    ``FAT_MAX_HU``, lesion.json: adipose tissue), else None. Judged only for a solid kind (a
    soft-tissue lesion, a lung lesion of subtype mass or calcified: ``meas``, a
    :class:`LesionMeasurements` of ``mask``; sub-solid nodules are partial-volume mixtures of
    tissue and air); a solid lung nodule on the deeper half of its core (the outline eroded by
    one voxel, of it the voxels at least half as deep as its deepest: no partial volume with
    the lung), not judged when it has no core. Its air is left out (voxels below ``AERATED_MAX_HU``: a cavity
    and its wall's partial volume, new-user trial 45 M2, a filled cavity read as fat), so the
    mean is that of its tissue. mask: bool [k, j, i] on ``ct``'s grid (HU)."""
    from ..limits import AERATED_MAX_HU

    if meas.kind == "lung_nodule" and meas.subtype == "solid":
        # a solid nodule (review 44 M1: a compact 8-30 mm chest-wall fat outline is typed solid, -100 HU
        # being above ground glass, and was graded 4A/4B): judged on its core, the outline eroded by one
        # voxel, which holds no partial volume with the lung around it; a nodule with no core (one or
        # two voxels thick) is not judged
        from .common import bbox_slices

        box = bbox_slices(mask)   # the box grown by one voxel, so the erosion sees the border
        if box is None:
            return None
        core = ndimage.binary_erosion(mask[box])
        if not core.any():
            return None
        # of the core, its deeper half (depth >= half the core's deepest, mm): partial volume
        # with the lung reaches further in than one voxel where the margin is lobulated or
        # spiculated, or the voxel is finer than the blur (new-user trial 60 M2: LIDC-IDRI-0003's
        # nodule, 0.82 mm pixels, core tissue mean -64 HU, was called fat; its deeper half
        # reads -5 HU); a fat lesion is fat to its centre
        from .common import depth_mm

        depth = depth_mm(mask[box], ct.spacing_kji)
        core &= depth >= 0.5 * float(depth[core].max())
        hu = ct.array[box][core]
    elif meas.kind == "soft_tissue" or meas.subtype in ("mass", "calcified"):
        hu = ct.array[mask]
    else:
        return None
    tissue = hu[hu >= AERATED_MAX_HU]   # one read of the lesion's HU, one comparison
    tissue_hu = float(tissue.mean()) if tissue.size else meas.mean_hu
    return tissue_hu if FAT_MIN_HU <= tissue_hu < FAT_MAX_HU else None


def _edge_warning(volume_ml: float, grown_unbounded: bool, near_mm: float | None = None, sides=()) -> str:
    """The warning for a result that touches the image's edge: a lesion with a plausible outline
    cut by the field of view has a size that is a lower bound; a region that spans the image
    from face to opposite face, reached the size limit, has an irregular shape or was taken
    without an intensity edge may have flooded neighbouring tissue of the same density, so its
    size is unreliable (possibly too large, not only too small). ``sides``: the patient's sides
    (``SIDE_NAMES``) of the faces it touches (`_face_sides`), or that it comes near; ``near_mm``:
    the outline does not touch the edge but ends in tissue of its own density that close to it
    (`_near_field_end`): the same lower bound."""
    where = f" on its {', '.join(sides)} side" if sides else ""
    if near_mm is not None:
        return (f"the lesion comes within {near_mm:.1f} mm of the edge of the image{where} (the end of the "
                f"measured field of view), and its outline ends there in tissue of its own density, short of "
                f"the {SHELL_MM[1]:g} mm of tissue beyond it that its border is judged on: it may continue "
                "outside the field of view and its size is a lower bound; segment it on a larger field of view")
    if grown_unbounded:
        return (f"{EDGE_UNBOUNDED} ({volume_ml:.1f} mL) without a border of its own "
                "(grown across the image, to the size limit, into an irregular shape or without an "
                "intensity edge): "
                "its size is unreliable, not a lower bound (it has possibly grown into neighbouring "
                "tissue of the same density); check it, give the organ mask, or remove clicks (--remove)")
    return (f"the lesion touches the edge of the image{where}: it may continue outside the field "
            "of view and its size is a lower bound; segment it on a larger field of view")
