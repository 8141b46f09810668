"""Anatomical exclusions of the weights-free detector's candidates: what is not a lung nodule,
whatever its shape, because of where it lies or what it is made of.

A pulmonary nodule is a rounded opacity in the lung (Fleischner Society glossary, Hansell DM et
al., Radiology 2008;246:697-722); Lung-RADS v2022 and the Fleischner guidelines manage nodules of
the lung parenchyma (MacMahon H et al., Radiology 2017;284:228-243). Candidate generation
(:mod:`imagio.detection.blobs`) and the ranking (:mod:`imagio.detection.ranking`) read a blob's
shape and its vessels; three findings of a different kind scored like nodules on real scans
(new-user trial 96 F2, lung1 at 0.59-0.73 beside its nodule's 0.732):

* **against the axial skeleton** (:func:`skeleton_share`): chest-wall bone
  (:func:`imagio.detection.blobs.chest_wall_bone`) whose piece in the candidate's section spans
  the thorax's midline (the vertebral body, the sternum; a rib alone does not count, see the
  function) inside the candidate's core (each bone voxel at the distance its cell reaches,
  :func:`voxel_reach`: partial volume puts a bone's surface inside the voxel beside it). A juxta-pleural
  nodule lies in the lung's concavity, its centre on the lung's side of the pleura (acute
  angles; Felson B, Chest Roentgenology, Saunders 1973; Webb WR et al., Fundamentals of Body CT,
  4th ed., 2015): between its centre and the bone lie its own tissue, the pleura and the
  endothoracic fascia, so no bone lies within half its radius of its centre. A paravertebral
  structure against the vertebral body (the azygo-oesophageal recess, an osteophyte,
  paravertebral soft tissue) has bone in its core;
* **fat** (:func:`fat_share`): a core mostly of adipose density (-190..-30 HU, Lamba R et al.,
  AJR 2014;203:1013-1020; ``lesion.json`` fat_min_hu/fat_max_hu) is mediastinal, pericardial or
  chest-wall fat bulging into the lung's outline, not a nodule; a nodule that contains fat is a
  hamartoma, benign (Lung-RADS v2022 category 2: "nodules with fat"), not an actionable nodule
  either. Only for candidates centred outside the aerated lung (in the wall or mediastinum that
  the search region's closing takes in; in the parenchyma a part-solid nodule's core mixes
  ground glass and solid tissue into the fat band) and of at least 6 mm
  (:func:`fat_rule_min_diameter_mm`: the partial volume of a small solid edge or vessel with the
  lung passes through the fat band);
* **cut by the scan's face** (:func:`cut_by_face`): a candidate whose sphere reaches the first
  or last section (or column, row) of the image and whose tissue does not narrow toward it is
  not seen closed: a rounded opacity cannot be told from the dome of the diaphragm, the heart or
  the neck's structures rising into the scan. It is not assessable on this scan.

Each is returned as a reason; :func:`exclusion_reason` gives the first that applies, and the
candidate stays in the list with the reason among its warnings and score 0 (its score before in
``features["score_before_exclusion"]``): ranked after every candidate still judged a nodule.
"""

from __future__ import annotations

import numpy as np

from . import constants
from .ball import ball_box


def voxel_reach(shape, kji, radius_mm: float, spacing_kji):
    """(box slices, reach in mm of each box voxel): the distance from ``kji`` (the centre voxel's
    centre) to the nearest point of each voxel's own cell (a cuboid of ``spacing_kji`` around its
    centre; 0 for the centre voxel), over the box of voxels whose cell can come within
    ``radius_mm``. shape: the array's (3,); kji: (3,) int; spacing_kji: (3,) mm.

    A CT voxel's value is the mean attenuation over its cell (partial volume; e.g. Goldman LW,
    J Nucl Med Technol 2007;35:115-128): a voxel read as bone holds bone somewhere in its cell, up
    to half a voxel nearer the centre than its own centre, and the voxel beside a bone's surface
    reads between the bone and what lies on the other side (phantom screening scan 10: a
    sternum's corner voxel against the lung reads 154 HU, under the 200 HU bone limit, with bone
    of 300-450 HU in its face neighbours 1.5 mm away). Distances between voxel centres would put
    that bone a half voxel further than it lies."""
    sk = np.asarray(spacing_kji, float)
    box, _ = ball_box(shape, kji, float(radius_mm) + 0.5 * float(np.linalg.norm(sk)), sk)
    off = np.ogrid[tuple(slice(b.start - int(k), b.stop - int(k)) for b, k in zip(box, kji))]
    gap = [np.maximum(np.abs(o) * s - 0.5 * s, 0.0) for o, s in zip(off, sk)]
    return box, np.sqrt(sum(g ** 2 for g in gap))


