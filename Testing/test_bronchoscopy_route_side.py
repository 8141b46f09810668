"""A route whose airway names contradict the label map's side at the target says so beside the
names (new-user trial 92 L4: bronch on the mirrored chest CTA and its label map gave the route
"left_main_bronchus -> left_upper_lobe_bronchus -> LB3" to a target the map calls lung_right; the
mirror warnings stood apart from the route). The phantom's lungs as one lung_left / lung_right
label each (as `imagio segment` writes them), their names swapped as a mirrored map states them:
the route to a left lower lobe point is named by the tree's own geometry (left), the map says
lung_right there."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imagio import cli, io, phantom
from imagio.planning.bronchoscopy.route import names_side_note


def test_names_side_note():
    route = ["trachea", "left_main_bronchus", "left_upper_lobe_bronchus", "LB3"]
    note = names_side_note(route, "lung_right")
    assert "contradict the label map's side" in note and "lung_right" in note and "see warning" in note
    assert names_side_note(route, "lung_upper_lobe_left") == ""
    assert names_side_note(route, "lung_nodule_1") == "" and names_side_note(route, None) == ""
    assert names_side_note(["trachea"], "lung_left") == ""
    assert "say right" in names_side_note(["trachea", "right_main_bronchus", "RB6"], "lung_lower_lobe_left")


@pytest.fixture(scope="module")
def ph():
    return phantom.generate(spacing=1.5, seed=0)


def _lungs_as_two(ph, swap: bool):
    """The phantom's label map with its lobes merged into lung_left / lung_right (names swapped
    when ``swap``: a mirrored map's names)."""
    L = ph.labels
    arr = L.array.copy()
    names = dict(L.labels)
    side = {v: ("left" if n.endswith("_left") else "right") for v, n in names.items() if n.startswith("lung_") and "lobe" in n}
    new = {"left": max(names) + 1, "right": max(names) + 2}
    for v, s in side.items():
        arr[L.array == v] = new[s]
        del names[v]
    flip = {"left": "right", "right": "left"}
    for s, v in new.items():
        names[v] = f"lung_{flip[s] if swap else s}"
    return L.with_array(arr.astype(np.uint16), labels=names)


@pytest.mark.parametrize("swap", [True, False])
def test_route_names_carry_the_side_contradiction(ph, tmp_path, capsys, swap):
    from scipy import ndimage

    L = ph.labels
    inv = {n: v for v, n in L.labels.items()}
    lobe = L.array == inv["lung_lower_lobe_left"]
    d = ndimage.distance_transform_edt(lobe)
    point = L.kji_to_world(np.argwhere(d == d.max())[:1].astype(float))[0]
    io.write_image(ph.ct, tmp_path / "ct.nii.gz")
    io.write_labels(_lungs_as_two(ph, swap), tmp_path / "labels.seg.nrrd")
    capsys.readouterr()
    out = tmp_path / "o"
    rc = cli.main(["bronch", str(tmp_path / "ct.nii.gz"), "--airways", str(tmp_path / "labels.seg.nrrd"),
                   f"--target={point[0]:.1f},{point[1]:.1f},{point[2]:.1f}", "--scope", "thin", "--out", str(out),
                   "--no-pictures", "--quiet"])
    assert rc == 0
    said = json.loads(capsys.readouterr().out)
    route = json.loads((out / "bronch.json").read_text())["route"]
    assert any(n.startswith(("left_", "LB")) for n in route["route_names"]), route["route_names"]
    if swap:
        assert "lung_right" in route["route_names_note"] and "contradict" in route["route_names_note"]
        assert said["route"].endswith(route["route_names_note"]) and "left_main_bronchus" in said["route"]
    else:
        assert "route_names_note" not in route and "contradict" not in said["route"]
