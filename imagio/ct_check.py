"""Is this image a CT in Hounsfield units? Checked before any rule-based or deep segmentation.

A CT in HU shows air near -1000 HU (outside the body, lungs, bowel gas) and soft tissue near
40 HU (fat about -100, muscle and organs 20-80, enhanced up to 200). Limits and sources:
``imagio/data/input_limits.json`` (``hu_check``). Refused, with the reason and what to do:

- a DICOM Modality other than CT (MR, PT, ...);
- no air band or no soft-tissue band (an MR, a normalised or rescaled image);
- HU stored with an offset of +1024 and no rescale (air near 24, soft tissue near 1064, bone
  above 1324), a common export error: named as such, with the fix;
- values far above any CT (> 40000);
- a whole cross-section (room air along at least half of the in-plane border) whose non-air
  voxels are mostly outside soft tissue (`body_composition`; a crop inside the body, e.g. a cube
  in a lung of a CT angiogram, is not held to the whole body's composition);
- a T1 MR shifted or rescaled into the HU range, told by its tissue order (`t1_order_problem`:
  muscle reading as lung, the brightest tissue lining the skin, and nothing as bone or the layer
  under the skin reading above fat over tissue reading as lung, trial 103 F6.1), or read with a
  gain or a rescale whose top lies above soft tissue, told by the layer under the skin reading
  denser than any soft tissue (`subcutaneous_problem`: its fat above 200 HU, where a CT shows
  subcutaneous fat; trials 99 F3, 101 F2), on any field that shows the skin and the air beside it
  (air outside the body's outline, `outside_body`: not a lung, airway or bowel gas cut by a
  crop's face); or mapped into the HU range by a non-linear increasing curve, told by its bone
  (`dark_shell_problem`: bright marrow inside thin rims of the darkest tissue, read by order only).
  Still accepted: a crop of one inside the body (no room air in view), and T1 MRs mapped
  non-linearly whose field holds no bone, or whose curve crushes muscle beside air (129 of 1000
  maps of the sarcoma T1 MRs, 275 before `dark_shell_problem`). A refused crop
  narrower than ``judge_min_mm`` is told it may be too small to judge (`too_small_to_judge`).

The image is judged on its axial slices (`axial_view`): the same answer in every storage order.

Values below -1500 HU (padding outside the scan circle) are not a reason to refuse: the
reader turns them into air, and the segmentation thresholds treat them as air anyway. The
HU + 1024 test is made without them (``Volume.meta["padding_set_to_air"]``): padding made air would
otherwise supply the air band of an image stored as HU + 1024 (trial 7: such a CT with -3024 HU
padding was segmented into 19.7 L of bone).

A voxel smaller than ``min_voxel_mm`` (0.05 mm) is not a clinical CT's: spacing written in
metres (0.003 for 3 mm) is refused as such. What is not air spanning more than
``max_patient_width_mm`` (1000 mm) along two of its three principal axes does not fit in any CT
gantry (bores of 80-90 cm): voxel sizes written too large (30 mm for 3 mm) are refused as such.
"""

from __future__ import annotations

import threading

import numpy as np

from .limits import AIR_HU, LIMITS
from .errors import InputError

_H = LIMITS["hu_check"]
AIR_BAND = tuple(_H["air_hu"])
SOFT_BAND = tuple(_H["soft_tissue_hu"])
MIN_AIR = float(_H["min_air_fraction"])
MIN_SOFT = float(_H["min_soft_tissue_fraction"])
HU_OFFSET = 1024  # the usual RescaleIntercept of CT (stored value 0 = -1024 HU)
BONE_HU, MIN_BONE = 300.0, 0.001  # cortical/trabecular bone > 300 HU; >= 0.1 % of a trunk CT
MAX_HU = 40000  # above any CT, even extended-scale metal reconstructions
MIN_VOXEL_MM = float(_H["min_voxel_mm"])
FAT_BAND, MIN_FAT = tuple(_H["fat_hu"]), float(_H["min_fat_fraction"])
MAX_WIDTH_MM = float(_H["max_patient_width_mm"])
MAX_VOXEL_MM = float(_H["max_voxel_mm"])
MIN_SOFT_OF_BODY = float(_H["min_soft_tissue_of_body_fraction"])  # of the voxels above NOT_AIR_HU
MIN_BORDER_AIR = float(_H["min_border_air_for_body_composition"])  # whole cross-sections in view
CORTEX_HU = float(_H["cortical_bone_hu"])
FAT_HU = tuple(_H["adipose_tissue_hu"])   # subcutaneous fat on CT (Mitsiopoulos 1998)
LEAN_HU = tuple(_H["lean_tissue_hu"])     # skin, muscle on CT (Mitsiopoulos 1998)
MIN_CORTEX_ML = float(_H["min_cortical_bone_ml"])
AERATED_MAX_HU = float(_H["aerated_max_hu"])
MIN_AERATED = float(_H["min_aerated_fraction"])
ROOM_AIR_WIDTH_MM = float(_H["room_air_min_width_mm"])
BRIGHTEST = float(_H["brightest_fraction"])
SUPERFICIAL_MM = float(_H["superficial_depth_mm"])
BENEATH_MM = float(_H["beneath_depth_mm"])
MAX_AERATED_BENEATH = float(_H["max_aerated_beneath_fraction"])
MIN_SUPERFICIAL = float(_H["min_superficial_brightest_fraction"])
MIN_ENRICHMENT = float(_H["min_superficial_enrichment"])
SKIN_MM = float(_H["skin_mm"])
MIN_SUBCUT_ML = float(_H["min_subcutaneous_ml"])
JUDGE_MIN_MM = float(_H["judge_min_mm"])
MAX_BONE_OF_BODY_OFFSET = float(_H["max_bone_of_body_for_offset"])  # shifted: fat of a T1 MR as bone
_S = _H["dark_shell"]
SHELL_DARK_Q = float(_S["darkest_percent"])       # a cortex on T1: among the darkest of the body's outline
SHELL_MAX_HALF_MM = float(_S["max_half_thickness_mm"])
SHELL_MIN_RANK = float(_S["min_enclosed_rank"])
SHELL_MIN_HOLE_CM2 = float(_S["min_hole_cm2"])
SHELL_MIN_CM2 = float(_S["min_total_cm2"])
MAX_LABEL_VALUES = 255  # a label map holds fewer distinct values (TotalSegmentator: 117 classes); a CT
# of a few hundred mm in HU holds thousands (air -1000 to bone above 1000, 1 HU steps)
_UNREAD = object()  # a layer (`subcutaneous_layer`) not read yet
NOT_AIR_HU = -500.0  # between air (-1000) and lung (-850..-600 aerated) and everything denser


