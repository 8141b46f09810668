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


# --- checks that would have caught the faults of issue 16 without a Slicer application ---------

def module_source(module: str) -> str:
    return (ROOT / module / f"{module}.py").read_text()


def module_tree(module: str) -> ast.Module:
    return ast.parse(module_source(module))


def ui_root(module: str):
    return ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui").getroot()


def parameter_annotations(tree: ast.Module) -> dict[str, ast.AnnAssign]:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
                getattr(d, "id", getattr(d, "attr", None)) == "parameterNodeWrapper" for d in node.decorator_list):
            return {s.target.id: s for s in node.body if isinstance(s, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class")


@pytest.mark.parametrize("module", MODULES)
def test_every_mrml_widget_in_the_ui_receives_the_scene(module):
    """Slicer's module template connects the top qMRMLWidget's mrmlSceneChanged(vtkMRMLScene*)
    to setMRMLScene(vtkMRMLScene*) of every MRML widget; without it a node selector or table
    view stays empty (Utilities/Templates/Modules/Scripted/Resources/UI/TemplateKey.ui)."""
    root = ui_root(module)
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == module
    mrml = {w.get("name") for w in top.iter("widget")
            if w.get("class", "").startswith(("qMRML", "qSlicer")) and w is not top}
    connected = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("sender") == module and c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
                 and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"}
    assert mrml, "no MRML widget?"
    assert mrml <= connected, f"MRML widgets without the scene: {sorted(mrml - connected)}"


# The connector rules of Slicer's parameterNodeWrapper, read from
# Base/Python/slicer/parameterNodeWrapper/guiConnectors.py (identical at tags v5.10.0 and main
# 583e9b3; v5.8.1 has the same QComboBox rule): widget class -> the unannotated types it can
# represent (canRepresent), and what create() additionally demands.
CONNECTOR_TYPES = {
    "QCheckBox": {"bool"}, "ctkCheckBox": {"bool"}, "QPushButton": {"bool"},
    "ctkCheckablePushButton": {"bool"},
    "QSlider": {"int"}, "QSpinBox": {"int"},
    "QDoubleSpinBox": {"float", "int"}, "ctkSliderWidget": {"float", "int"},
    "qMRMLSliderWidget": {"float", "int"}, "ctkDoubleSlider": {"float", "int"},
    "ctkDoubleSpinBox": {"float", "int"}, "qMRMLSpinBox": {"float", "int"},
    # QComboBoxToStringableConnector: int/float/str/bool only WITH a Choice annotation
    # ("ComboBoxToStringableConnector requires the Choice annotation to be used."), or an Enum
    "QComboBox": {"int", "float", "str", "bool"}, "ctkComboBox": {"int", "float", "str", "bool"},
    "QLineEdit": {"str"}, "QLabel": {"str"}, "QTextEdit": {"str"},
    # pathlib types only (a str field cannot be bound to a path widget)
    "ctkPathLineEdit": {"Path", "PosixPath", "PurePath", "PurePosixPath", "PureWindowsPath", "WindowsPath",
                        "pathlib.Path"},
    "ctkDirectoryButton": {"Path", "PosixPath", "PurePath", "PurePosixPath", "PureWindowsPath", "WindowsPath",
                           "pathlib.Path"},
}
UNBOUNDED_FAILS = {"ctkSliderWidget", "qMRMLSliderWidget"}  # "Cannot have a connection to ctkSliderWidget ... unbounded"


def connector_rules_from_slicer_source(text: str) -> dict[str, set[str]]:
    """widget class -> unannotated types, read from the canRepresent methods of Slicer's
    guiConnectors.py (``type(widget) in (qt.A, ctk.B)`` / ``== qt.A`` and
    ``unannotatedType(datatype) == T`` / ``in (T, ...)``)."""
    rules: dict[str, set[str]] = {}
    for cls in (n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ClassDef)):
        can = next((f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "canRepresent"), None)
        if can is None:
            continue
        widgets, types = set(), set()
        for cmp in (n for n in ast.walk(can) if isinstance(n, ast.Compare)):
            left = ast.unparse(cmp.left)
            right = cmp.comparators[0]
            names = {ast.unparse(e).split(".")[-1] for e in (right.elts if isinstance(right, ast.Tuple) else [right])}
            if left == "type(widget)":
                widgets |= names
            elif left == "unannotatedType(datatype)":
                types |= names
        for w in widgets:
            if types:
                rules.setdefault(w, set()).update(types)
    return rules


def slicer_gui_connectors_source() -> str | None:
    """Base/Python/slicer/parameterNodeWrapper/guiConnectors.py of a Slicer source tree named by
    $IMAGIO_SLICER_SOURCE (the checkout or the file), if any."""
    import os

    where = os.environ.get("IMAGIO_SLICER_SOURCE")
    if not where:
        return None
    path = Path(where)
    if path.is_dir():
        path = path / "Base" / "Python" / "slicer" / "parameterNodeWrapper" / "guiConnectors.py"
    return path.read_text() if path.is_file() else None


def test_connector_table_matches_slicers_source():
    """The table above against Slicer's own guiConnectors.py (run with IMAGIO_SLICER_SOURCE set
    to a Slicer checkout; checked against tags v5.10.0 and main 583e9b3)."""
    text = slicer_gui_connectors_source()
    if text is None:
        pytest.skip("IMAGIO_SLICER_SOURCE (a Slicer source checkout) is not set")
    rules = connector_rules_from_slicer_source(text)
    differ = {w: (sorted(types), sorted(CONNECTOR_TYPES[w] - {"pathlib.Path"})) for w, types in rules.items()
              if w in CONNECTOR_TYPES and CONNECTOR_TYPES[w] - {"pathlib.Path"} != types}
    assert not differ, f"widget: (Slicer's types, ours): {differ}"
    assert set(CONNECTOR_TYPES) <= set(rules), f"not in Slicer's connectors: {set(CONNECTOR_TYPES) - set(rules)}"
    assert "requires the Choice annotation" in text


def split_annotation(ann: ast.expr):
    """(base type name, [annotation call names with their node]) of ``T`` or ``Annotated[T, ...]``."""
    if isinstance(ann, ast.Subscript) and getattr(ann.value, "id", None) == "Annotated":
        elts = ann.slice.elts
        return ast.unparse(elts[0]), [(getattr(e.func, "id", getattr(e.func, "attr", "")), e)
                                      for e in elts[1:] if isinstance(e, ast.Call)]
    return ast.unparse(ann), []


def ui_bound_widgets(module: str) -> dict[str, tuple[str, str, ET.Element]]:
    """SlicerParameterName -> (widget name, widget class, element)."""
    out = {}
    for w in ui_root(module).iter("widget"):
        for p in w.findall("property"):
            if p.get("name") == "SlicerParameterName":
                out[p.find("string").text] = (w.get("name"), w.get("class"), w)
    return out


@pytest.mark.parametrize("module", MODULES)
def test_every_bound_widget_has_a_slicer_gui_connector(module):
    """What parameterNodeWrapper.connectGui does in setup(): each widget bound by
    SlicerParameterName needs a GuiConnector for its field's type, else setup() raises."""
    fields = parameter_annotations(module_tree(module))
    problems = []
    for param, (wname, wclass, element) in ui_bound_widgets(module).items():
        base, extras = split_annotation(fields[param].annotation)
        names = {n for n, _ in extras}
        if wclass == "qMRMLNodeComboBox":
            node_types = {s.text for s in element.iter("string")
                          if s.text and s.text.startswith("vtkMRML")}
            if base not in node_types:
                problems.append(f"{wname}: field {param}: {base} not among the combo box's nodeTypes {node_types}")
            continue
        if wclass not in CONNECTOR_TYPES:
            problems.append(f"{wname}: no Slicer connector for widget class {wclass}")
            continue
        if base not in CONNECTOR_TYPES[wclass]:
            problems.append(f"{wname}: {wclass} cannot represent {param}: {base}")
        if wclass in ("QComboBox", "ctkComboBox"):
            if "Choice" not in names:
                problems.append(f"{wname}: {param}: {base} bound to a {wclass} needs Annotated[{base}, Choice([...])]")
            else:
                choice = next(e for n, e in extras if n == "Choice")
                values = ast.literal_eval(choice.args[0]) if not isinstance(choice.args[0], ast.Name) else \
                    module_constant(module, choice.args[0].id)
                default = fields[param].value
                if default is not None and ast.literal_eval(default) not in values:
                    problems.append(f"{param}: default {ast.unparse(default)} not in its Choice {values}")
        if wclass in UNBOUNDED_FAILS and "WithinRange" not in names:
            problems.append(f"{wname}: {wclass} needs a bounded type (WithinRange)")
    assert not problems, problems


def module_constant(module: str, name: str):
    for node in module_tree(module).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} is not a module constant")


