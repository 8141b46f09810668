"""New-user trial 95 F1: IMAGIO Web opened a sarcoma case (tumour named sarcoma_1 or GTV_Mass,
the STS data's own name) with Target = "body", the first segment; "Sarcoma biopsy" then planned
cores into the body's deepest point and said "rules met", and `imagio plan --target body
--procedure sarcoma-biopsy` exited 0. The patient's outline is never a target; lesion-like names
are offered first; with none, no target is chosen for the user."""

import asyncio
import json

import numpy as np
import pytest

from imagio import cli, io
from imagio.errors import InputError
from imagio.planning.problem import is_outline, names_a_lesion, resolve_target
from imagio.volume import Volume
from imagio.web.content import default_target, target_choices


def _grid(shape=(24, 30, 28)):
    # oblique, flipped, anisotropic: the refusal must not depend on the grid
    a = np.deg2rad(20.0)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    m = np.eye(4)
    m[:3, :3] = rot @ np.diag([-1.1, 0.8, 2.5])
    m[:3, 3] = (10.0, -20.0, 300.0)
    return shape, m


def _labels():
    shape, m = _grid()
    arr = np.zeros(shape, np.uint8)
    arr[2:-2, 3:-3, 3:-3] = 1                                     # body
    arr[8:16, 10:20, 10:18] = 2                                   # quadriceps (a compartment)
    arr[10:14, 12:17, 12:16] = 3                                  # the tumour
    return Volume(arr, m, labels={1: "body", 2: "quadriceps_femoris", 3: "GTV_Mass"})


def test_lesion_names_and_the_outline():
    from imagio.planning.sarcoma.rules import config

    for n in config()["patterns"]["tumour"] + ["sarcoma_1", "liver_tumor_2", "lung_nodule_1", "metastasis_3",
                                                "GTV_Mass", "mass_2", "Lesion 4", "soft-tissue-sarcoma"]:
        assert names_a_lesion(n), n
    for n in ("body", "masseter", "quadriceps_femoris", "thigh_anterior", "liver", "femur", "lung_upper_lobe_left"):
        assert not names_a_lesion(n), n
    assert is_outline("body") and is_outline("body_trunc") and is_outline("skin") and not is_outline("liver")


def test_named_target_body_is_refused_with_the_lesions_named():
    labels = _labels()
    with pytest.raises(InputError) as e:
        resolve_target(labels, "body")
    msg = str(e.value)
    assert "outline" in msg and "GTV_Mass" in msg and "\n" not in msg
    # a point in the body's unlabelled tissue is still a target (a user's click)
    t = resolve_target(labels, "GTV_Mass")
    assert t.name == "GTV_Mass"


def _write_case(folder, names_file):
    """The CT (air, soft tissue in the body, a denser tumour) and the label map of `_labels`, with
    their names in ``names_file`` in ``folder``."""
    labels = _labels()
    shape, m = _grid()
    ct = np.full(shape, -1000, np.int16)
    ct[labels.array == 1] = 40
    ct[labels.array == 3] = 55
    io.write_image(Volume(ct, m), folder / "ct.nii.gz")
    io.write_labels(labels, folder / "labels.nii.gz")
    (folder / names_file).write_text(json.dumps({str(k): v for k, v in labels.labels.items()}))


def test_cli_plan_and_sarcoma_refuse_body(tmp_path, capsys):
    _write_case(tmp_path, "names.json")
    for extra in ([], ["--procedure", "sarcoma-biopsy"]):
        out = tmp_path / f"out{len(extra)}"
        code = cli.main(["plan", str(tmp_path / "ct.nii.gz"), "--labels", str(tmp_path / "labels.nii.gz"),
                         "--label-names", str(tmp_path / "names.json"), "--target", "body", "--out", str(out)] + extra)
        err = capsys.readouterr().err
        assert code == 2, (extra, err)
        lines = [ln for ln in err.splitlines() if ln.startswith("imagio: error")]
        assert len(lines) == 1 and "outline" in lines[0], err
        assert not (out / "plan.json").exists()


def test_sarcoma_planner_refuses_a_named_structure():
    from imagio.planning.sarcoma.plan import _tumour_label
    from imagio.planning.sarcoma.rules import classify

    labels = _labels()
    labels.labels[4] = "liver"   # a catalogue organ named as the tumour
    anat = classify(labels)
    for name, words in (("body", "patient outline"), ("liver", "named anatomical structure"),
                        ("quadriceps_femoris", "compartment")):
        with pytest.raises(InputError) as e:
            _tumour_label(labels, anat, name)
        assert words in str(e.value) and "GTV_Mass" in str(e.value)
    assert _tumour_label(labels, anat, "GTV_Mass")[0] == "GTV_Mass"
    assert _tumour_label(labels, anat, None)[0] == "GTV_Mass"


def test_web_offers_lesions_first_never_the_outline():
    names = ["body", "quadriceps_femoris", "thigh_medial_compartment", "femur", "sarcoma_1", "GTV_Mass"]
    ch = target_choices(names)
    assert ch[:2] == ["sarcoma_1", "GTV_Mass"] and "body" not in ch and set(ch) == set(names) - {"body"}
    assert default_target(ch) == "sarcoma_1"
    assert default_target(target_choices(["body", "liver", "femur"])) is None


def test_workstation_opens_a_sarcoma_case_on_the_tumour(tmp_path):
    pytest.importorskip("trame_slicer")
    from trame.app import get_server

    from imagio.web.app import PlanningWorkstation

    _write_case(tmp_path, "labels.labels.json")
    ws = PlanningWorkstation(get_server("imagio-test-outline", client_type="vue3"), ct_path=str(tmp_path / "ct.nii.gz"),
                             labels_path=str(tmp_path / "labels.nii.gz"), out_dir=tmp_path / "out")
    asyncio.run(ws.load_case())
    assert ws.state.target == "GTV_Mass", ws.state.targets
    assert "body" not in ws.state.targets
