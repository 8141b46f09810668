"""One dependency helper for both IMAGIO modules: put the ``imagio`` package on ``sys.path`` and
install the library's pip requirements (``requirements.txt`` beside this file) once, after
asking the user. Never runs at module import time.

Slicer versions: ``slicer.packaging.pip_ensure`` (Slicer 5.12 and later,
Base/Python/slicer/packaging.py) checks, asks and installs; on Slicer 5.10 the missing
distributions are found with ``importlib.metadata`` and installed with
``slicer.util.pip_install`` after ``slicer.util.confirmOkCancelDisplay``. Slicer 5.8 and older
ship Python 3.9, which the ``imagio`` library does not support (it needs Python >= 3.10):
``ensureImagio`` says so in one sentence instead of failing on a syntax error.
"""

import importlib.metadata
import os
import re
import sys

MIN_PYTHON = (3, 10)
MIN_SLICER = "5.10"
REQUIREMENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "requirements.txt")

_installed = False


def _tr(text):
    try:
        from slicer.i18n import tr
    except ImportError:
        return text
    return tr(text)


def requirementLines(path=REQUIREMENTS):
    """The requirement specifiers of a requirements file (comments and blank lines dropped)."""
    with open(path, encoding="utf-8") as f:
        return [ln.split("#", 1)[0].strip() for ln in f if ln.split("#", 1)[0].strip()]


def missingRequirements(lines):
    """Specifiers whose distribution is not installed (versions are left to pip)."""
    missing = []
    for spec in lines:
        name = re.split(r"[<>=!~;\[\s]", spec, maxsplit=1)[0]
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(spec)
    return missing


def checkPythonVersion(versionInfo=None):
    """Raise RuntimeError naming the minimum Slicer version when Python is older than 3.10."""
    v = tuple(versionInfo or sys.version_info)[:2]
    if v < MIN_PYTHON:
        raise RuntimeError(
            _tr("IMAGIO needs Slicer {minSlicer} or later (Python {minPy} or later); this Slicer runs "
                "Python {py}. Install a newer Slicer.").format(
                minSlicer=MIN_SLICER, minPy=".".join(map(str, MIN_PYTHON)), py=".".join(map(str, v))))


def addImagioToPath(moduleFile):
    """Put the folder holding the ``imagio`` package on sys.path: beside the module files in an
    installed extension, or the repository root of a source checkout."""
    here = os.path.dirname(os.path.abspath(moduleFile))
    for candidate in (here, os.path.dirname(here)):
        if os.path.isdir(os.path.join(candidate, "imagio")):
            if candidate not in sys.path:
                sys.path.insert(0, candidate)
            return candidate
    raise RuntimeError(_tr("The imagio package was not found beside {path}").format(path=here))


def ensureRequirements(askToInstall=True):
    """Install the missing requirements once per session, after the user agrees. With
    ``askToInstall=False`` nothing is installed and RuntimeError names what is missing."""
    global _installed
    if _installed:
        return
    lines = requirementLines()
    missing = missingRequirements(lines)
    if missing:
        if not askToInstall:
            raise RuntimeError(_tr("IMAGIO's Python packages are not installed: {names}").format(
                names=", ".join(missing)))
        import slicer

        try:
            import slicer.packaging as packaging
        except ImportError:  # Slicer 5.10: no slicer.packaging
            packaging = None
        if packaging is not None and hasattr(packaging, "pip_ensure"):
            packaging.pip_ensure(packaging.load_requirements(REQUIREMENTS), requester="IMAGIO")
        else:
            if not slicer.util.confirmOkCancelDisplay(
                    _tr("IMAGIO needs these Python packages: {names}. Install them now?").format(
                        names=", ".join(missing)), "IMAGIO"):
                raise RuntimeError(_tr("IMAGIO's Python packages are not installed"))
            slicer.util.pip_install(["-r", REQUIREMENTS])
    _installed = True


def ensureImagio(moduleFile, askToInstall=True, requirements=True):
    """Check Python, put ``imagio`` on sys.path, install its requirements (once, after asking);
    returns the imported ``imagio`` package. ``requirements=False`` for what needs no pip
    package (reading the device, scope and model catalogues when a panel opens)."""
    checkPythonVersion()
    addImagioToPath(moduleFile)
    if requirements:
        ensureRequirements(askToInstall)
    import imagio

    return imagio
