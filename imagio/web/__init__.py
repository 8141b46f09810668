"""IMAGIO Web: a planning workstation in the browser on trame-slicer (Slicer's own MRML slice
and 3-D views) over the same ``imagio.mrml`` layer as the Slicer modules. Optional: needs the
``web`` extra (``pip install imagio[web]``); ``python -m imagio.web`` starts it."""