def test_the_connector_rule_catches_an_unannotated_combobox_field():
    """The check above on the fault issue 16 found: a plain str bound to a QComboBox."""
    tree = ast.parse("@parameterNodeWrapper\nclass P:\n    modelName: str = 'x'\n    dev: Annotated[str, Choice(['a'])] = 'a'\n")
    fields = parameter_annotations(tree)
    base, extras = split_annotation(fields["modelName"].annotation)
    assert base == "str" and "Choice" not in {n for n, _ in extras}
    base, extras = split_annotation(fields["dev"].annotation)
    assert base == "str" and "Choice" in {n for n, _ in extras}


def connected_handlers(src: str) -> dict[str, str]:
    """{'widget.signal': handler method} of ``self.ui.W.connect("signal", self.handler)`` calls."""
    return {f"{w}.{s}": h for w, s, h in
            re.findall(r'self\.ui\.(\w+)\.connect\("([^"]+)",\s*self\.(\w+)\)', src)}


def method(tree: ast.Module, cls: str, name: str) -> ast.FunctionDef:
    c = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    return next(n for n in c.body if isinstance(n, ast.FunctionDef) and n.name == name)


@pytest.mark.parametrize("module", MODULES)
def test_unbound_combo_boxes_keep_their_value_in_the_parameter_node(module):
    """Catalogue-filled combo boxes (models, ablation devices and settings, scopes) cannot have a
    fixed Choice, so they are not bound; their handler must store the choice in a parameter field
    (saved with the scene, restored on reload)."""
    tree, src = module_tree(module), module_source(module)
    fields = set(parameter_annotations(tree))
    bound = {w for w, _, _ in ui_bound_widgets(module).values()}
    combos = {w.get("name") for w in ui_root(module).iter("widget") if w.get("class") == "QComboBox"} - bound
    handlers = connected_handlers(src)
    problems = []
    for combo in sorted(combos):
        h = handlers.get(f"{combo}.currentIndexChanged(int)")
        if h is None:
            problems.append(f"{combo}: no currentIndexChanged handler")
            continue
        fn = method(tree, f"{module}Widget", h)
        stored = {t.attr for n in ast.walk(fn) if isinstance(n, ast.Assign) for t in n.targets
                  if isinstance(t, ast.Attribute) and ast.unparse(t.value) in ("self._parameterNode", "p")}
        if not stored & fields:
            problems.append(f"{combo}: {h} stores nothing in the parameter node")
    assert not problems, problems


