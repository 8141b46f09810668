"""A tubular lumen's calibre from its mask's cross-section AREA: one definition for airways and vessels.

A lumen's inscribed radius (the distance transform on its centreline) reads a round lumen short by
0.9-1.5 voxels on average (`vessels.diameter_from_edt`: the nearest outside voxel centre lies
obliquely; Testing/test_vessel_diameter.py), in steps of the grid. The area A of the mask's section
in the plane normal to the lumen's axis gives the equivalent-circle diameter ``2 sqrt(A / pi)``: the
diameter of a round lumen of that area, unbiased by the grid (a voxel is in the mask when its centre
is: its area counts as often outside the true contour as inside), blind to pinholes, and the mean
calibre of an oval lumen (airway morphometry measures a bronchus so: Tschirren et al., IEEE TMI
2005;24:1529-1539). Measured on digitised tubes of 2-10 mm at 0.5-3 mm voxels, random sub-voxel
positions and oblique axes, anisotropic grids included (Testing/test_lumen_calibre.py): within half
a voxel of the truth on average, within one voxel (``uncertainty_mm``) at any one point.

A figure within that uncertainty of a threshold does not tell on which side the lumen lies:
`undecided` says so, and the callers (the planner's calibre split, the ablation heat sink,
ablation eligibility) treat such a lumen as the larger class and say so (`undecided_words`).

Arrays [k, j, i]; positions RAS mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..volume import Volume

BEYOND = 2   # value of a lumen volume outside the image: the section cannot be read there
UNCERTAINTY_VOXELS = 1.0


def uncertainty_mm(spacing) -> float:
    """The uncertainty (mm) of a calibre read from a mask drawn on voxels ``spacing`` (mm, any
    order, or one number): one voxel, the coarsest side. The mask's boundary lies anywhere within
    the voxel its threshold puts it in, half a voxel on each side of the lumen, so a diameter
    drawn by a mask is known to a voxel and no better. 0 for an unknown grid."""
    s = np.asarray(spacing, float).ravel()
    return UNCERTAINTY_VOXELS * float(s.max()) if s.size else 0.0


def undecided(calibre_mm, threshold_mm: float, spacing):
    """True where ``calibre_mm`` lies below ``threshold_mm`` by less than its uncertainty
    (`uncertainty_mm` of ``spacing``): the lumen may reach the threshold. Scalars or arrays."""
    d = np.asarray(calibre_mm, float)
    return (d < float(threshold_mm)) & (d >= float(threshold_mm) - uncertainty_mm(spacing)) & (d > 0)


def at_least(calibre_mm, threshold_mm: float, spacing):
    """The conservative decision: True where ``calibre_mm`` reaches ``threshold_mm`` or lies
    within its uncertainty below it (`undecided`): the larger class (a keep-out vessel, a heat
    sink) unless the figure shows the lumen below the threshold."""
    return np.asarray(calibre_mm, float) >= float(threshold_mm) - uncertainty_mm(spacing)


def undecided_words(calibre_mm, threshold_mm: float, spacing, treated_as: str) -> str:
    """"calibre 2.7 mm on a 1.5 mm grid: within a voxel of 3 mm, treated as <treated_as>";
    ``calibre_mm`` a figure or the (least, largest) of several ("calibres 1.6-2.9 mm ...")."""
    c = np.atleast_1d(np.asarray(calibre_mm, float))
    lo, hi = float(c.min()), float(c.max())
    fig = f"calibre {hi:.1f} mm" if round(lo, 1) == round(hi, 1) else f"calibres {lo:.1f}-{hi:.1f} mm"
    return (f"{fig} on a {uncertainty_mm(spacing):.2g} mm grid: within a voxel of "
            f"{float(threshold_mm):g} mm, treated as {treated_as}")


def plane_basis(tangent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two [n, 3] unit vectors (RAS) spanning the plane normal to each of ``tangent`` ([n, 3], any
    length), orthogonal to each other."""
    t = tangent / np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    a = np.cross(t, [1.0, 0.0, 0.0])
    flat = np.linalg.norm(a, axis=1) < 0.3
    a[flat] = np.cross(t[flat], [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    return a, np.cross(t, a)


def equivalent_diameters(lumen: Volume, points: np.ndarray, tangent: np.ndarray, half_width_mm,
                         chunk: int = 64, max_half_samples: int | None = None) -> np.ndarray:
    """[n] equivalent-circle diameters (mm) of the mask's cross-section through each of
    ``points`` ([n, 3] RAS mm) in the plane normal to its ``tangent`` ([n, 3]): the in-plane
    connected piece of the mask (8-neighbours) holding the point, its holes filled, sampled
    (nearest voxel) on a square of ``half_width_mm`` ([n] or scalar) on each side at half the finest
    spacing (or coarser: at most ``max_half_samples`` steps on each side, a wide lumen's area
    counted at a step well below its diameter), a quarter of a step off the point. NaN where the
    point is not in the mask, or the piece reaches the square's edge or the image's edge
    (``BEYOND``: bronchoscopy's ``section.lumen_volume``, `ridge_calibre`): the section is cut
    there, its area unknown."""
    pts = np.asarray(points, float)
    t = np.asarray(tangent, float)
    hw = np.broadcast_to(np.asarray(half_width_mm, float), (len(pts),))
    out = np.full(len(pts), np.nan)
    if not len(pts):
        return out
    step = 0.5 * float(np.min(lumen.spacing))
    a, b = plane_basis(t)
    plane = np.zeros((3, 3, 3), bool)
    plane[1] = True                                   # in-plane 8-neighbours, no link between sections
    cross = ndimage.generate_binary_structure(3, 1) & plane   # in-plane 4-neighbours (the holes' background)
    # points of similar width share a square's size: sorted, so a chunk's square fits its widest
    order = np.argsort(hw)
    for c0 in range(0, len(pts), chunk):
        sel = order[c0:c0 + chunk]
        # a wide square is sampled more coarsely, at most ``max_half_samples`` steps a side
        st = step if max_half_samples is None else max(step, float(hw[sel].max()) / max_half_samples)
        h = int(np.ceil(float(hw[sel].max()) / st))
        # a quarter step off the point: a section through voxel centres along an axis (a centre
        # voxel's) has no sample on a voxel face, where the nearest voxel is a tie (rint's
        # half-to-even read a 3-voxel square as 2.5 voxels: 2.26 mm for 2.71 mm at 0.8 mm)
        u = (np.arange(-h, h + 1) + 0.25) * st
        q = (pts[sel, None, None] + u[None, :, None, None] * a[sel, None, None]
             + u[None, None, :, None] * b[sel, None, None])
        v = lumen.sample(q.reshape(-1, 3), order=0, fill=BEYOND).reshape(len(sel), 2 * h + 1, 2 * h + 1)
        filled = ndimage.binary_fill_holes(v == 1, structure=cross)
        lab, _ = ndimage.label(filled, structure=plane)
        mid = lab[:, h, h]
        piece = (lab == mid[:, None, None]) & (mid[:, None, None] > 0)
        edge = piece[:, 0].any(1) | piece[:, -1].any(1) | piece[:, :, 0].any(1) | piece[:, :, -1].any(1)
        cut = (ndimage.binary_dilation(piece, structure=plane) & (v == BEYOND)).any(axis=(1, 2))
        area = piece.sum(axis=(1, 2)) * st * st
        d = 2.0 * np.sqrt(area / np.pi)
        d[(mid == 0) | edge | cut] = np.nan
        out[sel] = d
    return out




def axis_directions(inside_mm: np.ndarray, kji: np.ndarray, spacing_kji) -> np.ndarray:
    """[n, 3] unit lumen axes (in [k, j, i] mm) at the centre voxels ``kji`` of a lumen whose inside
    distance (mm) is ``inside_mm``: the direction of least curvature of that distance smoothed by one
    coarsest voxel (across the lumen it falls from the axis like a cone, along it stays flat), from
    its Hessian by central differences at those voxels only."""
    sk = np.asarray(spacing_kji, float)
    f = ndimage.gaussian_filter(inside_mm.astype(np.float32), sk.max() / sk, mode="nearest")
    kji = np.asarray(kji, int)
    hi = np.asarray(f.shape) - 1

    def at(off):
        q = np.clip(kji + off, 0, hi)
        return f[q[:, 0], q[:, 1], q[:, 2]].astype(float)

    e = np.eye(3, dtype=int)
    c = at(np.zeros(3, int))
    h = np.empty((len(kji), 3, 3))
    for a in range(3):
        h[:, a, a] = (at(e[a]) - 2 * c + at(-e[a])) / sk[a] ** 2
        for b in range(a + 1, 3):
            v = (at(e[a] + e[b]) - at(e[a] - e[b]) - at(e[b] - e[a]) + at(-e[a] - e[b])) / (4 * sk[a] * sk[b])
            h[:, a, b] = h[:, b, a] = v
    w, vec = np.linalg.eigh(h)
    return np.take_along_axis(vec, np.argmin(np.abs(w), axis=1)[:, None, None], axis=2)[:, :, 0]


def ridge_calibre(mask: np.ndarray, inside_mm: np.ndarray, kji: np.ndarray, spacing_kji) -> np.ndarray:
    """[n] the calibre (mm) of the lumen ``mask`` (bool [k, j, i], voxels ``spacing_kji`` mm; a face of
    the array is the image's edge) at its centre voxels ``kji`` (local maxima of ``inside_mm``, its
    anisotropic inside distance in mm): the equivalent-circle diameter of its section normal to the
    axis (`axis_directions`, `equivalent_diameters`: unbiased by the grid). The section is read on a
    square of three times the inside distance + two coarsest voxels on each side (an oval lumen's
    long axis); one that is cut (the square's
    or the image's edge: a junction, an end) or not found reads the inscribed figure
    ``2 d - smallest side`` (`vessels.diameter_from_edt`), and no figure reads below that (the
    inscribed circle lies within the section) nor above ``2 d + sqrt(3) x coarsest side`` (the centre
    voxel lies within half a voxel diagonal of the axis: a section through a junction is not the
    lumen's). Vectorised over the points (the square's samples at half the finest spacing)."""
    sk = np.asarray(spacing_kji, float)
    kji = np.asarray(kji, int).reshape(-1, 3)
    d = inside_mm[tuple(kji.T)].astype(float)
    lo, hi = 2.0 * d - sk.min(), 2.0 * d + np.sqrt(3.0) * sk.max()
    if not len(kji):
        return lo
    lumen = np.pad(np.asarray(mask, np.uint8), 1, constant_values=BEYOND)
    aff = np.diag([sk[2], sk[1], sk[0], 1.0])
    aff[:3, 3] = -sk[::-1]                      # voxel (1, 1, 1) of the padded array at the origin
    vol = Volume(lumen, aff, scanner_coordinates=False)
    t = axis_directions(inside_mm, kji, sk)[:, ::-1]      # [k, j, i] mm -> the frame's x, y, z
    pts = (kji * sk)[:, ::-1].astype(float)
    # sampled at half the finest spacing, or at a fortieth of the square's half width for a wide
    # lumen (a 10 mm lumen: some 400 samples in its section; the cost stays that of a 2 mm one)
    area = equivalent_diameters(vol, pts, t, 3.0 * d + 2.0 * sk.max(), max_half_samples=40)
    return np.clip(np.where(np.isfinite(area), area, lo), lo, hi)
