"""Offscreen VTK picture of a plan: skin risk map, obstacle structures and proposals (PNG)."""

from __future__ import annotations


from pathlib import Path

import numpy as np
from scipy import ndimage

from ..file_names import for_library


def _surface(mask: np.ndarray, ijk_to_ras: np.ndarray):
    """The project's one mask-to-surface function (``imagio.surfaces.mask_surface``)."""
    from ..surfaces import mask_surface

    return mask_surface(mask, ijk_to_ras)


def _surface_in_box(lab: np.ndarray, value: int, box, ijk_to_ras: np.ndarray):
    """``_surface(lab == value, ijk_to_ras)`` computed from the voxels of ``box`` (the value's
    bounding box, ``ndimage.find_objects``) grown by mask_surface's padding: the same crop, so the
    same mesh, without a full-volume comparison per structure."""
    from ..surfaces import mask_surface

    pad = 3   # mask_surface's default padding: its crop then lies inside ours
    lo = [max(s.start - pad, 0) for s in box]
    sub = lab[tuple(slice(a, min(s.stop + pad, n)) for a, s, n in zip(lo, box, lab.shape))] == value
    A = np.asarray(ijk_to_ras, float).copy()
    A[:3, 3] = A[:3, 3] + A[:3, :3] @ np.asarray(lo[::-1], float)
    return mask_surface(sub, A, pad=pad)


def solid_actor(poly, rgb, opacity: float = 1.0):
    """A uniformly coloured actor of a vtkPolyData (no scalar colouring)."""
    from ..vtklib import vtk

    m = vtk.vtkPolyDataMapper()
    m.SetInputData(poly)
    m.ScalarVisibilityOff()
    a = vtk.vtkActor()
    a.SetMapper(m)
    a.GetProperty().SetColor(*rgb)
    a.GetProperty().SetOpacity(opacity)
    return a


def offscreen_window(ren, width: int, height: int):
    """An offscreen vtkRenderWindow of ``width`` x ``height`` pixels showing the renderer ``ren``,
    anti-aliased by FXAA (a post-process on the finished picture: Lottes T, "FXAA", NVIDIA
    white paper, 2009) instead of VTK's default 8x multisampling, which renders every sample:
    in Mesa's software renderer (llvmpipe, where no GPU is at hand) 8x multisampling took 3.5x
    the CPU time of one sample with FXAA on the same 900 x 700 scene (8.7 against 2.5 CPU-s,
    measured 2026-12-01)."""
    from ..vtklib import vtk

    ren.UseFXAAOn()
    rw = vtk.vtkRenderWindow()
    rw.SetOffScreenRendering(1)
    rw.SetMultiSamples(0)
    rw.SetSize(int(width), int(height))
    rw.AddRenderer(ren)
    return rw


def render_plan_png(plan, path, size=(900, 700), extra=(), risk=None) -> Path:
    """Write a PNG of the 3D view (anterior-right oblique) of ``plan``; returns the path.
    ``extra``: (vtkPolyData, rgb, opacity) to add, e.g. ablation zones. ``risk``: the plan's
    skin risk map (`risk_map.risk_polydata` of its maps and table) when the caller has it, e.g.
    for the scene (`mrml.planning.plan_to_scene`): shown as it is, read only, not built again."""
    from ..vtklib import vtk

    from .. import anatomy
    from .risk_map import risk_polydata

    vtk.vtkObject.GlobalWarningDisplayOff()
    maps = plan.maps
    ren = vtk.vtkRenderer()
    ren.SetBackground(0.08, 0.08, 0.1)
    skin = risk_polydata(maps, plan.table) if risk is None else risk
    lut = vtk.vtkLookupTable()
    lut.SetNumberOfTableValues(256)
    lut.SetTableRange(0.0, 2.0)
    for i in range(256):
        v = 2.0 * i / 255
        rgb = (min(1, 2 * v), min(1, 2 * (1 - v)), 0.1) if v <= 1 else ((0.35,) * 3 if v < 1.75 else (0.8,) * 3)
        lut.SetTableValue(i, *rgb, 1.0)
    m = vtk.vtkPolyDataMapper()
    m.SetInputData(skin)
    m.SetLookupTable(lut)
    m.SetScalarRange(0.0, 2.0)
    m.SetScalarModeToUsePointData()
    a = vtk.vtkActor()
    a.SetMapper(m)
    a.GetProperty().SetOpacity(0.35)
    ren.AddActor(a)
    lab = maps.label
    shown = {}
    for i in maps.obstacles:
        name = maps.names[i]
        v = next(s.value for s in plan.problem.structures if s.name == name)
        shown[name] = v
    boxes = ndimage.find_objects(lab)   # each structure is compared in its own bounding box only
    values = list(shown.values())[:60] + [plan.problem.exempt_value or 0]
    colors = [anatomy.get(name).color_float for name in list(shown)[:60]] + [(1.0, 1.0, 0.0)]
    for v, rgb in zip(values, colors):
        if 0 < v <= len(boxes) and boxes[v - 1] is not None:
            ren.AddActor(solid_actor(_surface_in_box(lab, v, boxes[v - 1], maps.grid.ijk_to_ras), rgb))
    colors = [(0.1, 0.9, 0.2), (0.2, 0.6, 1.0), (1.0, 0.8, 0.1), (0.9, 0.4, 0.9), (0.3, 0.9, 0.9)]
    for r, p in enumerate(plan.proposals):
        line = vtk.vtkLineSource()
        line.SetPoint1(*p.entry_ras)
        line.SetPoint2(*p.target_ras)
        tube = vtk.vtkTubeFilter()
        tube.SetInputConnection(line.GetOutputPort())
        tube.SetRadius(3.0 if r == 0 else 2.0)
        tube.SetNumberOfSides(12)
        lm = vtk.vtkPolyDataMapper()
        lm.SetInputConnection(tube.GetOutputPort())
        la = vtk.vtkActor()
        la.SetMapper(lm)
        la.GetProperty().SetColor(*colors[r % len(colors)])
        ren.AddActor(la)
    for poly, rgb, opacity in extra:
        ren.AddActor(solid_actor(poly, rgb, opacity))
    cam = ren.GetActiveCamera()
    c = np.asarray(plan.problem.target.point_ras, float)
    cam.SetFocalPoint(*c)
    cam.SetPosition(*(c + np.array([250.0, 450.0, 200.0])))
    cam.SetViewUp(0, 0, 1)
    ren.ResetCamera()
    cam.Zoom(1.4)
    rw = offscreen_window(ren, *size)
    rw.Render()
    w2i = vtk.vtkWindowToImageFilter()
    w2i.SetInput(rw)
    w2i.ShouldRerenderOff()   # the window was just rendered: read it back, do not render it again
    w2i.Update()
    path = Path(path)
    from ..outputs import atomic_path

    with atomic_path(path) as tmp:
        wr = vtk.vtkPNGWriter()
        wr.SetFileName(for_library(tmp))
        wr.SetInputConnection(w2i.GetOutputPort())
        wr.Write()
    rw.Finalize()
    vtk.vtkObject.GlobalWarningDisplayOn()
    return path
