"""Ablation zone model: an ellipsoid of revolution along the needle axis.

A probe is a tip position and a unit direction (hub -> tip, RAS). Its zone is centred
``centre_offset_mm`` back from the tip along the shaft, with semi-axis zone_length/2 along the
shaft and zone_diameter/2 across it. Several probes give the union of their zones (cryo: the
fused iceball as the union of per-probe isotherms), or, when the setting is a multi-probe row
(``probes`` = number of probes), one ellipsoid around the probes' centroid. RAS mm; arrays
[k, j, i].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from .devices import Setting


@dataclass
class Probe:
    """A needle tip (RAS mm) and its unit direction from the hub to the tip."""

    tip_ras: np.ndarray
    direction: np.ndarray

    def __post_init__(self):
        self.tip_ras = np.asarray(self.tip_ras, float).reshape(3)
        d = np.asarray(self.direction, float).reshape(3)
        n = np.linalg.norm(d)
        if not np.isfinite(n) or n < 1e-9:
            raise InputError("probe direction is zero: give distinct entry and tip points")
        self.direction = d / n

    @classmethod
    def from_path(cls, entry_ras, tip_ras) -> "Probe":
        """The probe of a straight path entry -> tip (RAS mm)."""
        e, t = np.asarray(entry_ras, float), np.asarray(tip_ras, float)
        return cls(t, t - e)

    @classmethod
    def centred_on(cls, entry_ras, centre_ras, setting: Setting) -> "Probe":
        """The probe on the straight path entry -> ``centre_ras`` (RAS mm) whose zone is centred
        on ``centre_ras``: the tip advanced ``setting.centre_offset_mm`` past it along the path
        (the manufacturer's tip-to-zone-centre offset). The one definition of where the tip of a
        probe aimed at a target goes, for the CLI (`multiprobe.place_on_path`), the Slicer module
        and IMAGIO Web (`imagio.mrml.ablation`)."""
        e, c = np.asarray(entry_ras, float).reshape(3), np.asarray(centre_ras, float).reshape(3)
        probe = cls(c, c - e)
        probe.tip_ras = c + setting.centre_offset_mm * probe.direction
        return probe

    def entry_ras(self, length_mm: float) -> np.ndarray:
        return self.tip_ras - length_mm * self.direction


@dataclass
class Ellipsoid:
    """Ellipsoid of revolution: centre (RAS mm), unit axis, semi-axes a (along) and b (across)."""

    centre: np.ndarray
    axis: np.ndarray
    a_mm: float
    b_mm: float

    @property
    def volume_ml(self) -> float:
        return 4.0 / 3.0 * np.pi * self.a_mm * self.b_mm ** 2 / 1000.0

    def contains(self, ras) -> np.ndarray:
        """Boolean per RAS point (..., 3): inside or on the ellipsoid."""
        d = np.asarray(ras, float) - self.centre
        t = d @ self.axis
        r2 = np.einsum("...i,...i->...", d, d) - t * t
        return t * t / self.a_mm ** 2 + r2 / self.b_mm ** 2 <= 1.0

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned RAS bounding box (lo, hi) of the ellipsoid."""
        u = self.axis
        half = np.sqrt((self.a_mm * u) ** 2 + self.b_mm ** 2 * (1.0 - u ** 2))
        return self.centre - half, self.centre + half


def zone(probe: Probe, setting: Setting) -> Ellipsoid:
    """The zone of one probe for one device setting."""
    c = probe.tip_ras - setting.centre_offset_mm * probe.direction
    return Ellipsoid(c, probe.direction.copy(), 0.5 * setting.zone_length_mm, 0.5 * setting.zone_diameter_mm)


def zones(probes, setting: Setting) -> list[Ellipsoid]:
    """Zones of several probes: one per probe (their union is the zone), or, for a
    multi-probe setting used with exactly that many probes, one fused ellipsoid around the
    centroid of the tips along their mean direction."""
    probes = list(probes)
    if not probes:
        raise InputError("no probes given: place at least one needle")
    if setting.probes > 1:
        if len(probes) != setting.probes:
            raise InputError(f"setting {setting.id!r} is the fused zone of {setting.probes} probes; "
                             f"{len(probes)} {'was' if len(probes) == 1 else 'were'} placed. Place {setting.probes} probes or choose a "
                             "single-probe setting (their zones are then united)")
        d = np.mean([p.direction for p in probes], axis=0)
        tip = np.mean([p.tip_ras for p in probes], axis=0)
        return [zone(Probe(tip, d), setting)]
    return [zone(p, setting) for p in probes]


def bounds(ells) -> tuple[np.ndarray, np.ndarray]:
    """RAS bounding box of the union of ellipsoids."""
    b = [e.bounds() for e in ells]
    return np.min([x[0] for x in b], axis=0), np.max([x[1] for x in b], axis=0)


def grid_coordinates(ijk_to_ras: np.ndarray, lo, hi):
    """RAS x, y, z of voxel centres of the box [lo, hi) (kji indices) as broadcastable
    arrays of shapes (nk,1,1)+(1,nj,1)+(1,1,ni) summed: three (nk, nj, ni) arrays."""
    m = np.asarray(ijk_to_ras, float)
    k = np.arange(lo[0], hi[0], dtype=float)[:, None, None]
    j = np.arange(lo[1], hi[1], dtype=float)[None, :, None]
    i = np.arange(lo[2], hi[2], dtype=float)[None, None, :]
    return [m[r, 3] + m[r, 0] * i + m[r, 1] * j + m[r, 2] * k for r in range(3)]


def box_of(ijk_to_ras: np.ndarray, shape, lo_ras, hi_ras, pad_vox: int = 1):
    """kji index box [lo, hi) of the grid holding the RAS box (lo_ras, hi_ras), clipped."""
    corners = np.array([[x, y, z] for x in (lo_ras[0], hi_ras[0]) for y in (lo_ras[1], hi_ras[1])
                        for z in (lo_ras[2], hi_ras[2])], float)
    inv = np.linalg.inv(ijk_to_ras)
    kji = (corners @ inv[:3, :3].T + inv[:3, 3])[:, ::-1]
    lo = np.maximum(np.floor(kji.min(0)).astype(int) - pad_vox, 0)
    hi = np.minimum(np.ceil(kji.max(0)).astype(int) + 1 + pad_vox, np.asarray(shape))
    return lo, hi


def rasterize(ells, ijk_to_ras: np.ndarray, shape, out: np.ndarray | None = None) -> np.ndarray:
    """Boolean [k, j, i] mask of the union of ellipsoids on a grid (voxel centre inside);
    each ellipsoid is evaluated in its own bounding box only."""
    out = np.zeros(shape, bool) if out is None else out
    for e in ells:
        lo, hi = box_of(ijk_to_ras, shape, *e.bounds())
        if np.any(hi <= lo):
            continue
        x, y, z = grid_coordinates(ijk_to_ras, lo, hi)
        dx, dy, dz = x - e.centre[0], y - e.centre[1], z - e.centre[2]
        t = dx * e.axis[0] + dy * e.axis[1] + dz * e.axis[2]
        r2 = dx * dx + dy * dy + dz * dz - t * t
        inside = t * t * (1.0 / e.a_mm ** 2) + r2 * (1.0 / e.b_mm ** 2) <= 1.0
        out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] |= inside
    return out


