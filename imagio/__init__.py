"""IMAGIO: planning library for CT-guided interventional oncology.

Never imports Qt or ``slicer.app``; used by the Slicer modules, the ``imagio`` command line
and the tests alike.
"""

__version__ = "0.1.0"
