"""Is this image a CT in Hounsfield units? Checked before any rule-based or deep segmentation.

A CT in HU shows air near -1000 HU (outside the body, lungs, bowel gas) and soft tissue near
40 HU (fat about -100, muscle and organs 20-80, enhanced up to 200). Limits and sources:
``imagio/data/input_limits.json`` (``hu_check``). Refused, with the reason and what to do:

- a DICOM Modality other than CT (MR, PT, ...);
- no air band or no soft-tissue band (an MR, a normalised or rescaled image);
- HU stored with an offset of +1024 and no rescale (air near 24, soft tissue near 1064, bone
  above 1324), a common export error: named as such, with the fix;
- values far above any CT (> 40000).

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
MAX_BONE_OF_BODY_OFFSET = float(_H["max_bone_of_body_for_offset"])  # shifted: fat of a T1 MR as bone
MAX_LABEL_VALUES = 255  # a label map holds fewer distinct values (TotalSegmentator: 117 classes); a CT
# of a few hundred mm in HU holds thousands (air -1000 to bone above 1000, 1 HU steps)
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


def hu_problem(vol) -> str | None:
    """Why ``vol`` is not a CT in HU (one sentence with what to do), or None when it is."""
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
    if air >= MIN_AIR and soft >= MIN_SOFT and not offset and body_soft >= MIN_SOFT_OF_BODY:
        return None
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
                "look like a CT in HU (an MR, or values shifted or rescaled); give a CT in HU (air -1000, water 0)")
    return (f"the image has almost no soft tissue ({soft * 100:.2f}% of voxels within {SOFT_BAND[0]:g}.."
            f"{SOFT_BAND[1]:g} HU, a CT has at least {MIN_SOFT * 100:g}%): it does not look like a CT in HU")


def check_hu(vol, task: str = "segmentation") -> None:
    """Raise InputError (one line) when ``vol`` is not a CT in HU; ``task`` names what needs it."""
    why = hu_problem(vol)
    if why:
        raise InputError(f"{vol.name + ': ' if vol.name else ''}{why} (needed for {task})")