def ellipsoid_polydata(e: Ellipsoid, resolution: int = 32):
    """Surface mesh (vtkPolyData, RAS mm) of one ellipsoid: a unit sphere scaled and rotated."""
    from ...vtklib import vtk

    s = vtk.vtkSphereSource()
    s.SetRadius(1.0)
    s.SetThetaResolution(resolution)
    s.SetPhiResolution(resolution)
    # rotation taking z to the axis
    z = np.array([0.0, 0.0, 1.0])
    u = e.axis
    r = np.eye(3)
    v, c = np.cross(z, u), float(z @ u)
    if np.linalg.norm(v) > 1e-9:
        vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
        r = np.eye(3) + vx + vx @ vx / (1.0 + c)
    elif c < 0:
        r = np.diag([1.0, -1.0, -1.0])
    m = np.eye(4)
    m[:3, :3] = r @ np.diag([e.b_mm, e.b_mm, e.a_mm])
    m[:3, 3] = e.centre
    tf = vtk.vtkTransform()
    tf.SetMatrix(m.ravel().tolist())
    f = vtk.vtkTransformPolyDataFilter()
    f.SetTransform(tf)
    f.SetInputConnection(s.GetOutputPort())
    f.Update()
    out = vtk.vtkPolyData()
    out.DeepCopy(f.GetOutput())
    return out


def zones_polydata(ells, resolution: int = 32):
    """One vtkPolyData holding every zone's ellipsoid surface (RAS mm)."""
    from ...vtklib import vtk

    app = vtk.vtkAppendPolyData()
    for e in ells:
        app.AddInputData(ellipsoid_polydata(e, resolution))
    app.Update()
    return app.GetOutput()


