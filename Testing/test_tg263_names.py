"""Radiotherapy structure names (AAPM TG-263, Mayo et al. IJROBP 2018) and clinical abbreviations
are read as the catalogue's (TotalSegmentator's) names: new-user trials brought label maps with
"External", "IVC", "Kidney_R", "Lung_L" and vertebrae, which were kept out as unknown (forbidden,
margin lost). Every listed name's role is checked against the role a clinician gives that
structure, written here by kind of structure, not read from the catalogue; a TG-263 name of
several structures maps to a catalogue group or stays unknown with its own warning."""

import json

import numpy as np
import pytest
from conftest import rotation

from imagio import anatomy, io
from imagio.planning import PlanningProblem, plan
from imagio.planning.synthetic import synthetic_torso

# the role a clinician gives each kind of structure on a percutaneous needle path
PASSABLE = {"Body", "External", "Skin", "Musc", "Lungs", "Lung_Total", "Lung_L", "Lung_R", "Lung_LUL", "Lung_LLL",
            "Lung_RUL", "Lung_RML", "Lung_RLL", "Liver", "Diaphragm"}
AVOID = {"Glnd_Adrenal_L", "Glnd_Adrenal_R", "Glnd_Thyroid", "Prostate"}   # crossed only when no other way
ORGANS_AT_RISK = {"Trachea", "Bronchus", "Esophagus", "Oesophagus", "Heart", "SpinalCord", "Brain", "Spleen",
                  "Stomach", "Pancreas", "Gallbladder", "Duodenum", "Colon", "Bowel", "Bowel_Small", "Jejunum_Ileum",
                  "Kidney_L", "Kidney_R", "Kidneys", "Bladder"}
BONES = ({"Bone", "Skull", "Sacrum", "Rib", "VBs"} | {f"{b}_{s}" for b in ("Clavicle", "Scapula", "Humerus", "Femur")
                                                    for s in "LR"}
         | {f"Rib{i:02d}_{s}" for i in range(1, 13) for s in "LR"}
         | {f"VB_C{i}" for i in range(1, 8)} | {f"VB_T{i:02d}" for i in range(1, 13)}
         | {f"VB_L{i}" for i in range(1, 6)} | {"VB_S1"})
VESSELS = {"GreatVes", "A_Aorta", "A_Brachiocephls", "A_Carotid_L", "A_Carotid_R", "A_Subclavian_L", "A_Subclavian_R",
           "A_Pulmonary", "A_Iliac_L", "A_Iliac_R", "V_Venacava_I", "V_Venacava_S", "V_Brachioceph_L",
           "V_Brachioceph_R", "V_Pulmonary", "V_Portal", "V_Iliac_L", "V_Iliac_R", "IVC", "SVC"}
CLINICIAN = ({n: "passable" for n in PASSABLE} | {n: "avoid" for n in AVOID} | {n: "forbidden" for n in ORGANS_AT_RISK}
             | {n: "forbidden" for n in BONES} | {n: "margin" for n in VESSELS})


