"""Is a vertebral column in view? The spinal canal as the feature only vertebrae have.

`split_bones` names the bone in a corridor behind the patient's midline ``vertebrae``. With a
trachea or lungs in view that corridor is the spine's (the trachea and the mediastinum lie on
the midline in front of it). Without them (an abdomen, a pelvis, a limb) the corridor is centred
on the body in view, and on a scan of one limb that is the limb's own axis: the femur or the
tibia lies in it (trial 6: 4.1 mL of STS_010's tibia and 5,840 of the limb phantom's 12,614
femur voxels were named ``vertebrae``). Such a scan therefore needs positive evidence of a
vertebra before the name is written.

The evidence (`spinal_canal`): the vertebral foramen. At the level of the pedicles each vertebra
is a ring of bone, the body in front and the neural arch (pedicles, laminae) behind, around the
spinal canal, which holds the dural sac, the cord and epidural fat (soft tissue, not bone)
(Gray's Anatomy, 42nd ed., vertebral column). The vertebral body, 25-35 mm deep from T10 to L5
(Panjabi MM et al., Thoracic human vertebrae: quantitative three-dimensional anatomy, Spine
1991;16:888-901; Panjabi MM et al., Human lumbar vertebrae, Spine 1992;17:299-306), lies wholly
in front of the canal, so the ring's bone has its centroid well anterior of the canal's centre.
A long bone is a cortical tube around a marrow cavity (Gray's: femur, tibia, humerus): its
cavity is centred in its cross-section and its bone's centroid lies at the cavity's centre. One
ring is not enough (a pelvic foramen, a cut bone at the field of view's edge): the canal is a
tube along the superior-inferior axis, so its rings line up over several slices.

Rule, per axial slice of the dense bone (the bone mask above ``BONE_LOW_HU`` on the CT at the
bone's common resolution; marrow filled by `bone_mask` is left out, so a long bone's cavity is
one centred hole): each 2-D hole of soft tissue enclosed by bone (faces of the field of view
that cut the bone count as closed, `close_faces`, over a gap of at most the widest canal) is a
canal ring when (1) its equivalent diameter lies between ``spinal_canal_min_diameter_mm`` and ``..._max_...``,
(2) the centroid of the bone that encloses it lies at least ``spinal_canal_body_offset_mm``
anterior of its centre, (3) within ``spinal_canal_max_rotation_deg`` of straight anterior (axial
rotation of the vertebra). The column is in view when at least ``spinal_canal_min_rings`` rings
in different slices lie within ``spinal_canal_align_mm`` (left-right and antero-posterior) of
their median centre and span at least ``spinal_canal_min_extent_mm`` along z (more than one
vertebra's pedicles). The canal lies on the patient's midsagittal plane: only rings within the
spine corridor (``bones.SPINE_HALF_WIDTH_MM``) of the midline count (`lungs.midline_x`: the
body's left-right centre, or the isocentre when the field of view cuts the body at a side).
Without that bound the hip bone's posterior column (holes in its trabecular bone with the
acetabulum in front) lined up over 60-110 mm beside the spine of the TotalSegmentator example
and passed for a canal in one-sided pelvis crops.

Known limits: at 3 mm the neural arch of the lower thoracic spine is seldom seen closed (the
TotalSegmentator example's upper-abdominal slab, 45 mm, shows no canal; its spine is then
'bone', with a warning); a crop whose sagittal face cuts the spine away from the isocentre shows
no canal either. Constants and sources: ``imagio/data/segmentation_rules.json``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..volume import Volume
from .common import (anatomical_axes, close_faces, fill_holes_per_slice, plane_structure,
                     ras_coordinate, rule)


def _canal_rule(name: str) -> float:
    return rule(f"spinal_canal_{name}")


def canal_rings(ct: Volume, dense: np.ndarray, open_arch: bool = False) -> dict:
    """Candidate canal rings of the dense bone mask ``dense`` (bool [k, j, i] on ``ct``'s grid).

    open_arch: read a neural arch that is open on this grid (`spinal_canal`): the bone is first
    joined across one ``bones.COMMON_RESOLUTION_MM`` along the superior axis (a maximum filter:
    the laminae slope caudally from the pedicles, so the arch behind a canal lies partly in the
    next slice), a hole may also be a concavity of one bone's cross-section (each axial slice's
    8-connected pieces replaced by their convex hulls, scikit-image `convex_hull_object`), and a
    ring counts only with the neural arch behind it: a bone piece of its slice, other than the
    pieces in front of the hole's centre, lying behind the hole on its centre line (within the
    hole's radius left-right, up to ``spinal_canal_arch_depth_mm`` behind its centre).

    Returns arrays (one entry per ring, every criterion but the alignment met): ``x_mm``,
    ``y_mm`` (RAS centre of the canal), ``slice`` (index along the array axis nearest to
    superior), ``diameter_mm`` (equivalent diameter of the hole), ``offset_mm`` (RAS A distance
    from the canal's centre to the centroid of the bone around it). Any grid orientation: the
    axial plane is the array plane nearest to axial, directions are read in RAS."""
    ax = anatomical_axes(ct)
    s_ax = ax["S"][0]
    sk = np.asarray(ct.spacing_kji, float)
    lo_d, hi_d = _canal_rule("min_diameter_mm"), _canal_rule("max_diameter_mm")
    empty = {k: np.zeros(0) for k in ("x_mm", "y_mm", "slice", "diameter_mm", "offset_mm")}
    if not dense.any():
        return empty
    if open_arch:
        from .bones import COMMON_RESOLUTION_MM

        n = int(round(COMMON_RESOLUTION_MM / sk[s_ax]))
        if n:
            dense = ndimage.maximum_filter1d(dense, 2 * n + 1, axis=s_ax)
    closed = close_faces(dense, [ax["R"][0], ax["A"][0]], sk, hi_d)
    filled = fill_holes_per_slice(closed, s_ax)
    if open_arch:
        filled |= _hulls_per_slice(closed, s_ax)
    holes = filled & ~closed
    if not holes.any():
        return empty
    ps = plane_structure(s_ax)
    hl, hn = ndimage.label(holes, ps)
    fl, fn = ndimage.label(filled, ps)
    x = ras_coordinate(ct, 0)
    y = ras_coordinate(ct, 1)
    hv = hl[holes]
    cnt = np.bincount(hv, minlength=hn + 1).astype(float)
    hx = np.bincount(hv, x[holes], hn + 1) / np.maximum(cnt, 1)
    hy = np.bincount(hv, y[holes], hn + 1) / np.maximum(cnt, 1)
    # the filled region (bone + its holes, per slice) holding each hole: its bone is the ring
    ring_of = np.zeros(hn + 1, np.int64)
    ring_of[hv] = fl[holes]
    fb = fl[closed]
    bc = np.bincount(fb, minlength=fn + 1).astype(float)
    bx = np.bincount(fb, x[closed], fn + 1) / np.maximum(bc, 1)
    by = np.bincount(fb, y[closed], fn + 1) / np.maximum(bc, 1)
    del x, y
    in_plane = [a for a in range(3) if a != s_ax]
    diam = np.sqrt(4.0 * cnt * float(np.prod(sk[in_plane])) / np.pi)
    dx = bx[ring_of] - hx
    dy = by[ring_of] - hy
    tan = np.tan(np.radians(_canal_rule("max_rotation_deg")))
    ok = ((diam >= lo_d) & (diam <= hi_d) & (dy >= _canal_rule("body_offset_mm"))
          & (np.abs(dx) <= tan * dy))
    ok[0] = False
    objs = ndimage.find_objects(hl)
    if open_arch and ok.any():
        ok &= _arch_behind(closed, hl, objs, ok, hx, hy, diam, ct, s_ax)
    idx = np.flatnonzero(ok)
    sl = np.array([objs[i - 1][s_ax].start for i in idx], float)
    return {"x_mm": hx[idx], "y_mm": hy[idx], "slice": sl, "diameter_mm": diam[idx],
            "offset_mm": dy[idx]}


def _arch_behind(bone: np.ndarray, hl: np.ndarray, objs: list, ok: np.ndarray, hx: np.ndarray,
                 hy: np.ndarray, diam: np.ndarray, ct: Volume, s_ax: int) -> np.ndarray:
    """Bool [n + 1] over the holes of ``hl`` (int [k, j, i], labelled per axial slice; ``objs``
    its `find_objects`): for each hole marked in ``ok``, whether the slice that holds it has a
    piece of ``bone`` (bool [k, j, i], 8-connected in the slice) behind the hole's centre
    (``hx``, ``hy``: RAS x, y in mm per hole; ``diam``: its equivalent diameter, mm): a bone
    voxel within ``diam`` / 2 left-right of the centre, more than ``diam`` / 2 and at most
    ``spinal_canal_arch_depth_mm`` behind it, in a piece that holds none of the bone voxels on
    that line in front of the centre. The neural arch (laminae, spinous process) lies behind the
    canal on the midline (Gray's Anatomy, 42nd ed., "Vertebral column"); where it reads open it is
    a piece apart from the body and pedicles in front. A notch of one bone (the intercondylar
    fossa of the femur) has no bone of its own behind it: the limb phantom's distal femur, whose
    notches the convex hull closes, gave 24 candidate holes and none with such a piece."""
    out = np.zeros(ok.shape, bool)
    depth = _canal_rule("arch_depth_mm")
    ps = plane_structure(s_ax)
    for h in np.flatnonzero(ok):
        k = objs[h - 1][s_ax].start
        idx = [slice(None)] * 3
        idx[s_ax] = slice(k, k + 1)
        idx = tuple(idx)
        b = bone[idx]
        if not b.any():
            continue
        x = ras_coordinate(ct, 0)[idx]
        y = ras_coordinate(ct, 1)[idx]
        lab, _ = ndimage.label(b, ps)
        line = b & (np.abs(x - hx[h]) <= 0.5 * diam[h])
        front = np.unique(lab[line & (y > hy[h])])
        behind = np.unique(lab[line & (y < hy[h] - 0.5 * diam[h]) & (y >= hy[h] - depth)])
        out[h] = np.setdiff1d(behind, front).size > 0
    return out


def _hulls_per_slice(mask: np.ndarray, s_ax: int) -> np.ndarray:
    """Bool [k, j, i]: in each plane normal to array axis ``s_ax``, the union of the convex hulls
    of ``mask``'s 8-connected pieces (scikit-image `convex_hull_object`; one call per plane)."""
    from skimage.morphology import convex_hull_object

    out = np.zeros_like(mask)
    for k in np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != s_ax))):
        idx = [slice(None)] * 3
        idx[s_ax] = int(k)
        out[tuple(idx)] = convex_hull_object(mask[tuple(idx)], connectivity=2)
    return out