BISECTION_STEPS = 40   # halvings of `signed_distance`'s root bracket (2^-40 of it: below 1e-9 mm)


def signed_distance(e: Ellipsoid, P) -> np.ndarray:
    """Exact signed Euclidean distance (mm, > 0 inside) from RAS points ``P`` (n, 3) to the
    surface of the ellipsoid of revolution ``e``: by its symmetry the nearest surface point lies
    in the plane of the axis and the point, so the distance is the 2-D distance from (|t|, r)
    (t along the axis, r across it) to the ellipse of semi-axes a, b, found by bisection on
    the foot point's Lagrange parameter (Eberly 2013, "Distance from a point to an ellipse, an
    ellipsoid, or a hyperellipsoid", Geometric Tools; robust for points inside, on an axis and
    at the centre). Vectorised over the points; ``BISECTION_STEPS`` halvings."""
    P = np.asarray(P, float).reshape(-1, 3)
    d = P - e.centre
    t = d @ e.axis
    r = np.sqrt(np.maximum(np.einsum("pi,pi->p", d, d) - t * t, 0.0))
    a, b = float(e.a_mm), float(e.b_mm)
    # e0 >= e1: the major semi-axis first
    if a >= b:
        e0, e1, y0, y1 = a, b, np.abs(t), r
    else:
        e0, e1, y0, y1 = b, a, r, np.abs(t)
    inside = (y0 / e0) ** 2 + (y1 / e1) ** 2 <= 1.0
    dist = np.empty(len(P))
    gen = (y1 > 0) & (y0 > 0)
    # y0 > 0, y1 > 0: the root s of F(s) = (r0 z0 / (s + r0))^2 + (z1 / (s + 1))^2 - 1
    z0, z1 = y0[gen] / e0, y1[gen] / e1
    r0 = (e0 / e1) ** 2
    g = z0 * z0 + z1 * z1 - 1.0
    lo = z1 - 1.0
    hi = np.where(g < 0, 0.0, np.hypot(r0 * z0, z1) - 1.0)
    for _ in range(BISECTION_STEPS):
        s = 0.5 * (lo + hi)
        f = (r0 * z0 / (s + r0)) ** 2 + (z1 / (s + 1.0)) ** 2 - 1.0
        pos = f > 0
        lo = np.where(pos, s, lo)
        hi = np.where(pos, hi, s)
    s = 0.5 * (lo + hi)
    x0, x1 = r0 * y0[gen] / (s + r0), y1[gen] / (s + 1.0)
    dist[gen] = np.hypot(x0 - y0[gen], x1 - y1[gen])
    # y0 = 0 (on the minor axis's line): the nearest point is the minor vertex
    m = (y0 <= 0) & (y1 > 0)
    dist[m] = np.abs(y1[m] - e1)
    # y1 = 0 (on the major axis's line): a foot point off the axis when close to the centre
    m = y1 <= 0
    num, den = e0 * y0[m], e0 * e0 - e1 * e1
    off = num < den
    xde = np.where(off, num / den if den > 0 else 0.0, 1.0)
    x0 = e0 * xde
    x1 = e1 * np.sqrt(np.maximum(1.0 - xde * xde, 0.0))
    dist[m] = np.where(off, np.hypot(x0 - y0[m], x1), np.abs(y0[m] - e0))
    return np.where(inside, dist, -dist)


def signed_distance_bounds(e: Ellipsoid, P) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds (mm) of `signed_distance` at RAS points ``P`` (n, 3), in one pass:
    with rho the point's normalised ellipsoidal radius, the point lies on the zone scaled by rho
    about its centre, whose points are at least (1 - rho) b and at most (1 - rho) a from the
    surface inside (b, a: the smaller and the larger semi-axis; convexity), and outside at least
    (rho - 1) b, at most (rho - 1) a from the zone."""
    P = np.asarray(P, float).reshape(-1, 3)
    d = P - e.centre
    t = d @ e.axis
    rho = np.sqrt(t * t / e.a_mm ** 2 + (np.einsum("pi,pi->p", d, d) - t * t) / e.b_mm ** 2)
    small, big = min(e.a_mm, e.b_mm), max(e.a_mm, e.b_mm)
    one = 1.0 - rho
    inside = one >= 0
    return np.where(inside, one * small, one * big), np.where(inside, one * big, one * small)