def core_radius_mm(diam_mm: float, spacing_kji) -> float:
    """The candidate's core: within half its radius of its centre, at least half the finest
    voxel (the centre voxel)."""
    return max(float(diam_mm) / 4.0, 0.5 * float(np.min(spacing_kji)))


def skeleton_share(bone: np.ndarray, kji, diam_mm: float, spacing_kji, x_of_kji=None, x_mid: float | None = None,
                   s_axis: int = 0) -> float:
    """Share (0..1) of the candidate's core that is bone of the axial skeleton: chest-wall bone
    (bone: boolean [k, j, i] of :func:`imagio.detection.blobs.chest_wall_bone` on the working grid)
    whose piece in the candidate's axial section reaches across the thorax's midline ``x_mid``
    (RAS x, mm; halfway between the two lungs' centroids): the vertebral body or the sternum. A
    bone voxel is in the core when its cell reaches within the core's radius (:func:`voxel_reach`:
    the voxel beside the bone's surface reads under the bone limit by partial volume, so the bone
    lies up to half a voxel nearer than the next voxel's centre). A rib
    alone (one hemithorax) does not count: a calcified nodule fused with a rib shares the rib's
    bone component (phantom screening scan 7: an 11.9 mm calcified juxta-pleural nodule, 29 % of
    its core), and a lung nodule may abut a rib; the midline bones bound the mediastinum and the
    paravertebral gutters, which hold no lung parenchyma. kji: (3,) int centre; diam_mm: its
    diameter; spacing_kji: (3,) mm; x_of_kji: callable (M, 3) kji -> (M,) RAS x mm; x_mid None
    (one lung in view): every bone counts. s_axis: the array axis along S."""
    rc = core_radius_mm(diam_mm, spacing_kji)
    box, reach = voxel_reach(bone.shape, kji, rc, spacing_kji)
    core_bone = bone[box] & (reach <= rc)
    if not core_bone.any():
        return 0.0
    share = float(core_bone.sum()) / float((reach <= rc).sum())
    if x_mid is None or x_of_kji is None:
        return share
    from scipy import ndimage

    z = int(kji[s_axis])
    section = np.take(bone, z, axis=s_axis)
    lab, _ = ndimage.label(section, structure=np.ones((3, 3), bool))
    pts = np.argwhere(core_bone) + np.array([b.start for b in box])
    pts = pts[pts[:, s_axis] == z]
    if not len(pts):
        return 0.0
    ids = np.unique(lab[tuple(np.delete(pts, s_axis, axis=1).T)])
    pix = np.argwhere(np.isin(lab, ids[ids > 0]))
    pix = np.insert(pix, s_axis, z, axis=1)
    x = x_of_kji(pix)
    return share if x.min() < x_mid < x.max() else 0.0


def fat_share(a: np.ndarray, kji, diam_mm: float, spacing_kji) -> float:
    """Share (0..1) of the candidate's core whose HU is adipose (lesion.json fat_min_hu ..
    fat_max_hu). a: CT (HU) [k, j, i] on the working grid; kji, diam_mm, spacing_kji as
    :func:`skeleton_share`."""
    from ..limits import FAT_MAX_HU, FAT_MIN_HU

    rc = core_radius_mm(diam_mm, spacing_kji)
    box, d = ball_box(a.shape, kji, rc, spacing_kji)
    v = a[box][d <= rc]
    return float(np.mean((v >= FAT_MIN_HU) & (v <= FAT_MAX_HU)))


def fat_rule_min_diameter_mm() -> float:
    """Smallest candidate diameter (mm) the fat rule judges: the smallest Lung-RADS v2022
    category-3 solid nodule (6 mm, ``lungrads_v2022.json``). Its core (half the diameter across)
    is then at least two 1.5 mm voxels wide, past the partial volume of its edge with the lung,
    which passes through the fat band between soft tissue and air (phantom screening scans 0-19:
    4.8 mm solid and lentiform nodules read -160..-130 HU at their centre); below it a solid
    nodule is category 2, so the rule cannot take an actionable nodule away."""
    from .blobs import _category3_solid_mm

    return _category3_solid_mm()


