"""Skin risk map: a scalar per vertex of the skin surface mesh (the body surface near the
target), from the scored candidates. Values: the score of the nearest candidate entry
(0 best .. 1 worst) where feasible, 1.5 where infeasible, 2.0 out of reach / no candidate.
"""

from __future__ import annotations

import numpy as np

from .distance_maps import BODY, PlanningMaps
from .scoring import ScoreTable

INFEASIBLE, UNREACHABLE = 1.5, 2.0


def skin_mesh(maps: PlanningMaps):
    """vtkPolyData of the body surface in the crop (RAS mm), from flying edges on the body mask."""
    from ..vtklib import vtk
    from ..vtklib import numpy_support as ns

    body = ((maps.flags & BODY) > 0).astype(np.uint8)
    img = vtk.vtkImageData()
    img.SetDimensions(*body.shape[::-1])
    img.GetPointData().SetScalars(ns.numpy_to_vtk(body.ravel(), deep=True))
    fe = vtk.vtkFlyingEdges3D()
    fe.SetInputData(img)
    fe.SetValue(0, 0.5)
    fe.ComputeNormalsOff()
    tf = vtk.vtkTransform()
    tf.SetMatrix(maps.grid.ijk_to_ras.ravel().tolist())
    tpf = vtk.vtkTransformPolyDataFilter()
    tpf.SetTransform(tf)
    tpf.SetInputConnection(fe.GetOutputPort())
    tpf.Update()
    return tpf.GetOutput()


def vertex_risk(vertices_ras: np.ndarray, table: ScoreTable, max_gap_mm: float = 5.0) -> np.ndarray:
    """Risk per vertex from the nearest candidate entry within ``max_gap_mm`` (see module doc)."""
    from scipy.spatial import cKDTree

    out = np.full(len(vertices_ras), UNREACHABLE, np.float32)
    if len(table) == 0 or len(vertices_ras) == 0:
        return out
    d, j = cKDTree(table.entry_ras).query(vertices_ras, distance_upper_bound=max_gap_mm)
    ok = np.isfinite(d)
    jj = j[ok]
    out[ok] = np.where(table.feasible[jj], table.score[jj], INFEASIBLE)
    return out


def risk_polydata(maps: PlanningMaps, table: ScoreTable, array_name: str = "PathRisk"):
    """The skin mesh with a point scalar array ``array_name`` (active scalars)."""
    from ..vtklib import numpy_support as ns

    poly = skin_mesh(maps)
    pts = ns.vtk_to_numpy(poly.GetPoints().GetData()) if poly.GetNumberOfPoints() else np.zeros((0, 3))
    risk = vertex_risk(np.asarray(pts, float), table)
    arr = ns.numpy_to_vtk(risk, deep=True)
    arr.SetName(array_name)
    poly.GetPointData().AddArray(arr)
    poly.GetPointData().SetActiveScalars(array_name)
    return poly