@pytest.mark.parametrize("module", MODULES)
def test_action_buttons_are_disabled_until_their_inputs_are_set(module):
    """Slicer's template: _checkCanApply observes the parameter node and enables Apply only when
    the inputs are set. Every connected push button but Cancel is switched there."""
    tree, src = module_tree(module), module_source(module)
    buttons = {w.get("name") for w in ui_root(module).iter("widget") if w.get("class") == "QPushButton"}
    clicked = {k.split(".")[0] for k in connected_handlers(src) if k.endswith(".clicked(bool)")}
    actions = (clicked & buttons) - {"cancelButton"}
    check = ast.unparse(method(tree, f"{module}Widget", "_checkCanApply"))
    missing = {b for b in actions if f"self.ui.{b}.enabled" not in check}
    assert actions and not missing, f"buttons never disabled: {sorted(missing)}"
    assert re.search(r"addObserver\(self\._parameterNode, vtk\.vtkCommand\.ModifiedEvent, self\._checkCanApply\)",
                     src), "_checkCanApply does not observe the parameter node"


@pytest.mark.parametrize("module", MODULES)
def test_long_work_can_be_cancelled(module):
    """A Cancel button in the panel, wired to IMAGIOLib.longrun.LongRun whose progress callback
    returns False on request (imagio.progress turns it into errors.Cancelled), and every Logic
    call that takes a progress callback gets it."""
    tree, src = module_tree(module), module_source(module)
    names = {w.get("name") for w in ui_root(module).iter("widget")}
    assert {"cancelButton", "progressBar", "statusLabel"} <= names
    assert "LongRun(self.ui.progressBar, self.ui.statusLabel, self.ui.cancelButton" in src
    longrun = ast.parse((ROOT / "IMAGIOSegmentation" / "IMAGIOLib" / "longrun.py").read_text())
    progress = method(longrun, "LongRun", "progress")
    returns = [n for n in ast.walk(progress) if isinstance(n, ast.Return)]
    assert returns and all(ast.unparse(r.value) == "not self.cancelRequested" for r in returns)
    assert "cancelButton.connect('clicked(bool)', self.cancel)" in ast.unparse(longrun)
    logic = {n.name: n for n in next(c for c in tree.body if isinstance(c, ast.ClassDef)
                                     and c.name == f"{module}Logic").body if isinstance(n, ast.FunctionDef)}
    takes_progress = {n for n, f in logic.items() if "progress" in {a.arg for a in f.args.args}}
    calls = [c for c in ast.walk(tree) if isinstance(c, ast.Call) and ast.unparse(c.func).startswith("self.logic.")
             and c.func.attr in takes_progress]
    assert calls, "no long Logic call?"
    missing = [ast.unparse(c)[:60] for c in calls if "self.longRun.progress" not in ast.unparse(c)]
    assert not missing, f"long work without progress/cancel: {missing}"


