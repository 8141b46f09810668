"""`imagio info X | head` (new-user trial 62 L3): a reader that closes the pipe makes the command
exit silently (Python docs, signal, "Note on SIGPIPE"), not "imagio: error: None: Broken pipe"."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from imagio import io
from imagio.volume import Volume, make_ijk_to_ras

ROOT = Path(__file__).resolve().parents[1]


def test_closed_pipe_exits_silently(tmp_path):
    hu = np.random.default_rng(0).integers(-1000, 1000, (4, 5, 6)).astype(np.int16)
    f = io.write_image(Volume(hu, make_ijk_to_ras((1.0, 1.0, 2.0))), tmp_path / "x.nii.gz")
    r, w = os.pipe()
    os.close(r)   # the reader has gone: every write to the pipe fails with EPIPE
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        p = subprocess.run([sys.executable, "-m", "imagio", "info", str(f)], stdout=w, stderr=subprocess.PIPE,
                           text=True, env=env, cwd=tmp_path)
    finally:
        os.close(w)
    assert "Broken pipe" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip() == "", p.stderr
    assert p.returncode == 1