def test_every_radiotherapy_name_keeps_the_role_a_clinician_gives_it():
    """Every TG-263 name and abbreviation of tg263_synonyms.json (and its reverse-order name)
    reads as a catalogue structure whose role is the clinician's (vessels keep a clearance);
    none maps to something more passable. A group name without a catalogue group is never read
    as one of its parts. The reverse-order rule gives the worksheet's reverse names."""
    doc = anatomy.synonyms_doc()
    tg263 = [e["tg263"] for e in doc["synonyms"]]
    names = tg263 + [e["alias"] for e in doc["abbreviations"]]
    assert set(names) == set(CLINICIAN), set(names) ^ set(CLINICIAN)   # each entry has its expected role
    for n in names:
        c = anatomy.canonical_name(n)
        s = anatomy.get(c)
        assert anatomy.is_known(c) and s.role == CLINICIAN[n], (n, c, s.role)
        if CLINICIAN[n] == "margin":
            assert s.margin_mm >= 3.0, (n, c, s.margin_mm)
        for spelling in ([anatomy.reverse_order_name(n)] if n in tg263 else []) + [n.upper(), n.replace("_", " ").lower()]:
            assert anatomy.canonical_name(spelling) == c, (spelling, c)
    # TG-263 worksheet (v20170815) reverse-order names, literally
    for rev, c in (("R_Kidney", "kidney_right"), ("I_Venacava_V", "inferior_vena_cava"), ("LUL_Lung", "lung_upper_lobe_left"),
                   ("L_Rib09", "rib_left_9"), ("T01_VB", "vertebrae_T1"), ("L_Brachioceph_V", "brachiocephalic_vein_left"),
                   ("R_Adrenal_Glnd", "adrenal_gland_right"), ("Small_Bowel", "small_bowel")):
        assert anatomy.canonical_name(rev) == c, rev
    for g in doc["groups_without_catalogue_group"]:
        for n in (g["tg263"], anatomy.reverse_order_name(g["tg263"])):
            assert anatomy.canonical_name(n) == n and not anatomy.is_known(n) and anatomy.group_without_catalogue_name(n)
    assert anatomy.canonical_name("Lungs") == "lung" and len(anatomy.catalogue()["lung"].name) == 4
    # names kept as written: derived, PRV, partial and helper structures, unknown organs
    for n in ("Lungs-GTV", "SpinalCord_PRV05", "Lung_L~", "_Lung_L", "zLung_L", "Rectum", "Liver_Tumor_X"):
        assert anatomy.canonical_name(n) == n, n
    # the catalogue's own names in any case and with any separator; Liver_Tumor_1 still numbered
    for n, c in (("Vertebrae L1", "vertebrae_L1"), ("VERTEBRAE_T12", "vertebrae_T12"), ("Spinal Cord", "spinal_cord"),
                 ("BODY", "body"), ("Liver_Tumor_1", "liver_tumor_1"), ("inferior-vena-cava", "inferior_vena_cava")):
        assert anatomy.canonical_name(n) == c, n


def _torso_with_ivc_and_kidney(names: dict):
    """The synthetic torso on an oblique, flipped, anisotropic grid with an IVC (r 10 mm, along
    S-I behind the liver) and a right kidney (ellipsoid below the liver) added, RAS mm."""
    d = rotation((1, 2, 3), 15.0) @ np.diag([1.0, -1.0, 1.0])
    ct, lab = synthetic_torso((3.0, 2.6, 3.4), direction=d)
    m = lab.ijk_to_ras
    kji = np.indices(lab.shape).reshape(3, -1)[::-1].T.astype(float)   # (i, j, k)
    x, y, z = (kji @ m[:3, :3].T + m[:3, 3]).T.reshape(3, *lab.shape)
    a = lab.array.copy()
    a[((x - 20) ** 2 + (y + 40) ** 2 <= 10 ** 2) & (a > 0)] = 10
    a[((x - 60) / 25) ** 2 + ((y + 55) / 20) ** 2 + ((z + 60) / 40) ** 2 <= 1] = 11
    return ct, lab.with_array(a, labels={v: names[v] for v in np.unique(a).tolist() if v})


TS_NAMES = {1: "body", 2: "liver", 3: "liver_tumor", 4: "aorta", 5: "vertebrae_L1", 6: "portal_vein",
            7: "lung_lower_lobe_right", 8: "lung_lower_lobe_left", 9: "lung_upper_lobe_right", 10: "inferior_vena_cava",
            11: "kidney_right"}
RT_NAMES = {1: "External", 2: "Liver", 3: "liver_tumor", 4: "A_Aorta", 5: "VB_L1", 6: "V_Portal", 7: "Lung_RLL",
            8: "Lung_LLL", 9: "Lung_RUL", 10: "IVC", 11: "Kidney_R"}


def _read(tmp_path, lab, names, stem):
    io.write_image(lab.with_array(lab.array, labels={}), tmp_path / f"{stem}.nii.gz")
    (tmp_path / f"{stem}.labels.json").write_text(json.dumps({str(k): v for k, v in names.items()}))
    return io.read_labels(tmp_path / f"{stem}.nii.gz")


