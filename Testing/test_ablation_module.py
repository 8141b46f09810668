"""Static checks of the IMAGIOPlanning ablation section (the module cannot run here)."""

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UI = ROOT / "IMAGIOPlanning" / "Resources" / "UI" / "IMAGIOPlanning.ui"
SRC = ROOT / "IMAGIOPlanning" / "IMAGIOPlanning.py"


def _section():
    root = ET.parse(UI).getroot()
    return next(w for w in root.iter("widget") if w.get("name") == "ablationCollapsibleButton")


def test_ablation_section_has_device_setting_apply_and_results():
    sec = _section()
    widgets = {w.get("name"): w.get("class") for w in sec.iter("widget") if w.get("name")}
    assert widgets["ablationDeviceComboBox"] == "QComboBox"
    assert widgets["ablationSettingComboBox"] == "QComboBox"
    assert widgets["ablationApplyButton"] == "QPushButton"
    assert widgets["ablationTableView"] == "qMRMLTableView"
    assert widgets["ablationTableSelector"] == "qMRMLNodeComboBox"
    assert "ablationMultiProbeCheckBox" in widgets and "ablationMarginSpinBox" in widgets


def test_logic_has_ablation_methods_delegating_to_imagio():
    tree = ast.parse(SRC.read_text())
    logic = next(c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == "IMAGIOPlanningLogic")
    methods = {f.name: ast.unparse(f) for f in logic.body if isinstance(f, ast.FunctionDef)}
    for name, target in (("ablationDevices", "load_catalogue"), ("ablationSettings", "get_device"),
                         ("ablationZones", "ablation_from_nodes"), ("observeAblation", "observe_ablation")):
        assert name in methods and target in methods[name] and "ensureImagio(" in methods[name]


