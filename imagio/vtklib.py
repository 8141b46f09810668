"""The VTK classes that IMAGIO uses, loaded from the VTK modules that hold them.

``import vtk`` loads every module of VTK (about 160, the whole ``vtkmodules.all``): 48 MiB
more resident memory than these (measured 2026-12-02: a process with ``import vtk`` and an
MRML scene 291 MiB, with these modules instead 243 MiB; the libraries' pages count in the
resident memory). ``vtk`` here is a namespace with the same class names (``vtk.vtkPolyData``),
so that the code reads as before. ``vtkRenderingOpenGL2`` is loaded for its object factory:
without it a ``vtkRenderWindow`` or ``vtkPolyDataMapper`` has no implementation. A class
that is not here is an ``AttributeError``: add its module (``Testing/test_vtklib.py`` checks
that every ``vtk.<name>`` in the package's source is here)."""

from __future__ import annotations

from types import SimpleNamespace

import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (render window and mapper implementations)
from vtkmodules import (vtkCommonCore, vtkCommonDataModel, vtkCommonMath, vtkCommonTransforms,
                        vtkFiltersCore, vtkFiltersFlowPaths, vtkFiltersGeneral, vtkFiltersSources,
                        vtkIOImage, vtkRenderingCore)
from vtkmodules.util import numpy_support  # noqa: F401  (the numpy <-> VTK array conversions)

MODULES = (vtkCommonCore, vtkCommonDataModel, vtkCommonMath, vtkCommonTransforms, vtkFiltersCore,
           vtkFiltersFlowPaths, vtkFiltersGeneral, vtkFiltersSources, vtkIOImage, vtkRenderingCore)

vtk = SimpleNamespace(**{n: getattr(m, n) for m in MODULES for n in dir(m) if n.startswith("vtk")})