def test_radiotherapy_label_map_plans_as_the_catalogue_names(tmp_path):
    """A label map named as a radiotherapy structure set (External, IVC, Kidney_R, VB_L1, ...)
    read from NIfTI + names is planned exactly as the same map in TotalSegmentator's names:
    the same roles and margins (IVC a 5 mm margin, Kidney_R forbidden as kidney_right), the same
    proposals, the renames said, and no unknown-structure warning. A role typed as R_Kidney
    applies to kidney_right."""
    ct, lab = _torso_with_ivc_and_kidney(RT_NAMES)
    read = _read(tmp_path, lab, RT_NAMES, "rt")
    assert read.labels == {v: TS_NAMES[v] for v in read.labels}, read.labels
    assert any("'Kidney_R' as 'kidney_right'" in w and "'IVC' as 'inferior_vena_cava'" in w
               for w in read.warnings), read.warnings
    prob = PlanningProblem.build(ct, read, "liver_tumor")
    spec = {s.name: (s.role, s.margin_mm) for s in prob.structures}
    assert spec["inferior_vena_cava"] == ("margin", 5.0) and spec["kidney_right"][0] == "forbidden"
    assert spec["body"][0] == "passable" and spec["aorta"] == ("margin", 5.0), spec
    assert not any("not in IMAGIO's catalogue" in w or "TG-263" in w for w in prob.warnings), prob.warnings
    ref = PlanningProblem.build(ct, lab.with_array(lab.array, labels={v: TS_NAMES[v] for v in lab.labels}),
                                "liver_tumor")
    assert spec == {s.name: (s.role, s.margin_mm) for s in ref.structures}
    got, want = plan(prob), plan(ref)
    assert got.proposals and len(got.proposals) == len(want.proposals)
    for a, b in zip(got.proposals, want.proposals):
        np.testing.assert_allclose(a.entry_ras, b.entry_ras, atol=1e-3)   # NIfTI keeps the affine in float32
        assert a.score == pytest.approx(b.score)
    typed = PlanningProblem.build(ct, read, "liver_tumor", roles={"R_Kidney": "avoid"})
    assert {s.name: s.role for s in typed.structures}["kidney_right"] == "avoid"


def test_group_names_read_as_the_group_or_kept_out_with_a_warning(tmp_path):
    """Lungs (one label for all lobes) reads as the catalogue's lung group, passable like the
    lobes; Bowel_Large (caecum, colon and rectum; no catalogue group) is never read as colon:
    kept out as forbidden, with its own warning, not in the unknown-structures list."""
    names = dict(RT_NAMES)
    ct, lab = _torso_with_ivc_and_kidney(names)
    a = lab.array.copy()
    a[np.isin(a, (8, 9))] = 7
    a[(a == 11)] = 12
    names.update({7: "Lungs", 12: "Bowel_Large", 13: "Herz"})
    a[(a == 1) & (np.indices(a.shape)[0] == a.shape[0] // 2) & (np.indices(a.shape)[1] < 12)] = 13
    lab = lab.with_array(a, labels={v: names[v] for v in np.unique(a).tolist() if v})
    read = _read(tmp_path, lab, lab.labels, "groups")
    assert read.labels[7] == "lung" and read.labels[12] == "Bowel_Large", read.labels
    prob = PlanningProblem.build(ct, read, "liver_tumor")
    spec = {s.name: s.role for s in prob.structures}
    assert spec["lung"] == "passable" and spec["Bowel_Large"] == "forbidden" and spec["Herz"] == "forbidden"
    group = [w for w in prob.warnings if w.startswith("Bowel_Large is a radiotherapy (TG-263) name of several")]
    assert len(group) == 1 and "colon" in group[0], prob.warnings
    unknown = [w for w in prob.warnings if "not in IMAGIO's catalogue" in w]
    assert len(unknown) == 1 and "Herz" in unknown[0] and "Bowel_Large" not in unknown[0], unknown
