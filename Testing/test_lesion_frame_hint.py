"""New-user trial 102 F4: a nodule's LPS centre (LUNA16 CSVs, candidates.csv, a PACS viewer)
typed as --point without --lps lands on the mirrored point (R and A negated) and the click finds
no lesion. The error now says that the same numbers read as L,P,S lie in a lesion (and the
converse when --lps was given to R,A,S numbers). Independent reference: the LIDC readers' own
LPS centre of the nodule (nodule_reads.csv), not IMAGIO's."""
import csv
import subprocess
import sys

import pytest
from conftest import shared_case


def _lesion(ct, point, out, lps=False):
    cmd = [sys.executable, "-m", "imagio.cli", "lesion", str(ct), f"--point={point}", "--out", str(out), "--quiet"]
    return subprocess.run(cmd + (["--lps"] if lps else []), capture_output=True, text=True)


def test_lps_numbers_typed_as_ras_are_hinted_not_only_refused(tmp_path):
    ct = shared_case("lidc-slabs", "LIDC-IDRI-0001_slab.nii.gz")
    rows = [r for r in csv.DictReader(open(shared_case("lidc-slabs", "nodule_reads.csv")))
            if r["patient"] == "LIDC-IDRI-0001"]
    if not rows:
        pytest.skip("no LIDC-IDRI-0001 read")
    r = rows[0]
    lps = f"{float(r['centre_lps_x'])},{float(r['centre_lps_y'])},{float(r['centre_lps_z'])}"
    ok = _lesion(ct, lps, tmp_path / "ok.nii.gz", lps=True)      # the right frame: a lesion
    assert ok.returncode == 0, ok.stderr
    wrong = _lesion(ct, lps, tmp_path / "w.nii.gz")              # the same numbers as R,A,S
    assert wrong.returncode != 0 and not (tmp_path / "w.nii.gz").exists()
    err = [ln for ln in wrong.stderr.splitlines() if "error" in ln]
    assert len(err) == 1 and "did you mean --lps" in err[0] and "L,P,S" in err[0], wrong.stderr
    # the converse: R,A,S numbers given with --lps
    ras = f"{-float(r['centre_lps_x'])},{-float(r['centre_lps_y'])},{float(r['centre_lps_z'])}"
    conv = _lesion(ct, ras, tmp_path / "c.nii.gz", lps=True)
    assert conv.returncode != 0 and "leave out --lps" in conv.stderr, conv.stderr
