"""IMAGIO Web's views: the layout (axial left, 3-D and coronal right), where a RAS point is
drawn in a view, and the software-GL test behind the depth-peeling switch."""

from __future__ import annotations

def software_gl(render_window) -> bool:
    """True when the OpenGL behind ``render_window`` is Mesa's software rasteriser (llvmpipe,
    softpipe, swrast), which cannot do depth peeling with translucent surfaces reliably."""
    info = render_window.ReportCapabilities() or ""
    return any(s in info.lower() for s in ("llvmpipe", "softpipe", "swrast"))


def display_xy(view, node, ras) -> list[float]:
    """Render-window pixel (x, y from the top) where the RAS point ``ras`` is drawn in ``view``."""
    import numpy as np

    rw_h = view.render_window().GetSize()[1]
    if node.IsA("vtkMRMLSliceNode"):
        xy_to_ras = np.array([[node.GetXYToRAS().GetElement(i, j) for j in range(4)] for i in range(4)])
        x, y, _, _ = np.linalg.solve(xy_to_ras, [*map(float, ras), 1.0])
    else:
        r = view.renderer()
        r.SetWorldPoint(*map(float, ras), 1.0)
        r.WorldToDisplay()
        x, y, _ = r.GetDisplayPoint()
    return [float(x), float(rw_h - y)]


def layout_views():
    from trame_slicer.views import ViewLayoutDefinition

    return [ViewLayoutDefinition.axial_view(), ViewLayoutDefinition.threed_view(),
            ViewLayoutDefinition.coronal_view()]


def planning_layouts():
    """Axial slice view on the left, 3-D and coronal on the right."""
    from trame_slicer.views import Layout, LayoutDirection

    axial, threed, coronal = layout_views()
    return {"IMAGIO planning": Layout(LayoutDirection.Horizontal,
                                      [axial, Layout(LayoutDirection.Vertical, [threed, coronal])])}