TRANSLATED_CALLS = {"setText", "errorDisplay", "confirmOkCancelDisplay", "tryWithErrorDisplay", "setToolTip",
                    "RuntimeError", "infoDisplay", "warningDisplay", "getOpenFileName"}


def untranslated(expr: ast.expr) -> bool:
    """A user-facing text written as a literal or f-string instead of _("...")."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return bool(re.search(r"[A-Za-z]{2}", expr.value))
    if isinstance(expr, ast.JoinedStr):
        return True
    if isinstance(expr, ast.BinOp):
        return untranslated(expr.left) or untranslated(expr.right)
    if isinstance(expr, ast.IfExp):
        return untranslated(expr.body) or untranslated(expr.orelse)
    return False


@pytest.mark.parametrize("module", MODULES)
def test_user_facing_strings_are_translatable(module):
    """Slicer's i18n convention (slicer.i18n.tr as _): titles, help, messages and labels go
    through _() so that Slicer's translation files can reach them."""
    tree = module_tree(module)
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", None))
            if name in TRANSLATED_CALLS:
                for a in node.args[:1] + (node.args[1:3] if name == "getOpenFileName" else []):
                    if untranslated(a):
                        bad.append(f"line {node.lineno}: {name}({ast.unparse(a)[:50]})")
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if ast.unparse(t) in ("self.parent.title", "self.parent.helpText", "self.parent.acknowledgementText") \
                        and untranslated(node.value):
                    bad.append(f"line {node.lineno}: {ast.unparse(t)}")
    assert not bad, bad
    src = module_source(module)
    assert "from slicer.i18n import tr as _" in src


