"""The command line runs OpenBLAS with one thread unless the user chose a count (issue 20: its
threads spin after each of IMAGIO's small coordinate-transform products), and the transforms
give the same values with one thread as with several."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")
ROOT = Path(__file__).resolve().parents[1]

_PROBE = (
    "import imagio.cli, json\n"
    "from threadpoolctl import threadpool_info\n"
    "print(json.dumps([i['num_threads'] for i in threadpool_info() if i['internal_api'] == 'openblas']))\n"
)


def _openblas_threads(env_extra: dict) -> list:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    env.update(env_extra, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, cwd=str(ROOT), check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: OpenBLAS starts one thread anyway")
def test_the_command_line_runs_openblas_with_one_thread_unless_the_user_chose():
    n = _openblas_threads({})
    if not n:
        pytest.skip("numpy is not built on OpenBLAS here")
    assert n == [1] * len(n)
    assert _openblas_threads({"OPENBLAS_NUM_THREADS": "2"}) == [2] * len(n)   # the user's choice kept


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: nothing to compare")
def test_coordinate_transforms_are_the_same_with_one_blas_thread():
    from threadpoolctl import threadpool_limits

    from imagio.volume import Volume

    rng = np.random.default_rng(5)
    aff = np.eye(4)
    aff[:3, :3] = np.linalg.qr(rng.normal(size=(3, 3)))[0] @ np.diag([0.7, 0.8, 2.5])
    aff[:3, 3] = rng.normal(size=3) * 100
    vol = Volume(np.zeros((4, 5, 6), np.int16), aff, "CT")
    for n in (1, 7, 1000, 65537, 1 << 17, 1_000_003, 3_000_001):
        kji = rng.uniform(-5, 500, size=(n, 3))
        with threadpool_limits(limits=os.cpu_count(), user_api="blas"):
            many = (vol.kji_to_world(kji), vol.world_to_kji(kji))
        with threadpool_limits(limits=1, user_api="blas"):
            one = (vol.kji_to_world(kji), vol.world_to_kji(kji))
        assert np.array_equal(many[0], one[0]) and np.array_equal(many[1], one[1]), n