def spinal_canal(ct: Volume, bone: np.ndarray, midline: float | None = None,
                 open_arch: bool = False) -> dict | None:
    """The spinal canal in view, or None.

    ct: CT Volume (HU). bone: bool [k, j, i] bone mask of `bones.bone_mask` on ``ct``'s grid.
    midline: RAS x (mm) of the patient's midsagittal plane (`lungs.midline_x`: the body's
    left-right centre, or the scanner's isocentre when the field of view cuts the body at a
    side); the canal lies on it, so only rings within ``bones.SPINE_HALF_WIDTH_MM`` of it count
    (the hip bone's posterior column, beside the midline, also shows holes with bone in front).
    None: every ring counts.
    Returns {"x_mm", "y_mm": RAS median centre of the aligned canal rings, "rings": their
    number, "extent_mm": their superior-inferior extent} when at least
    ``spinal_canal_min_rings`` rings (`canal_rings`) in different slices lie within
    ``spinal_canal_align_mm`` of their median centre and span ``spinal_canal_min_extent_mm``; None otherwise (no vertebra in view, or
    none whose canal the scan resolves: the caller says so).

    open_arch: read the ring as open (`canal_rings`' ``open_arch``): at the 3 mm common
    resolution the laminae (a few mm thick) and the thin posterior cortex of the body often read
    below bone density, so the ring of body, pedicles and laminae around the canal is open (the
    TotalSegmentator example's T11-L2: no closed ring in 45 mm, and no vertebra named in its
    abdominal halves); the canal is then the pocket between the body in front and the pedicles
    on each side, closed by the convex hull of the cross-section, with the neural arch as a
    piece of its own behind it (the laminae sloping caudally: joined across one common-resolution
    voxel along z). A long bone's cross-section is a convex cortical tube (Gray's: femur, tibia,
    humerus) and its notches have no bone of their own behind them; the other criteria (size,
    body in front, alignment over more than one vertebra's pedicles, on the midline) are the
    closed ring's. The caller tries it only where the closed ring is not found and no chest
    (trachea, lungs) is in view."""
    from .bones import BONE_LOW_HU, SPINE_HALF_WIDTH_MM, at_common_resolution
    from .common import check_ct

    a = at_common_resolution(check_ct(ct), ct.spacing_kji)
    r = canal_rings(ct, bone & (a > BONE_LOW_HU), open_arch=open_arch)
    if midline is not None:
        on = np.abs(r["x_mm"] - float(midline)) <= SPINE_HALF_WIDTH_MM
        r = {k: v[on] for k, v in r.items()}
    if r["x_mm"].size == 0:
        return None
    mx, my = float(np.median(r["x_mm"])), float(np.median(r["y_mm"]))
    near = np.hypot(r["x_mm"] - mx, r["y_mm"] - my) <= _canal_rule("align_mm")
    slices = np.unique(r["slice"][near])
    step = float(ct.spacing_kji[anatomical_axes(ct)["S"][0]])
    if slices.size < _canal_rule("min_rings") or \
            (slices.max() - slices.min() + 1) * step < _canal_rule("min_extent_mm"):
        return None
    return {"x_mm": round(float(np.median(r["x_mm"][near])), 1),
            "y_mm": round(float(np.median(r["y_mm"][near])), 1),
            "rings": int(slices.size),
            "extent_mm": round(float((slices.max() - slices.min() + 1) * step), 1)}