def test_the_translation_check_flags_literals_and_fstrings():
    assert untranslated(ast.parse('"Planning failed."').body[0].value)
    assert untranslated(ast.parse('f"{n} probes"').body[0].value)
    assert not untranslated(ast.parse('_("Planning failed.")').body[0].value)
    assert not untranslated(ast.parse('_("{n} probes").format(n=1)').body[0].value)


@pytest.mark.parametrize("module", MODULES)
def test_help_text_links_to_the_documentation(module):
    tree = module_tree(module)
    init = method(tree, module, "__init__")
    help_ = next(n for n in ast.walk(init) if isinstance(n, ast.Assign)
                 and ast.unparse(n.targets[0]) == "self.parent.helpText")
    text = ast.unparse(help_.value)
    url = re.search(r"HELP_URL = \"([^\"]+)\"", module_source(module)).group(1)
    assert "<a href=" in text and ("{url}" in text or url in text)
    homepage = re.search(r'EXTENSION_HOMEPAGE "([^"]+)"', (ROOT / "CMakeLists.txt").read_text()).group(1)
    assert url.startswith(homepage)
    anchor = url.split("#")[1]
    headings = [re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", (ROOT / "README.md").read_text(), re.M)]
    assert anchor in headings, f"README has no section #{anchor}"


def test_the_phantom_is_registered_as_sample_data():
    """Registered at startupCompleted() with a custom loader (the phantom is generated, not
    downloaded) that calls imagio.mrml.sample.phantom_to_scene."""
    src = module_source("IMAGIOSegmentation")
    tree = module_tree("IMAGIOSegmentation")
    assert 'slicer.app.connect("startupCompleted()", registerSampleData)' in src
    reg = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "registerSampleData")
    call = next(n for n in ast.walk(reg) if isinstance(n, ast.Call)
                and getattr(n.func, "attr", "") == "registerCustomSampleDataSource")
    kw = {k.arg: k.value for k in call.keywords}
    assert {"category", "sampleName", "customDownloader", "thumbnailFileName"} <= set(kw)
    loader = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == kw["customDownloader"].id)
    assert "phantom_to_scene" in ast.unparse(loader)
    assert len(loader.args.args) == 1 and loader.args.defaults  # SampleData calls it with the source


