"""Offscreen pictures (`render.offscreen_window`): one sample per pixel, anti-aliased by FXAA, and
the bronchoscopic fly-through renders each of its views once."""

import numpy as np
import vtk
from vtk.util import numpy_support as ns

from imagio.planning import render
from imagio.planning.bronchoscopy.flythrough import render_strip
from imagio.volume import make_ijk_to_ras


def _pixels(rw, w, h):
    f = vtk.vtkWindowToImageFilter()
    f.SetInput(rw)
    f.ShouldRerenderOff()
    f.Update()
    return ns.vtk_to_numpy(f.GetOutput().GetPointData().GetScalars()).reshape(h, w, -1)[..., :3]


def test_picture_is_antialiased_with_one_sample():
    """A white, unlit triangle with slanted edges on black: without anti-aliasing every pixel is
    black or white; FXAA leaves grey pixels along the slanted edges."""
    pts = vtk.vtkPoints()
    for p in ((-1.0, -0.8, 0.0), (1.0, -0.5, 0.0), (-0.2, 0.9, 0.0)):
        pts.InsertNextPoint(*p)
    tri = vtk.vtkCellArray()
    tri.InsertNextCell(3, [0, 1, 2])
    poly = vtk.vtkPolyData()
    poly.SetPoints(pts)
    poly.SetPolys(tri)
    actor = render.solid_actor(poly, (1.0, 1.0, 1.0))
    actor.GetProperty().LightingOff()
    ren = vtk.vtkRenderer()
    ren.SetBackground(0, 0, 0)
    ren.AddActor(actor)
    rw = render.offscreen_window(ren, 160, 120)
    rw.Render()
    assert rw.GetMultiSamples() == 0
    g = _pixels(rw, 160, 120)[..., 0].astype(int)
    rw.Finalize()
    white, black = (g >= 250).sum(), (g <= 5).sum()
    grey = ((g > 5) & (g < 250)).sum()
    assert white > 2000 and black > 2000
    assert grey > 40    # the three edges (~400 px long in all) are smoothed


def test_flythrough_renders_each_view_once(tmp_path, monkeypatch):
    """The strip reads each view back from the window it has just rendered (no second render
    per view)."""
    renders, original = [], render.offscreen_window

    def counted(ren, w, h):
        rw = original(ren, w, h)
        rw.AddObserver("StartEvent", lambda *_: renders.append(1))
        return rw

    monkeypatch.setattr(render, "offscreen_window", counted)
    k, j, i = np.ogrid[:40, :20, :20]
    tube = ((j - 10) ** 2 + (i - 10) ** 2 < 25) & (k > 2) & (k < 37)
    A = make_ijk_to_ras((1.0, 1.0, 1.0))
    pos = np.array([[10.0, 10.0, z] for z in (8.0, 16.0, 24.0)])
    dirs = np.array([[0.0, 0.0, 1.0]] * 3)
    out = render_strip(tube, A, pos, dirs, [0, 1, 2], tmp_path / "strip.png", size=64)
    assert out.exists()
    assert len(renders) == 3
