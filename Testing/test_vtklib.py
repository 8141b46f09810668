"""imagio.vtklib: the VTK classes IMAGIO uses, without loading all of VTK (``import vtk``)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vtkmodules")

ROOT = Path(__file__).resolve().parents[1]


def test_every_vtk_class_the_package_names_is_there():
    from imagio.vtklib import vtk

    used = set()
    for p in (ROOT / "imagio").rglob("*.py"):
        used |= set(re.findall(r"\bvtk\.(vtk\w+)", p.read_text(encoding="utf-8")))
    assert used, "no vtk.<class> found in the package"
    assert sorted(n for n in used if not hasattr(vtk, n)) == []


def test_scene_and_offscreen_picture_without_all_of_vtk(tmp_path):
    """An MRML scene, VTK's messages to a file and an offscreen picture (the demo's VTK work)
    load neither ``vtk`` nor ``vtkmodules.all`` (every VTK module, ~48 MiB of libraries), and
    the picture is drawn (the OpenGL2 factory is loaded)."""
    code = f"""
import sys
import numpy as np
from imagio import mrml
from imagio.demo import route_vtk_output
from imagio.planning.render import offscreen_window, solid_actor
from imagio.vtklib import vtk, numpy_support as ns
route_vtk_output({str(tmp_path / 'vtk.log')!r})
scene = mrml.new_scene()
s = vtk.vtkSphereSource()
s.Update()
ren = vtk.vtkRenderer()
ren.AddActor(solid_actor(s.GetOutput(), (1.0, 0.5, 0.0)))
rw = offscreen_window(ren, 64, 48)
rw.Render()
w2i = vtk.vtkWindowToImageFilter()
w2i.SetInput(rw)
w2i.Update()
img = ns.vtk_to_numpy(w2i.GetOutput().GetPointData().GetScalars())
rw.Finalize()
print(int((img > 0).sum()), "vtk" in sys.modules, "vtkmodules.all" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lit, vtk_loaded, all_loaded = out.stdout.split()[-3:]
    assert int(lit) > 0
    assert (vtk_loaded, all_loaded) == ("False", "False")


def test_vtk_output_routed_before_the_rendering_modules_load(tmp_path):
    """`demo.route_vtk_output` loads VTK's core module only (the demo routes VTK's messages
    before its phantom and segmentation stages, which use no VTK: the rendering libraries'
    pages would count in their peaks, issue 20), and a message of a module loaded after it
    (vtkIOImage, through imagio.vtklib) still goes to the log file."""
    log = tmp_path / "vtk.log"
    code = f"""
import sys
from imagio.demo import route_vtk_output
route_vtk_output({str(log)!r})
loaded = sorted(m for m in sys.modules if m.startswith("vtkmodules.") or m == "imagio.vtklib")
from imagio.vtklib import vtk
r = vtk.vtkPNGReader()
r.SetFileName({str(tmp_path / 'missing.png')!r})
r.Update()
print(",".join(loaded))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "vtkmodules.vtkCommonCore"
    assert "vtkPNGReader" in log.read_text() and "missing.png" in log.read_text()