def test_requirements_cover_what_slicer_does_not_bundle():
    """Slicer bundles numpy, scipy, SimpleITK, VTK and pydicom (its DICOM module uses it); every other dependency of the library must
    be in the requirements the modules install (kimimaro for bronchoscopy, matplotlib for the
    fly-through, fpdf2 for reports)."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    name = lambda spec: re.split(r"[<>=!~;\[\s]", spec, maxsplit=1)[0].lower()  # noqa: E731
    needed = {name(d) for d in deps} - {"numpy", "scipy", "simpleitk", "vtk", "pydicom"}
    sys_path_insert(ROOT / "IMAGIOSegmentation")
    from IMAGIOLib import dependencies

    listed = {name(r) for r in dependencies.requirementLines()}
    assert needed <= listed, f"not installed in Slicer: {sorted(needed - listed)}"
    assert not list((ROOT / "IMAGIOPlanning").rglob("requirements.txt")), "one requirements file for both modules"


def sys_path_insert(path):
    import sys

    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def test_dependency_helper_finds_missing_packages_and_refuses_old_python():
    sys_path_insert(ROOT / "IMAGIOSegmentation")
    from IMAGIOLib import dependencies

    assert dependencies.missingRequirements(["numpy>=1", "scipy"]) == []
    assert dependencies.missingRequirements(["imagio-no-such-distribution>=1"]) == ["imagio-no-such-distribution>=1"]
    with pytest.raises(RuntimeError, match=r"Slicer 5\.10 or later.*Python 3\.9"):
        dependencies.checkPythonVersion((3, 9, 10))
    dependencies.checkPythonVersion((3, 12, 10))
    assert dependencies.addImagioToPath(ROOT / "IMAGIOPlanning" / "IMAGIOPlanning.py") == str(ROOT)


# Python of each Slicer release (SuperBuild/External_python.cmake at the tag)
SLICER_PYTHON = {"5.6": (3, 9), "5.8": (3, 9), "5.10": (3, 12), "5.12": (3, 12)}


def test_minimum_slicer_version_matches_requires_python():
    import tomllib

    sys_path_insert(ROOT / "IMAGIOSegmentation")
    from IMAGIOLib import dependencies

    req = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = tuple(int(x) for x in re.match(r">=\s*(\d+)\.(\d+)", req).groups())
    assert minimum == dependencies.MIN_PYTHON
    slicer_min = dependencies.MIN_SLICER
    assert SLICER_PYTHON[slicer_min] >= minimum
    older = [v for v in SLICER_PYTHON if tuple(map(int, v.split("."))) < tuple(map(int, slicer_min.split(".")))]
    assert all(SLICER_PYTHON[v] < minimum for v in older), "the stated minimum Slicer is not the lowest that fits"
    readme = (ROOT / "README.md").read_text()
    claims = re.findall(r"Slicer \(?(\d+\.\d+) or later", readme)
    assert claims and set(claims) == {slicer_min}, claims
    assert f"Slicer {slicer_min} or later" in (ROOT / "CMakeLists.txt").read_text()


def signature_of(fn: ast.FunctionDef, drop_self: bool):
    """inspect.Signature of a function known only by its AST (the module files cannot be imported
    without Slicer): the same parameters, defaults replaced by None."""
    import inspect

    args = ast.arguments(posonlyargs=fn.args.posonlyargs, args=fn.args.args, vararg=fn.args.vararg,
                         kwonlyargs=fn.args.kwonlyargs, kw_defaults=[None if d is None else ast.Constant(None)
                                                                     for d in fn.args.kw_defaults],
                         kwarg=fn.args.kwarg, defaults=[ast.Constant(None) for _ in fn.args.defaults])
    stub = ast.Module(body=[ast.FunctionDef(name="stub", args=args, body=[ast.Pass()], decorator_list=[],
                                            returns=None, type_params=[])], type_ignores=[])
    for a in ast.walk(stub):
        if isinstance(a, ast.arg):
            a.annotation = None
    ns = {}
    exec(compile(ast.fix_missing_locations(stub), "<stub>", "exec"), ns)
    sig = inspect.signature(ns["stub"])
    if drop_self:
        sig = sig.replace(parameters=list(sig.parameters.values())[1:])
    return sig


def check_call(sig, call: ast.Call) -> str | None:
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return None
    try:
        sig.bind(*range(len(call.args)), **{k.arg: 0 for k in call.keywords})
    except TypeError as e:
        return f"line {call.lineno}: {ast.unparse(call)[:90]}: {e}"
    return None


def calls_with_callees(module: str):
    """(call, inspect.Signature) for each call whose callee is known: module functions, the
    Logic's and Widget's own methods (self.X, self.logic.X, XLogic().X), IMAGIOLib (imagioLib().M.X), and imagio
    functions imported inside the calling function (resolved by importing imagio)."""
    import importlib
    import inspect

    sys_path_insert(ROOT)
    sys_path_insert(ROOT / "IMAGIOSegmentation")
    tree = module_tree(module)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    classes = {c.name: {n.name: n for n in c.body if isinstance(n, ast.FunctionDef)}
               for c in tree.body if isinstance(c, ast.ClassDef)}
    logic = classes[f"{module}Logic"]
    try:
        import IMAGIOLib.dependencies
        import IMAGIOLib.longrun

        lib = IMAGIOLib
    except ImportError:  # checked by the dependency tests; keep checking the other calls
        lib = None

    out = []
    for cname, methods in classes.items():
        for fn in methods.values():
            imported = {}
            for n in ast.walk(fn):
                if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("imagio"):
                    mod = importlib.import_module(n.module)
                    for a in n.names:
                        imported[a.asname or a.name] = getattr(mod, a.name, None) or importlib.import_module(
                            f"{n.module}.{a.name}")
            for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
                f = call.func
                sig = None
                if isinstance(f, ast.Name) and f.id in functions:
                    sig = signature_of(functions[f.id], False)
                elif isinstance(f, ast.Name) and callable(imported.get(f.id)):
                    sig = inspect.signature(imported[f.id])
                elif isinstance(f, ast.Attribute):
                    owner = ast.unparse(f.value)
                    if owner == "self" and f.attr in methods:
                        sig = signature_of(methods[f.attr], True)
                    elif (owner == "self.logic" or owner == f"{module}Logic()") and f.attr in logic:
                        sig = signature_of(logic[f.attr], True)
                    elif owner in imported and not callable(imported[owner]) and hasattr(imported[owner], f.attr):
                        sig = inspect.signature(getattr(imported[owner], f.attr))
                    elif owner.startswith("imagioLib().") and lib is not None:
                        sig = inspect.signature(getattr(getattr(lib, owner.split(".")[1]), f.attr))
                if sig is not None:
                    out.append((call, sig))
    for fn in functions.values():
        for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
            if isinstance(call.func, ast.Name) and call.func.id in functions:
                out.append((call, signature_of(functions[call.func.id], False)))
            elif ast.unparse(call.func).startswith("imagioLib().") and lib is not None:
                owner = getattr(lib, ast.unparse(call.func.value).split(".")[1])
                out.append((call, inspect.signature(getattr(owner, call.func.attr))))
    return out


@pytest.mark.parametrize("module", MODULES)
def test_every_call_matches_its_callees_signature(module):
    """The fault issue 16 found: IMAGIOPlanningLogic.scopes() called ensureImagio(askToInstall=False)
    on a function without parameters; the TypeError was swallowed and the scope list stayed empty."""
    checked = calls_with_callees(module)
    assert len(checked) > 30, "too few calls resolved"
    resolved = {ast.unparse(c.func) for c, _ in checked}
    assert "ensureImagio" in resolved and any(r.startswith("self.logic.") for r in resolved)
    assert any(r.startswith("logic.") or r in ("needle_plan_from_nodes", "bronchoscopy_plan_from_nodes", "ablation_from_nodes", "format_report")
               for r in resolved), "no call into imagio resolved"
    bad = [m for m in (check_call(sig, call) for call, sig in checked) if m]
    assert not bad, bad


def test_the_signature_check_catches_the_scopes_fault():
    tree = ast.parse("def ensureImagio():\n    pass\n")
    sig = signature_of(tree.body[0], False)
    assert check_call(sig, ast.parse("ensureImagio(askToInstall=False)").body[0].value)
    assert check_call(sig, ast.parse("ensureImagio()").body[0].value) is None


@pytest.mark.parametrize("module", MODULES)
def test_opening_the_panel_installs_nothing(module):
    """pip packages are installed at first use of a computation, after asking; what runs when the
    panel opens (setup and the widget methods it reaches) only reads catalogues, with
    ensureImagio(requirements=False)."""
    tree = module_tree(module)
    classes = {c.name: {n.name: n for n in c.body if isinstance(n, ast.FunctionDef)}
               for c in tree.body if isinstance(c, ast.ClassDef)}
    widget, logic = classes[f"{module}Widget"], classes[f"{module}Logic"]
    seen, todo, logic_calls = set(), ["setup"], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in widget:
            continue
        seen.add(name)
        for c in (n for n in ast.walk(widget[name]) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)):
            owner = ast.unparse(c.func.value)
            if owner == "self":
                todo.append(c.func.attr)
            elif owner == "self.logic":
                logic_calls.add(c.func.attr)
    assert logic_calls, "setup reads no catalogue?"
    bad = []
    for name in sorted(logic_calls - {"getParameterNode"}):
        for c in (n for n in ast.walk(logic[name]) if isinstance(n, ast.Call) and ast.unparse(n.func) == "ensureImagio"):
            kw = {k.arg: ast.unparse(k.value) for k in c.keywords}
            if kw.get("requirements") != "False":
                bad.append(f"{name}: {ast.unparse(c)}")
    assert not bad, f"panel opening may ask to install: {bad}"
