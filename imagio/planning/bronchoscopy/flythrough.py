"""Virtual bronchoscopy: a smooth camera path along a route and a PNG strip of endoluminal views.

The camera path is the route's centreline resampled every ``step_mm`` and smoothed with a
Gaussian along its arc length (the ends are kept); the view direction at each position looks
``look_ahead_mm`` further along the path. Views are rendered offscreen with VTK inside the
airway surface (RAS mm).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

SMOOTH_MM = 3.0
LOOK_AHEAD_MM = 8.0
INSIDE_FRACTION = 0.5   # a camera position stays within this fraction of the lumen radius of the centreline
END_BACKOFF_STEPS = 4   # camera positions (1 mm apart) before the route's end for the last view


def camera_path(points: np.ndarray, step_mm: float = 1.0, smooth_mm: float = SMOOTH_MM,
                look_ahead_mm: float = LOOK_AHEAD_MM, radii: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(positions [M, 3], unit view directions [M, 3]) along ``points`` (a route, RAS mm).

    ``radii`` ([len(points)] lumen radius, mm): a smoothed position farther than
    ``INSIDE_FRACTION`` x the lumen radius from the centreline (smoothing cuts the corners of
    sharp bends) falls back to the centreline itself, so every position stays in the lumen."""
    p = np.asarray(points, float)
    if len(p) < 2:
        raise ValueError("a camera path needs at least two route points")
    s = np.r_[0, np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))]
    keep = np.r_[True, np.diff(s) > 1e-6]
    p, s = p[keep], s[keep]
    t = np.arange(0, s[-1] + 1e-9, step_mm)
    if t[-1] < s[-1]:
        t = np.r_[t, s[-1]]
    q = np.stack([np.interp(t, s, p[:, a]) for a in range(3)], axis=1)
    if len(q) > 3:
        sm = gaussian_filter1d(q, smooth_mm / step_mm, axis=0, mode="nearest")
        sm[0], sm[-1] = q[0], q[-1]
        if radii is not None:
            from scipy.spatial import cKDTree

            r = np.asarray(radii, float)[keep]
            d, i = cKDTree(p).query(sm)
            out = d > INSIDE_FRACTION * r[i]
            sm[out] = q[out]
        q = sm
    ahead = np.minimum(np.searchsorted(t, t + look_ahead_mm), len(t) - 1)
    d = q[ahead] - q
    d[-1] = q[-1] - q[-2]  # the only position whose look-ahead is itself
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    return q, d


def key_positions(route_points: np.ndarray, route_branches: np.ndarray, positions: np.ndarray,
                  n_max: int = 6) -> np.ndarray:
    """Indices into ``positions`` nearest to where the route enters each new branch
    (``route_branches``: branch id per route point) and to its end; at most ``n_max``."""
    starts = np.r_[0, np.flatnonzero(np.diff(route_branches) != 0) + 1]
    idx = np.argmin(np.linalg.norm(positions[None] - route_points[starts][:, None], axis=2), axis=1)
    # the last view a few mm before the end: at the end the camera sits in the narrowing tip
    idx = np.unique(np.r_[idx, max(0, len(positions) - 1 - END_BACKOFF_STEPS)])
    if len(idx) > n_max:  # keep the end, spread the rest
        idx = np.r_[idx[np.linspace(0, len(idx) - 2, n_max - 1).astype(int)], idx[-1]]
    return idx


def render_strip(airway_mask: np.ndarray, ijk_to_ras: np.ndarray, positions, directions, indices, path,
                 size: int = 256, target_surface=None) -> Path:
    """Endoluminal views (inside the airway surface) at ``positions[indices]``, side by side in one
    PNG; the lesion (if given as vtkPolyData) shows through the wall in orange."""
    from ...vtklib import vtk
    from ...vtklib import numpy_support as ns

    from ...surfaces import mask_surface
    from ..render import offscreen_window, solid_actor

    vtk.vtkObject.GlobalWarningDisplayOff()
    surf = mask_surface(airway_mask, ijk_to_ras)  # smooth: no slice rings, no voxel facets
    ren = vtk.vtkRenderer()
    ren.SetBackground(0, 0, 0)
    a = solid_actor(surf, (0.93, 0.62, 0.55))
    a.GetProperty().SetSpecular(0.3)
    a.GetProperty().BackfaceCullingOff()
    ren.AddActor(a)
    if target_surface is not None:
        ren.AddActor(solid_actor(target_surface, (1.0, 0.55, 0.0)))
        a.GetProperty().SetOpacity(0.85)
    light = vtk.vtkLight()
    light.SetLightTypeToHeadlight()
    ren.AddLight(light)
    rw = offscreen_window(ren, size, size)
    cam = ren.GetActiveCamera()
    cam.SetViewAngle(80)
    tiles = []
    for i in indices:
        p, d = np.asarray(positions[i], float), np.asarray(directions[i], float)
        cam.SetPosition(*p)
        cam.SetFocalPoint(*(p + 10 * d))
        up = np.array([0.0, 1.0, 0.0]) if abs(d[1]) < 0.9 else np.array([0.0, 0.0, 1.0])
        cam.SetViewUp(*up)
        cam.OrthogonalizeViewUp()
        ren.ResetCameraClippingRange()
        cam.SetClippingRange(0.1, 300)
        rw.Render()
        w2i = vtk.vtkWindowToImageFilter()
        w2i.SetInput(rw)
        w2i.ShouldRerenderOff()   # the window was just rendered: read it back, do not render it again
        w2i.Update()
        img = w2i.GetOutput()
        arr = ns.vtk_to_numpy(img.GetPointData().GetScalars()).reshape(size, size, -1)[::-1, :, :3]
        tiles.append(arr)
    rw.Finalize()
    vtk.vtkObject.GlobalWarningDisplayOn()
    gap = np.full((size, 4, 3), 255, np.uint8)
    strip = np.concatenate([x for t in tiles for x in (t, gap)][:-1], axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...outputs import atomic_path

    with atomic_path(path) as tmp:   # a caller's atomic_path name passes through
        plt.imsave(tmp, strip)
    return path
