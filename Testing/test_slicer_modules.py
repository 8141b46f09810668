"""Static checks of the Slicer extension: the modules cannot run here (no Slicer application),
so check what Slicer's build and loader rely on."""

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["IMAGIOSegmentation", "IMAGIOPlanning"]


def cmake_list(text: str, var: str, module: str) -> set[str]:
    m = re.search(r"set\(\s*" + var + r"\s+(.*?)\)", text, re.S)
    assert m, f"{var} not set"
    return {t.replace("${MODULE_NAME}", module) for t in m.group(1).split()}


def parameter_fields(tree: ast.Module) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
                getattr(d, "id", getattr(d, "attr", None)) == "parameterNodeWrapper" for d in node.decorator_list):
            return {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class")


def ui_widgets(ui_path: Path):
    root = ET.parse(ui_path).getroot()
    names, params = set(), {}
    for w in root.iter("widget"):
        names.add(w.get("name"))
        for p in w.findall("property"):
            if p.get("name") == "SlicerParameterName":
                params[w.get("name")] = p.find("string").text
    return root, names, params


def test_top_level_cmake_adds_every_module_and_installs_imagio():
    text = (ROOT / "CMakeLists.txt").read_text()
    for m in MODULES:
        assert f"add_subdirectory({m})" in text
    assert "find_package(Slicer REQUIRED)" in text and "install(DIRECTORY imagio" in text
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_DESCRIPTION", "EXTENSION_DEPENDS"):
        assert f"set({key}" in text


@pytest.mark.parametrize("module", MODULES)
def test_every_module_file_is_listed_in_its_cmakelists(module):
    mdir = ROOT / module
    text = (mdir / "CMakeLists.txt").read_text()
    listed = cmake_list(text, "MODULE_PYTHON_SCRIPTS", module) | cmake_list(text, "MODULE_PYTHON_RESOURCES", module)
    for f in listed:
        assert (mdir / f).is_file(), f"{module}/CMakeLists.txt lists a missing file {f}"
    files = {p.relative_to(mdir).as_posix() for p in mdir.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.name != "CMakeLists.txt"
             and p.parts[len(mdir.parts)] != "Testing"}
    assert files <= listed, f"not listed in {module}/CMakeLists.txt: {sorted(files - listed)}"
    assert "slicerMacroBuildScriptedModule" in text and "add_subdirectory(Testing)" in text
    assert "add_subdirectory(Python)" in (mdir / "Testing" / "CMakeLists.txt").read_text()
    assert (mdir / "Testing" / "Python" / "CMakeLists.txt").is_file()


@pytest.mark.parametrize("module", MODULES)
def test_widgets_named_in_code_exist_in_the_ui(module):
    src = (ROOT / module / f"{module}.py").read_text()
    _, names, _ = ui_widgets(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    used = set(re.findall(r"self\.ui\.(\w+)", src))
    assert used, "the widget uses no ui element?"
    assert used <= names, f"widgets missing from the .ui: {sorted(used - names)}"


@pytest.mark.parametrize("module", MODULES)
def test_slicer_parameter_names_match_parameter_node_fields(module):
    tree = ast.parse((ROOT / module / f"{module}.py").read_text())
    fields = parameter_fields(tree)
    root, _, params = ui_widgets(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    assert params, "no SlicerParameterName in the .ui"
    unknown = {w: p for w, p in params.items() if p not in fields}
    assert not unknown, f"SlicerParameterName without a parameter field: {unknown}"
    assert len(set(params.values())) == len(params), "two widgets bound to one parameter"


@pytest.mark.parametrize("module", MODULES)
def test_ui_custom_widgets_are_declared(module):
    root, _, _ = ui_widgets(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    declared = {c.find("class").text for c in root.iter("customwidget")}
    used = {w.get("class") for w in root.iter("widget")}
    custom = {c for c in used if c.startswith(("ctk", "qMRML", "qSlicer"))}
    assert custom <= declared, f"undeclared custom widgets: {custom - declared}"


@pytest.mark.parametrize("module", MODULES)
def test_module_follows_the_scripted_template(module):
    tree = ast.parse((ROOT / module / f"{module}.py").read_text())
    classes = {c.name: [getattr(b, "id", "") for b in c.bases] for c in tree.body if isinstance(c, ast.ClassDef)}
    assert "ScriptedLoadableModule" in classes[module]
    assert "ScriptedLoadableModuleWidget" in classes[f"{module}Widget"]
    assert "ScriptedLoadableModuleLogic" in classes[f"{module}Logic"]
    assert "ScriptedLoadableModuleTest" in classes[f"{module}Test"]
    # no heavy import at module import time: imagio, numpy, torch only inside functions
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    mods = {a.name for n in top if isinstance(n, ast.Import) for a in n.names} | \
           {n.module for n in top if isinstance(n, ast.ImportFrom)}
    assert not {m for m in mods if m and m.split(".")[0] in ("imagio", "numpy", "torch", "scipy", "SimpleITK")}
    assert (ROOT / module / "Resources" / "Icons" / f"{module}.png").read_bytes()[:4] == b"\x89PNG"


PY_FILES = sorted(p for p in ROOT.rglob("*.py") if ".venv" not in p.parts and "__pycache__" not in p.parts
                  and not any(part.startswith(("demo_out", "build")) for part in p.parts))


@pytest.mark.parametrize("minor", [10, 11, 12])
def test_every_python_file_parses_for_python_3_10_to_3_12(minor):
    bad = []
    for p in PY_FILES:
        try:
            ast.parse(p.read_text(), filename=str(p), feature_version=(3, minor))
        except SyntaxError as e:
            bad.append(f"{p.relative_to(ROOT)}:{e.lineno}: {e.msg}")
    assert not bad, bad