def cut_by_face(a: np.ndarray, kji: np.ndarray, diam_mm: float, spacing_kji, tissue_hu: float) -> str | None:
    """The face of the image that cuts the candidate open ("first section", "last row", ...), or
    None. a: CT (HU) [k, j, i] (the image as read, in RAS-canonical storage); kji: (3,) float
    voxel of its centre; tissue_hu: the candidate's half-maximum edge (HU above it is its tissue).

    Along each axis whose first or last layer lies within the candidate's radius of its centre:
    the tissue in a disc of that radius on the face layer is compared with the disc through the
    centre. A rounded opacity narrows toward its ends, so a nodule that the face only grazes
    shows less of it on the face than through its centre; a structure that holds as much or
    more on the face (the dome of the diaphragm or the heart rising into the first sections),
    or one whose centre lies on the face itself, continues beyond the image: not assessable."""
    sk = np.asarray(spacing_kji, float)
    r = float(diam_mm) / 2.0
    names = (("first section", "last section"), ("first row", "last row"), ("first column", "last column"))
    c = np.clip(np.rint(kji).astype(int), 0, np.array(a.shape) - 1)
    for ax in range(3):
        n = a.shape[ax]
        for side, face in enumerate((0, n - 1)):
            if abs(float(kji[ax]) - face) * sk[ax] >= r:
                continue
            if c[ax] == face:
                return names[ax][side]
            others = [o for o in range(3) if o != ax]
            lo = [max(c[o] - int(np.ceil(r / sk[o])), 0) for o in others]
            hi = [min(c[o] + int(np.ceil(r / sk[o])) + 1, a.shape[o]) for o in others]
            g = np.ogrid[lo[0] - c[others[0]]:hi[0] - c[others[0]], lo[1] - c[others[1]]:hi[1] - c[others[1]]]
            disc = (g[0] * sk[others[0]]) ** 2 + (g[1] * sk[others[1]]) ** 2 <= r * r

            def area(layer):
                idx = [slice(None)] * 3
                idx[ax] = layer
                idx[others[0]] = slice(lo[0], hi[0])
                idx[others[1]] = slice(lo[1], hi[1])
                return int(((a[tuple(idx)] > tissue_hu) & disc).sum())

            if area(face) >= max(area(int(c[ax])), 1):
                return names[ax][side]
    return None


def exclusion_reason(features: dict, diam_mm: float, spacing_kji, in_lung_centre: bool) -> str | None:
    """Why the candidate is not a lung nodule (a sentence for its warnings), or None.
    features: the candidate's ``skeleton_share``, ``fat_share`` and ``cut_by_face`` (the face's
    name or None; :func:`skeleton_share`, :func:`fat_share`, :func:`cut_by_face`); diam_mm: its
    diameter; spacing_kji: the working grid's (3,) mm; in_lung_centre: its centre lies in the
    aerated lung (not in the wall or mediastinum that the search region's closing takes in)."""
    ex = constants()["exclusions"]
    face = features.get("cut_by_face")
    if face:
        return (f"not assessable: cut open by the image's {face} (its tissue does not narrow toward it): "
                "it continues outside the scan (the diaphragm's or the heart's dome, the neck) or is a "
                "nodule seen in part; not ranked as a nodule: image the whole chest")
    if features.get("skeleton_share", 0.0) > ex["skeleton_core_share_max"]["value"]:
        return ("chest-wall bone (rib, vertebra or sternum) within half its radius of its centre: a "
                "structure against the skeleton (paravertebral or costal), not a nodule of the lung; not "
                "ranked as a nodule")
    if (not in_lung_centre and features.get("fat_share", 0.0) >= ex["fat_core_share_min"]["value"]
            and float(diam_mm) >= fat_rule_min_diameter_mm() - 1e-6):
        return ("fat density (adipose, -190..-30 HU) in most of its core, centred outside the aerated lung: "
                "mediastinal, pericardial or chest-wall fat, not a nodule (a fat-containing nodule is a "
                "hamartoma, benign: Lung-RADS 2); not ranked as a nodule")
    return None