def not_air_extent_mm(vol, n: int = 2_000_000) -> np.ndarray | None:
    """Extents in mm, largest first, of the voxels above -500 HU (patient, couch) along their
    own principal axes; None when there are none.

    ``vol``: a `Volume` (array k, j, i; ``ijk_to_ras`` 4 x 4). The principal axes make the result
    independent of the grid's and of the patient's orientation (oblique, flipped, a patient not
    along S): a long patient gives one long extent, not two. Read on a strided copy of at most
    about ``n`` voxels: exact to one stride of voxels, far below the 1000 mm limit it is
    compared with.
    """
    a = vol.array
    s = max(1, int(np.ceil((a.size / n) ** (1 / 3))))
    k, j, i = np.nonzero(a[::s, ::s, ::s] > NOT_AIR_HU)
    if k.size < 2:
        return None
    ras = vol.kji_to_world(np.stack([k, j, i], axis=1).astype(float) * s)
    ras -= ras.mean(axis=0)
    axes = np.linalg.eigh(ras.T @ ras)[1]      # columns: principal directions
    proj = ras @ axes
    return np.sort(proj.max(axis=0) - proj.min(axis=0))[::-1]


def _sample(a: np.ndarray, n: int = 2_000_000) -> np.ndarray:
    flat = a.reshape(-1)
    step = max(1, flat.size // n)
    return flat[::step].astype(np.float32, copy=False)


def body_composition(v: np.ndarray, offset: float = 0.0) -> tuple[float, float]:
    """(soft, bone): the fractions of the values ``v`` above ``NOT_AIR_HU + offset`` (the body,
    couch; not air or aerated lung) that lie within the soft-tissue band ``soft_tissue_hu``
    (fat, muscle, organs, blood) and above ``BONE_HU``, reading ``v`` as HU + ``offset``; (0, 0)
    when none is above. A CT in HU shows mostly soft tissue there (``input_limits.json``
    ``min_soft_tissue_of_body_fraction``, ICRP 89); a T1 MR read as HU, shifted or not, does not."""
    body = v[v > NOT_AIR_HU + offset]
    if body.size == 0:
        return 0.0, 0.0
    soft = np.mean((body >= SOFT_BAND[0] + offset) & (body <= SOFT_BAND[1] + offset))
    return float(soft), float(np.mean(body >= BONE_HU + offset))


def border_air_fraction(a: np.ndarray) -> float:
    """The fraction of the in-plane border voxels (the first and last row and column of every
    slice of ``a``, k, j, i) within the air band: near 1 when the image shows whole cross-sections
    of the patient in room air, near 0 for a crop inside the body (a cube in a lung, on the heart)."""
    if a.ndim != 3 or min(a.shape[1:]) < 2:
        return 0.0
    f = np.concatenate([a[:, 0].ravel(), a[:, -1].ravel(), a[:, 1:-1, 0].ravel(), a[:, 1:-1, -1].ravel()])
    return float(np.mean((f >= AIR_BAND[0]) & (f <= AIR_BAND[1])))


def body_mask(b: np.ndarray, spacing_kji, threshold: float = NOT_AIR_HU) -> np.ndarray:
    """The patient's body on ``b`` (k, j, i, HU; ``spacing_kji`` in mm): bool, the 6-connected
    regions above -500 HU (tissue; not air, aerated lung, foam pads or mattress) that hold tissue
    deeper than ``superficial_depth_mm`` (15 mm) from anything below -500 HU: tissue beneath the
    subcutaneous layer, as a trunk, neck or limb has (each thicker than 30 mm), and a couch shell,
    a thin pad or a cable has not (LIDC-0001's 40 mm box at the back: the couch's shell, 186 HU,
    larger there than the piece of the body). Depth by `edt` (the image's faces are not a surface);
    regions by `cc3d`."""
    import cc3d
    import edt

    tissue = b > threshold   # NOT_AIR_HU; `dark_shell` gives the image's own tissue/air cut
    if not tissue.any():
        return tissue
    deep = edt.edt(np.ascontiguousarray(tissue), anisotropy=tuple(float(x) for x in spacing_kji)) > SUPERFICIAL_MM
    if not deep.any():
        return deep
    lab = cc3d.connected_components(tissue, connectivity=6)
    ids = np.unique(lab[deep])
    return np.isin(lab, ids[ids > 0])


def outside_body(body: np.ndarray) -> np.ndarray:
    """Outside the body's outline on each axial slice of ``body`` (bool, k, j, i: `body_mask`):
    True where a voxel lies outside the in-plane convex hull of the slice's body voxels; every
    voxel of a slice without any.

    A cross-section of the trunk, neck or a limb is convex or nearly so, and the air around the
    patient lies outside its hull, while the lungs, airways and bowel gas lie inside it, enclosed
    by the chest or abdominal wall. In a crop the enclosure may be cut by the crop's faces, yet a
    cut airway or gas-filled loop still lies between tissue of the same slice (the mediastinum
    on both sides of a main bronchus): inside the hull of what the crop shows. Air in a concavity
    of the outline (between the legs, in the axilla) lies inside the hull too and is not counted:
    the safe side for `subcutaneous_problem`, which reads the layer only under the air outside.
    Hull of each slice: `segmentation.common.convex_hull_2d` (scikit-image)."""
    from .segmentation.common import convex_hull_2d

    out = np.ones(body.shape, bool)
    for k in np.flatnonzero(body.any(axis=(1, 2))):
        out[k] = ~convex_hull_2d(body[k])
    return out


def room_air_mask(vol, s: int, body: np.ndarray | None = None, air: np.ndarray | None = None) -> np.ndarray:
    """Room air on ``vol.array[::s, ::s, ::s]`` (bool, k, j, i): air-band voxels that survive an
    in-plane opening with a disc ``room_air_min_width_mm`` wide (a wide air space, not the noise
    of aerated lung nor a cut segmental bronchus) and are connected to the in-plane border (the
    first and last row and column of every slice). With ``body`` (`body_mask` of that strided
    array), only air outside the body's outline (`outside_body`: not a lung, airway or bowel gas,
    even cut by a crop's face). With ``air`` (bool, that strided shape), that instead of the air band
    (`dark_shell`: what is darker than the body by the image's own histogram). Empty for a crop
    inside the patient."""
    from scipy import ndimage

    b = vol.array[::s, ::s, ::s]
    air = (b >= AIR_BAND[0]) & (b <= AIR_BAND[1]) if air is None else air
    if b.ndim != 3 or min(b.shape[1:]) < 3 or not air.any():
        return np.zeros(b.shape, bool)
    if body is not None:
        air &= outside_body(body)
    sp = np.abs(np.asarray(vol.spacing_kji, float)[1:]) * s
    half = 0.5 * ROOM_AIR_WIDTH_MM
    r = np.maximum(np.round(half / sp).astype(int), 1)
    jj, ii = np.mgrid[-r[0]:r[0] + 1, -r[1]:r[1] + 1]
    disc = ((jj * sp[0]) ** 2 + (ii * sp[1]) ** 2 <= half ** 2 + 1e-9)[None]
    air = ndimage.binary_opening(air, disc)
    edge = np.zeros(air.shape, bool)
    edge[:, [0, -1]] = True
    edge[:, :, [0, -1]] = True
    lab, _ = ndimage.label(air)
    ids = np.unique(lab[edge & air])
    return np.isin(lab, ids[ids > 0])


def skin_depth(vol, n: int = 2_000_000, outline: bool = False):
    """(s, b, depth) for `t1_order_problem`, or with ``outline`` (s, b, depth, body) for
    `subcutaneous_problem`; None when no room air is in view (`room_air_mask`): ``s`` the stride,
    ``b`` = ``vol.array[::s, ::s, ::s]`` (k, j, i, at most about ``n`` voxels), ``depth`` the
    distance in mm of each voxel of ``b`` from the nearest room air (0 in room air; anisotropic
    spacing honoured), with ``outline`` room air only outside the body's outline and ``body``
    its `body_mask`."""
    from scipy import ndimage

    a = vol.array
    s = max(1, int(np.ceil((a.size / n) ** (1 / 3))))
    sp = np.abs(np.asarray(vol.spacing_kji, float)) * s
    body = body_mask(a[::s, ::s, ::s], sp) if outline else None
    room = room_air_mask(vol, s, body)
    if not room.any():
        return None
    depth = ndimage.distance_transform_edt(~room, sampling=sp)
    return (s, a[::s, ::s, ::s], depth) + ((body,) if outline else ())


def subcutaneous_layer(vol) -> tuple[float, float, float] | None:
    """(median HU, mL, aerated beneath) of the layer under the skin of ``vol`` (a `Volume`, array
    k, j, i; spacing in mm), or None when no room air is in view or the layer holds less than
    ``min_subcutaneous_ml``. ``aerated beneath``: the fraction of what is not air (above -900 HU)
    ``superficial_depth_mm`` to ``beneath_depth_mm`` (15-30 mm) beneath that room air, the tissue
    directly under the layer, that reads -900..``aerated_max_hu`` (-400 HU), as aerated lung; 0
    when there is none. The layer: the voxels ``skin_mm`` (3 mm) to ``superficial_depth_mm`` (15 mm)
    beneath room air outside the body's outline (`skin_depth` with ``outline``: not a lung, airway
    or bowel gas), on the patient's body only (`body_mask`: above -500 HU, tissue thicker than the
    layer, not the couch's shell or a pad). On a CT in HU it is subcutaneous fat
    (``adipose_tissue_hu``), with skin, fascia and, in lean patients, muscle (``lean_tissue_hu``).
    Read on `skin_depth`'s strided copy (at most about 2 million voxels)."""
    if not hasattr(vol, "spacing_kji"):
        return None
    skin = skin_depth(vol, outline=True)
    if skin is None:
        return None
    s, b, depth, body = skin
    layer = (depth > SKIN_MM) & (depth <= SUPERFICIAL_MM) & body
    ml = float(np.count_nonzero(layer)) * float(np.prod(np.abs(vol.spacing))) * s ** 3 / 1000.0
    if ml < MIN_SUBCUT_ML:
        return None
    under = b[(depth > SUPERFICIAL_MM) & (depth <= BENEATH_MM) & (b > AIR_BAND[1])]
    return float(np.median(b[layer])), ml, float(np.mean(under <= AERATED_MAX_HU)) if under.size else 0.0


def subcutaneous_problem(vol, layer=_UNREAD) -> str | None:
    """Why ``vol`` reads as a T1 MR whose fat reads above soft tissue (one clause), or None.
    ``vol``: a `Volume` (array k, j, i; spacing in mm).

    The layer under the skin (`subcutaneous_layer`: ``skin_mm``, 3 mm, to ``superficial_depth_mm``,
    15 mm, beneath room air outside the body's outline, on the patient's body; or ``layer`` when
    already read) is subcutaneous fat on a CT (``adipose_tissue_hu``, -190..-30 HU), with skin,
    fascia and, in lean
    patients, muscle (``lean_tissue_hu``, -29..+150 HU): within the soft-tissue band -200..200 HU;
    bone reaches it only along thin lines (tibia, sternum, spinous processes). On a T1 MR it is
    the brightest tissue: after a gain above 1 or a rescale whose top lies above soft tissue
    (-1000..700/800/900, x3 - 1024, a piecewise map of the median tissue to 40 HU) it reads as
    denser than any soft tissue, even contrast-enhanced (new-user trials 99 F3, 101 F2). Refused
    when the median of what is not air there (above -500 HU: not an MR's noise in air, nor the
    skin's partial volume with air) lies above the soft-tissue band (200 HU: more than half of the
    layer denser than any soft tissue) and the layer holds at least ``min_subcutaneous_ml``. It is
    the body's composition where it is known on any field that shows the skin and the air beside
    it, however small or cut by the field's edge (`body_composition` needs whole cross-sections).
    None without room air in view (a crop inside the body). Not told from a CT: a head CT whose
    skull filled most of the layer (refused: the safe side). Sources: ``input_limits.json``
    ``hu_check`` (``subcutaneous_reason``, ``subcutaneous_source``)."""
    layer = subcutaneous_layer(vol) if layer is _UNREAD else layer
    if layer is None:
        return None
    med, ml = layer[:2]
    if med <= SOFT_BAND[1]:
        return None
    return (f"the layer {SKIN_MM:g}-{SUPERFICIAL_MM:g} mm under the skin reads {med:.0f} HU (median of {ml:.0f} mL), "
            f"denser than any soft tissue (above {SOFT_BAND[1]:g} HU), where a CT shows subcutaneous fat "
            f"({FAT_HU[0]:g}..{FAT_HU[1]:g} HU), skin and muscle ({LEAN_HU[0]:g}..{LEAN_HU[1]:g} HU): a T1 MR's fat "
            "(its brightest tissue, lining the skin) rescaled above soft tissue, as if bone")


def t1_order_problem(vol, v: np.ndarray, n: int = 2_000_000, skin=None, layer=_UNREAD) -> str | None:
    """Why ``vol`` reads as a T1-weighted MR shifted or rescaled into the HU range (one clause), or
    None. ``vol``: a `Volume` (array k, j, i; spacing in mm); ``v``: a sample of its values.

    On a CT, fat (-150..-50 HU) is the least dense tissue that holds no air: tissue between -900
    and -400 HU in bulk is aerated lung (or gas); the densest tissue, bone (cortical bone above
    ``cortical_bone_hu``, 700 HU) or contrast-filled blood, lies under the skin, the subcutaneous
    fat and muscle. On a T1 MR the order is inverted: fat gives the brightest signal and most of it
    lies just under the skin, muscle and organs a third to a half of it, cortical bone none.
    Shifted by -1000/-1024 or rescaled into -1000..600, a T1 MR shows its muscle as lung, its fat as
    soft tissue lining the skin, its bone as air (new-user trial 96 F1: the sarcoma T1 MRs so
    shifted were segmented into 3.2 L of lung in a thigh). Refused when all hold: at least
    ``min_aerated_fraction`` of what is not air (above -900 HU) reads -900..-400 HU; either less than
    ``min_cortical_bone_ml`` of the whole image at or above ``cortical_bone_hu`` (nothing reads as
    bone), or the layer under the skin (`subcutaneous_layer`, or ``layer`` when already read)
    reading above subcutaneous fat (its median above ``adipose_tissue_hu``'s top, -30 HU) with more
    than ``max_aerated_beneath_fraction`` (half) of the tissue directly beneath it (15-30 mm under
    the skin) reading as aerated lung (on a CT the layer is fat, the least dense soft tissue, or in
    lean patients skin and muscle, and beneath it lie the muscle and bone of the trunk wall or limb;
    a T1 MR rescaled so that its fat stays within soft tissue shows that fat there as lean tissue,
    and its brightest fat or inflow above 700 HU as if bone: new-user trial 103 F6.1, 0.11-1.96 mL,
    segmented into 2.5 L of lung and 35 mL of ribs in a thigh); room air in view
    (`room_air_mask`); and at least ``min_superficial_brightest_fraction`` of the brightest
    ``brightest_fraction`` of what is not air within ``superficial_depth_mm`` of room air, and
    ``min_superficial_enrichment`` times as large a share as of all that is not air there.
    Read on a strided copy of at most about ``n`` voxels; the distances (`skin_depth`, or ``skin``
    when already computed) are computed only for an image that passes the first tests (aerated,
    and without bone or with a layer under the skin that is not fat).
    Not told from a CT here: a T1 MR whose fat, shifted, reads above 200 HU (`subcutaneous_problem`
    and, for a whole cross-section, `body_composition` refuse it), a T1 MR of a region without
    muscle in bulk, many T1 MRs mapped non-linearly (inputs100, 1000 monotone maps of the five
    sarcoma T1 MRs into -1000..100-2000: 275 accepted, power 0.2-0.6 126/150, log 71/150, piecewise
    32/150, exp 11/150, sigmoid 7/90, power 0.7-5 28/210, clipped-linear 0/100; the rank of the
    layer under the skin among the body's tissue did not separate them from fat-rich real CT
    crops; `dark_shell_problem` tells 146 of them by their bone; nor does the layer's order against
    the tissue next beneath it, fat over muscle, inputs112: the probability that a voxel 3-10 mm
    under the skin outranks one 10-20 mm under it is 0.14-0.62 on the 129 maps still accepted, 0.53
    on STS_002's own CT, up to 0.78 on 3837 real CT images read of 4311; STS_002's fat runs deeper
    than 20 mm, and STS_008's muscle falls with the air in the histogram's split), and
    any crop inside the body (no room air in view), since a CT's crop of a lung needs no rib.
    Sources: ``input_limits.json`` ``hu_check`` (``t1_order_reason``, ``t1_order_fat_layer_reason``,
    ``t1_order_source``, ``tissue_hu_source``)."""
    if not hasattr(vol, "spacing_kji"):
        return None
    nonair = v[v > AIR_BAND[1]]
    if nonair.size == 0:
        return None
    aer = float(np.mean(nonair <= AERATED_MAX_HU))
    if aer < MIN_AERATED:
        return None
    bone_ml = float(np.count_nonzero(vol.array >= CORTEX_HU)) * float(np.prod(np.abs(vol.spacing))) / 1000.0
    if bone_ml >= MIN_CORTEX_ML:
        # something reads as bone (on a T1 MR so rescaled: its brightest fat or inflow): the layer
        # under the skin tells the order, fat on a CT (the least dense soft tissue), lean on the MR
        layer = subcutaneous_layer(vol) if layer is _UNREAD else layer
        if layer is None or layer[0] <= FAT_HU[1] or layer[2] <= MAX_AERATED_BENEATH:
            return None
    skin = skin_depth(vol, n) if skin is None else skin
    if skin is None:
        return None
    s, b, depth = skin
    body = b > AIR_BAND[1]
    if not body.any():
        return None
    top = body & (b >= np.percentile(b[body], 100.0 * (1.0 - BRIGHTEST)))
    shallow = float(np.mean(depth[top] <= SUPERFICIAL_MM))
    # concentrated under the skin, not spread as the tissue is (noise in a uniform body: ratio 1)
    if shallow < MIN_SUPERFICIAL or shallow < MIN_ENRICHMENT * float(np.mean(depth[body] <= SUPERFICIAL_MM)):
        return None
    order = (f"{aer * 100:.0f}% of what is not air reads {AIR_BAND[1]:g}..{AERATED_MAX_HU:g} HU as aerated lung")
    tail = (f"{shallow * 100:.0f}% of its brightest {BRIGHTEST * 100:g}% lies within {SUPERFICIAL_MM:g} mm of the "
            "skin: a T1 MR's tissue order (fat brightest, under the skin; muscle dark; bone without signal), not a "
            "CT's (fat darker than muscle, bone the densest)")
    if bone_ml < MIN_CORTEX_ML:
        return f"{order}, yet nothing reads as bone ({bone_ml:.2f} mL at or above {CORTEX_HU:g} HU) and {tail}"
    return (f"{order}, while the layer {SKIN_MM:g}-{SUPERFICIAL_MM:g} mm under the skin reads {layer[0]:.0f} HU "
            f"(median of {layer[1]:.0f} mL), above subcutaneous fat ({FAT_HU[0]:g}..{FAT_HU[1]:g} HU), with "
            f"{layer[2] * 100:.0f}% of the tissue {SUPERFICIAL_MM:g}-{BENEATH_MM:g} mm under the skin reading as lung, "
            f"and {tail}")


def dark_shell(vol, n: int = 2_000_000) -> tuple[float, int] | None:
    """(cm², slices): the area of bright tissue enclosed by thin rims of the darkest tissue on the
    axial slices of ``vol`` (a `Volume`, array k, j, i; spacing in mm), summed over its slices, and
    the number of slices that show some; None when it cannot be read (no body, no air beside it,
    a single value).

    A bone on a CT is its cortex, the densest tissue of the body, round a less dense marrow; on a
    T1-weighted MR the cortex gives no signal (as air does) round fatty marrow, among the
    brightest tissue. Any monotone map of the MR into HU keeps that order: the marrow stays
    enclosed by a thin rim of the image's darkest voxels. Read by order only: the body is what lies
    above the lowest of a three-class Otsu split of the image's own histogram (`body_mask`'s rule
    of tissue thicker than ``superficial_depth_mm``), room air what lies below it outside the
    body's outline (`room_air_mask`); a rim is a 2-D component of the darkest ``darkest_percent``
    of what lies inside the outline (not room air) at most ``max_half_thickness_mm`` from its own
    middle, around a hole (enclosed in-plane) of at least ``min_hole_cm2`` whose median lies at or
    above the ``min_enclosed_rank`` quantile of the body. No HU value is read: rims and holes are
    ranks, the same after any increasing map of the values; only the body's split follows the
    histogram's shape, and a curve that crushes muscle beside air (a sigmoid, an exp) leaves the
    muscle with the air, so that no body is read (None: not told, never refused). Read on a
    strided copy of at most about ``n`` voxels. Sources: ``input_limits.json`` ``hu_check`` ``dark_shell``."""
    import edt
    from scipy import ndimage
    from skimage.filters import threshold_multiotsu

    if not hasattr(vol, "spacing_kji") or np.ndim(vol.array) != 3:
        return None
    a = vol.array
    s = max(1, int(np.ceil((a.size / n) ** (1 / 3))))
    b = np.asarray(a[::s, ::s, ::s], np.float32)
    if min(b.shape[1:]) < 3:
        return None
    sp = np.abs(np.asarray(vol.spacing_kji, float)) * s
    sample = b.ravel()[:: max(1, b.size // 200_000)]
    if np.unique(sample).size < 3:   # a constant or two-valued crop: no three classes
        return None
    try:
        t = float(threshold_multiotsu(sample, classes=3)[0])
    except ValueError:   # too few distinct values once binned
        return None
    body = body_mask(b, sp, threshold=t)   # the regions holding tissue deeper than the superficial layer
    if not body.any():
        return None
    room = room_air_mask(vol, s, body, air=~(b > t))
    if not room.any():
        return None
    inside = np.zeros(b.shape, bool)
    for k in np.flatnonzero(body.any(axis=(1, 2))):
        inside[k] = ndimage.binary_fill_holes(body[k]) & ~room[k]
    within = b[inside]
    if within.size < 100 or within.min() == within.max():
        return None
    dark = float(np.percentile(within, SHELL_DARK_Q))
    bright = float(np.percentile(b[body], 100.0 * SHELL_MIN_RANK))
    px_cm2 = float(sp[1] * sp[2]) / 100.0
    total, slices = 0.0, 0
    for k in np.flatnonzero(inside.any(axis=(1, 2))):
        rim = (b[k] <= dark) & inside[k]
        holes = ndimage.binary_fill_holes(rim) & ~rim
        if not holes.any():
            continue
        rims, _ = ndimage.label(rim)
        hl, _ = ndimage.label(holes)
        half, area = {}, 0.0
        for h, box in enumerate(ndimage.find_objects(hl), 1):
            box = tuple(slice(max(o.start - 1, 0), o.stop + 1) for o in box)
            hole = hl[box] == h
            if hole.sum() * px_cm2 < SHELL_MIN_HOLE_CM2:
                continue
            ring = ndimage.binary_dilation(hole) & ~hole
            which = np.unique(rims[box][ring])
            which = which[which > 0]
            if which.size != 1:   # enclosed by one rim, not by the crop's edge or two tissues
                continue
            r = int(which[0])
            if r not in half:
                rim_r = np.ascontiguousarray(rims == r)
                half[r] = float(edt.edt(rim_r, anisotropy=tuple(float(x) for x in sp[1:])).max())
            if half[r] <= SHELL_MAX_HALF_MM and np.median(b[k][box][hole]) >= bright:
                area += float(hole.sum()) * px_cm2
        total += area
        slices += area > 0
    return total, slices


def dark_shell_problem(vol, n: int = 2_000_000) -> str | None:
    """Why ``vol`` reads as a T1 MR by its bone (one clause), or None: at least ``min_total_cm2``
    of bright tissue enclosed by thin rims of the darkest (`dark_shell`), a T1 MR's fatty marrow
    inside a cortex without signal, mapped into HU by any increasing curve (inputs104: the sarcoma
    T1 MRs' non-linear maps that the tissue-order tests accept). Not told: a T1 MR without bone in
    view (STS_002, STS_008). Sources: ``input_limits.json`` ``hu_check`` ``dark_shell``."""
    shell = dark_shell(vol, n)
    if shell is None or shell[0] < SHELL_MIN_CM2:
        return None
    return (f"{shell[0]:.0f} cm2 of bright tissue (above the {SHELL_MIN_RANK * 100:g}th percentile of the body) lies "
            f"enclosed by thin rims of its darkest {SHELL_DARK_Q:g}% on {shell[1]} axial slices: a T1 MR's bone (fatty "
            "marrow inside a cortex without signal), not a CT's (the cortex the densest tissue, round a less dense "
            "marrow)")


def too_small_to_judge(vol) -> str:
    """'' or a clause for a refusal: "; if it is a crop of a CT, it is too small to judge ..." when
    ``vol`` (a `Volume`, spacing in mm) is narrower than ``judge_min_mm`` (100 mm) along a side of
    its grid. Such a crop of the body surface may hold only skin, fat, pads and couch, not the
    muscle and bone the tissue-order and body-composition tests read (new-user trial 99 F3: real
    CTs' 40-50 mm surface boxes refused as T1 MRs); it stays refused (the safe side), and is told
    what to give.
    Source: ``input_limits.json`` ``hu_check`` ``judge_min_reason``."""
    if not hasattr(vol, "spacing_kji"):
        return ""
    side = float(np.min(np.asarray(vol.shape, float) * np.abs(np.asarray(vol.spacing_kji, float))))
    if side >= JUDGE_MIN_MM:
        return ""
    return (f"; if it is a crop of a CT, it is too small to judge ({side:.0f} mm across): give at least "
            f"{JUDGE_MIN_MM:g} mm along each side, from the air beside the patient to the bone")


def _bands(v: np.ndarray, offset: float = 0.0) -> tuple[float, float]:
    air = np.mean((v >= AIR_BAND[0] + offset) & (v <= AIR_BAND[1] + offset))
    soft = np.mean((v >= SOFT_BAND[0] + offset) & (v <= SOFT_BAND[1] + offset))
    return float(air), float(soft)


def grid_problem(vol) -> str | None:
    """Why ``vol``'s voxel size cannot be a CT's (one sentence with what to do), or None: voxels
    under ``min_voxel_mm`` (spacing in metres) or above ``max_voxel_mm`` along any axis, or what
    is not air spanning more than ``max_patient_width_mm`` along two principal axes (spacing
    x10). The image reader
    applies it to every image it reads as a CT (`io.read_image`), so every command refuses such
    a scan, not only those that need HU (trial 11: plan ran on it with a 1000 mm needle)."""
    if not hasattr(vol, "spacing"):
        return None
    voxel = float(np.min(np.abs(vol.spacing)))
    if voxel < MIN_VOXEL_MM:
        return (f"its voxels are {voxel:g} mm: no clinical CT is finer than {MIN_VOXEL_MM:g} mm (spacing written in "
                "metres instead of millimetres?); convert it again with the spacing in mm")
    big = float(np.max(np.abs(vol.spacing)))
    if big > MAX_VOXEL_MM:
        return (f"its voxels are {' x '.join(f'{x:g}' for x in vol.spacing)} mm: no CT is reconstructed thicker than "
                f"about 10 mm ({MAX_VOXEL_MM:g} mm allowed; spacing written too large, e.g. x10?); convert it again "
                "with the spacing in mm")
    if hasattr(vol, "kji_to_world") and max(vol.shape) * big > MAX_WIDTH_MM:
        ext = not_air_extent_mm(vol)
        if ext is not None and ext[1] > MAX_WIDTH_MM:
            return (f"what is not air spans {ext[0]:.0f} x {ext[1]:.0f} x {ext[2]:.0f} mm with voxels of "
                    f"{' x '.join(f'{x:g}' for x in vol.spacing)} mm: no CT gantry holds more than about "
                    f"{MAX_WIDTH_MM:g} mm across (spacing written too large, e.g. x10?); convert it "
                    "again with the spacing in mm")
    return None


def axial_view(vol):
    """``vol`` with its array axes ordered (k, j, i) so that k is the grid axis nearest the
    patient's S direction (a view: no copy; the affine permuted with it, world positions kept), or
    ``vol`` itself when it already is, or has no affine. The room-air and border tests work on the
    in-plane rows and columns of each slice: read on axial slices whatever the storage order (a
    sagittal or coronal stack, a permuted array), they give the same answer (trial 99 F3: the same
    T1 MR refused in one storage order and accepted in another)."""
    m = getattr(vol, "ijk_to_ras", None)
    if m is None or getattr(vol, "array", None) is None or np.ndim(vol.array) != 3:
        return vol
    cols = np.asarray(m, float)[:3, :3]                    # columns: i, j, k
    kji = cols[:, ::-1] / np.linalg.norm(cols[:, ::-1], axis=0)
    sup = int(np.argmax(np.abs(kji[2])))
    if sup == 0:
        return vol
    perm = (sup, *[x for x in range(3) if x != sup])
    out = np.array(m, float)
    out[:3, :3] = cols[:, [2 - perm[2 - c] for c in range(3)]]
    return type(vol)(vol.array.transpose(perm), out, vol.name, dict(vol.labels), meta=vol.meta,
                     scanner_coordinates=vol.scanner_coordinates)


def hu_problem(vol) -> str | None:
    """Why ``vol`` is not a CT in HU (one sentence with what to do), or None when it is.
    ``vol``: a `Volume` (array k, j, i, values read as HU; ``ijk_to_ras`` 4 x 4), judged on its
    axial slices (`axial_view`), so that the answer does not depend on the storage order.

    The answer is kept for the last ``VERDICTS_KEPT`` images, keyed by what it reads (`_verdict_key`:
    the values by their SHA-256, `imagio.caching.content_token`, the grid, DICOM Modality and the
    reader's padding flag): every rule of the rule-based segmentation and each one-click lesion
    (with its check clicks) checks the same CT again, 16 times in `imagio demo`, 0.3-0.5 CPU-s
    each (issue 20), against about 0.03 s for the key (0.1 s for a 140 MiB CT). A new copy of
    the same values is the same image; any changed value, also one written in place, is another."""
    key = _verdict_key(vol)
    if key is not None and key in _VERDICTS:
        return _VERDICTS[key]
    why = _hu_problem(vol)
    if key is not None:
        with _VERDICTS_LOCK:
            while len(_VERDICTS) >= VERDICTS_KEPT:
                _VERDICTS.pop(next(iter(_VERDICTS)))
            _VERDICTS[key] = why
    return why


VERDICTS_KEPT = 4   # images whose `hu_problem` answer is kept (a case's CT and its crops)
_VERDICTS: dict = {}
_VERDICTS_LOCK = threading.Lock()


def _verdict_key(vol) -> tuple | None:
    """The key of `hu_problem`'s answer for ``vol`` (everything `_hu_problem` reads of it: the
    type, the values with their shape and dtype, ``ijk_to_ras``, ``meta``'s Modality and
    ``padding_set_to_air``), or None for an object without an array, an affine or a meta dict
    (judged every time)."""
    from .caching import content_token

    a, m, meta = getattr(vol, "array", None), getattr(vol, "ijk_to_ras", None), getattr(vol, "meta", None)
    if not isinstance(a, np.ndarray) or m is None or not isinstance(meta, dict):
        return None
    return (type(vol).__module__, type(vol).__qualname__, content_token(a), np.asarray(m, float).tobytes(),
            str(meta.get("Modality", "")), bool(meta.get("padding_set_to_air")))


def _hu_problem(vol) -> str | None:
    """`hu_problem` without its kept answers."""
    vol = axial_view(vol)
    a = vol.array
    modality = str(vol.meta.get("Modality", "")).strip().upper()
    if modality and modality != "CT":
        return (f"the image is DICOM Modality {modality}, not CT: IMAGIO's segmentation and planning need a CT "
                "in Hounsfield units")
    if a.dtype.kind not in "iuf":
        return f"the image holds {a.dtype} values, not numbers in HU"
    if a.size == 0:
        return "the image is empty"
    why = grid_problem(vol)
    if why:
        return why
    v = _sample(a)
    lo, hi = float(v.min()), float(v.max())
    lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
    if hi > MAX_HU:
        return (f"values up to {hi:g} are beyond any CT in HU (at most a few thousand, {MAX_HU} with extended "
                "scales); give a CT in Hounsfield units (apply the DICOM rescale slope/intercept)")
    air, soft = _bands(v)
    # HU + 1024 is judged without the padding the reader made air (it would supply the air band)
    inner = v[v != AIR_HU] if vol.meta.get("padding_set_to_air") and np.any(v != AIR_HU) else v
    air_o, soft_o = _bands(inner, HU_OFFSET)
    bone_o = float(np.mean(inner >= BONE_HU + HU_OFFSET))  # a trunk CT always shows some bone
    # every patient has subcutaneous fat (-200..-50 HU); stored as HU + 1024 that range holds
    # only the noise of air below -1074 HU
    fat = float(np.mean((inner >= FAT_BAND[0]) & (inner <= FAT_BAND[1])))
    # and no air in HU among them: a CT in HU shows air (around the patient, lungs, bowel) beside
    # its padding; an image stored as HU + 1024 has none (its air lies near +24)
    air_in = _bands(inner)[0]
    # and, shifted, what is not air is mostly soft tissue, as in any CT: a T1 MR (fat brightest,
    # air 0) fits the air and soft-tissue bands at +1024 but shows its fat as bone (trial 95 F2)
    offset = (air_in < MIN_AIR and fat < MIN_FAT and air_o >= MIN_AIR and soft_o >= MIN_SOFT
              and bone_o >= MIN_BONE)
    if offset:
        soft_b, bone_b = body_composition(inner, HU_OFFSET)
        offset = soft_b >= MIN_SOFT_OF_BODY and bone_b <= MAX_BONE_OF_BODY_OFFSET
    body_soft, body_bone = body_composition(inner)
    # the body's composition (ICRP 89) is that of whole cross-sections: a crop inside the body (a
    # cube in a lung of a CT angiogram: contrast-filled vessels, partial-volume lung, ribs) is not
    # held to it (CI on 75d5afa: the chest CTA's lung cubes, 29-46 % soft tissue, were refused)
    whole = border_air_fraction(a) >= MIN_BORDER_AIR
    if air >= MIN_AIR and soft >= MIN_SOFT and not offset and (body_soft >= MIN_SOFT_OF_BODY or not whole):
        layer = subcutaneous_layer(vol)   # read once, for both tests
        t1 = t1_order_problem(vol, inner, layer=layer)
        # fat above soft tissue under the skin: no real CT or crop of one shows it, whatever its size
        fat = None if t1 else subcutaneous_problem(vol, layer)
        # bone read by order alone: a T1 MR mapped by any increasing curve (inputs104)
        shell = None if t1 or fat else dark_shell_problem(vol)
        if t1 is None and fat is None and shell is None:
            return None
        return (f"it does not look like a CT in HU: {t1 or fat or shell} (an MR, or values shifted or rescaled); give "
                f"a CT in HU (air -1000, water 0){too_small_to_judge(vol) if t1 else ''}")
    if offset:
        lo = float(inner.min())
        # the offset as the image shows it: its air's median (air is -1000 HU by definition; trial
        # 80: an image stored as HU + 1000 was told to subtract 1024)
        band = inner[(inner >= AIR_BAND[0] + HU_OFFSET) & (inner <= AIR_BAND[1] + HU_OFFSET)]
        est = float(np.median(band)) + 1000.0 if band.size else float(HU_OFFSET)
        # the air's median is a little above -1000 HU (noise, partial volume, lung): the nearer of the
        # two intercepts converters write (-1024, -1000), the estimate itself when far from both
        seen = min((HU_OFFSET, 1000), key=lambda c: abs(est - c))
        seen = seen if abs(est - seen) <= 50 else int(round(est))
        return (f"it does not look like a CT in HU: the values ({lo:g}..{hi:g}) look like HU + {seen} stored "
                f"without the rescale (air near {seen - 1000}, soft tissue near {40 + seen}): the DICOM "
                f"RescaleIntercept -{seen} (or the NIfTI scl_inter) was lost in conversion; subtract "
                f"{seen} or convert again keeping it")
    if lo >= 0 and np.all(v == np.rint(v)):
        values = np.unique(v)
        if values.size <= MAX_LABEL_VALUES:
            # a handful of whole numbers from 0: a label map or a mask (new-user trial 95 F4: a label
            # map given to plan as the CT was refused for "no outer skin")
            return (f"it does not look like a CT in HU: it looks like a label map or a mask ({values.size} "
                    f"whole-number values {lo:g}..{hi:g}): give the CT image here (a label map goes to --labels)")
    if lo >= 0:
        return (f"the image has no negative values ({lo:g}..{hi:g}): it does not look like a CT in Hounsfield "
                "units (an MR, or a normalised/rescaled image); give a CT in HU (air -1000, water 0)")
    if air < MIN_AIR:
        return (f"the image has no air ({air * 100:.3f}% of voxels within {AIR_BAND[0]:g}..{AIR_BAND[1]:g} HU, a CT "
                f"has at least {MIN_AIR * 100:g}%): it is not a whole CT in HU (cropped inside the body, an MR or a "
                "normalised image)")
    if soft >= MIN_SOFT:
        return (f"what is not air reads mostly outside soft tissue ({body_soft * 100:.0f}% of the voxels above "
                f"{NOT_AIR_HU:g} HU within {SOFT_BAND[0]:g}..{SOFT_BAND[1]:g} HU, a CT's fat, muscle and organs make at "
                f"least {MIN_SOFT_OF_BODY * 100:g}%; {body_bone * 100:.0f}% above {BONE_HU:g} HU as if bone): it does not "
                "look like a CT in HU (an MR, or values shifted or rescaled); give a CT in HU (air -1000, water 0)"
                f"{too_small_to_judge(vol)}")
    return (f"the image has almost no soft tissue ({soft * 100:.2f}% of voxels within {SOFT_BAND[0]:g}.."
            f"{SOFT_BAND[1]:g} HU, a CT has at least {MIN_SOFT * 100:g}%): it does not look like a CT in HU")


def check_hu(vol, task: str = "segmentation") -> None:
    """Raise InputError (one line) when ``vol`` is not a CT in HU; ``task`` names what needs it."""
    why = hu_problem(vol)
    if why:
        raise InputError(f"{vol.name + ': ' if vol.name else ''}{why} (needed for {task})")
