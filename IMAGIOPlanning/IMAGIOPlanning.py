"""IMAGIOPlanning: needle trajectories from the skin to the target, scored against the
structures at risk, with live metrics while the user drags the path.

Thin Slicer layer: the Logic passes MRML nodes to ``imagio.mrml.logic`` and
``imagio.mrml.planning`` (tested outside Slicer on slicer-core MRML).
"""

import logging
import os
import sys
from typing import Annotated

import slicer
import vtk
from slicer import (vtkMRMLMarkupsCurveNode, vtkMRMLMarkupsFiducialNode, vtkMRMLMarkupsLineNode,
                    vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

HELP_URL = "https://github.com/imagio-planning/IMAGIO#use-it-in-3d-slicer"


def imagioLib():
    """The IMAGIOLib package (dependencies, longrun) shared by the IMAGIO modules: beside this file
    in an installed extension, in the IMAGIOSegmentation folder of a source checkout."""
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (here, os.path.join(os.path.dirname(here), "IMAGIOSegmentation")):
        if os.path.isdir(os.path.join(folder, "IMAGIOLib")) and folder not in sys.path:
            sys.path.append(folder)
    import IMAGIOLib.dependencies
    import IMAGIOLib.longrun

    return IMAGIOLib


def ensureImagio(askToInstall=True, requirements=True):
    """The ``imagio`` package, importable, with its pip requirements (kimimaro, matplotlib, ...)
    installed once after the user agrees; never at import time."""
    return imagioLib().dependencies.ensureImagio(__file__, askToInstall, requirements)


class IMAGIOPlanning(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("IMAGIO Planning")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "IMAGIO")]
        self.parent.dependencies = []
        self.parent.contributors = ["IMAGIO developers"]
        self.parent.helpText = _(
            "Plan straight needle paths from the skin to a target: every skin entry is scored "
            "against forbidden, margin and avoid structures, angles and gantry tilt; the best "
            "paths are proposed and the chosen path is re-scored live while you drag it. "
            "Ablation zones with coverage and margin; bronchoscopic routes. "
            'See the <a href="{url}">IMAGIO documentation</a>.').format(url=HELP_URL)
        self.parent.acknowledgementText = _("IMAGIO is open source (Apache-2.0).")


@parameterNodeWrapper
class IMAGIOPlanningParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    structuresTable: vtkMRMLTableNode
    path: vtkMRMLMarkupsLineNode
    metricsTable: vtkMRMLTableNode
    targetName: str = "tumor"
    targetPoint: vtkMRMLMarkupsFiducialNode
    needleLengthMm: float = 150.0
    needleDiameterMm: float = 1.3
    placementUncertaintyMm: float = 2.0
    maxCraniocaudalDeg: float = 30.0
    maxSkinAngleDeg: float = 60.0
    patientPosition: Annotated[str, Choice(["supine", "prone", "left_lateral", "right_lateral"])] = "supine"
    numberOfProposals: int = 5
    # device, setting and scope combo boxes are filled from the catalogues at run time, so they are
    # not bound by SlicerParameterName (a bound QComboBox needs a fixed Choice): the widget keeps
    # these fields and the combo boxes in step
    ablationDevice: str = ""
    ablationSetting: str = ""
    ablationMultiProbe: bool = False
    ablationMarginMm: float = 5.0
    ablationTable: vtkMRMLTableNode
    bronchTargetName: str = "lung_nodule_1"
    bronchTargetPoint: vtkMRMLMarkupsFiducialNode
    bronchScope: str = "thin"
    bronchTable: vtkMRMLTableNode
    sarcomaTumourName: str = ""
    sarcomaIncision: vtkMRMLMarkupsCurveNode
    sarcomaCores: int = 4
    sarcomaTable: vtkMRMLTableNode


def setComboData(combo, value):
    """Select the item whose data (or text) is ``value``; False when there is none."""
    for i in range(combo.count):
        if combo.itemData(i) == value or combo.itemText(i) == value:
            combo.setCurrentIndex(i)
            return True
    return False


class IMAGIOPlanningWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._pathObserver = None
        self._plan = None
        self._ablationObserver = None
        self.longRun = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/IMAGIOPlanning.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = IMAGIOPlanningLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.structuresButton.connect("clicked(bool)", self.onStructuresButton)
        self.ui.planButton.connect("clicked(bool)", self.onPlanButton)
        self.longRun = imagioLib().longrun.LongRun(self.ui.progressBar, self.ui.statusLabel, self.ui.cancelButton,
                                                    self._checkCanApply)
        self.setupCatalogues()
        self.initializeParameterNode()

    def setupCatalogues(self):
        """Device, setting and scope combo boxes from the catalogues (run time, not import time)."""
        with slicer.util.tryWithErrorDisplay(_("Could not read the ablation device catalogue.")):
            for name, label in self.logic.ablationDevices():
                self.ui.ablationDeviceComboBox.addItem(label or name, name)
        try:
            for name in self.logic.scopes():
                self.ui.bronchScopeComboBox.addItem(name)
        except Exception as e:  # the catalogue is optional for the rest of the module
            logging.warning(f"scope catalogue unavailable: {e}")
        self.ui.ablationDeviceComboBox.connect("currentIndexChanged(int)", self.onAblationDevice)
        self.ui.ablationSettingComboBox.connect("currentIndexChanged(int)", self.onAblationSetting)
        self.ui.bronchScopeComboBox.connect("currentIndexChanged(int)", self.onBronchScope)
        self.ui.ablationApplyButton.connect("clicked(bool)", self.onAblationApply)
        self.ui.bronchPlanButton.connect("clicked(bool)", self.onBronchPlan)
        self.ui.sarcomaPlanButton.connect("clicked(bool)", self.onSarcomaPlan)

    def onAblationDevice(self, index=None):
        combo = self.ui.ablationSettingComboBox
        device = self.ui.ablationDeviceComboBox.currentData
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        if device:
            for sid, label in self.logic.ablationSettings(device):
                combo.addItem(label, sid)
        combo.blockSignals(wasBlocked)
        p = self._parameterNode
        if p is not None and device:
            p.ablationDevice = device
            if not setComboData(combo, p.ablationSetting):
                p.ablationSetting = combo.currentData or ""

    def onAblationSetting(self, index=None):
        if self._parameterNode is not None and self.ui.ablationSettingComboBox.currentData:
            self._parameterNode.ablationSetting = self.ui.ablationSettingComboBox.currentData

    def onBronchScope(self, index=None):
        if self._parameterNode is not None and self.ui.bronchScopeComboBox.currentText:
            self._parameterNode.bronchScope = self.ui.bronchScopeComboBox.currentText

    def _showCatalogueChoices(self):
        """Combo boxes from the parameter node (device, then its settings, scope)."""
        p = self._parameterNode
        if p is None:
            return
        if not setComboData(self.ui.ablationDeviceComboBox, p.ablationDevice):
            p.ablationDevice = self.ui.ablationDeviceComboBox.currentData or ""
        self.onAblationDevice()
        setComboData(self.ui.ablationSettingComboBox, p.ablationSetting)
        if not setComboData(self.ui.bronchScopeComboBox, p.bronchScope):
            self.onBronchScope()

    def onAblationApply(self):
        p = self._parameterNode
        with self.longRun.run(), slicer.util.tryWithErrorDisplay(_("Ablation failed."), waitCursor=True):
            if self._ablationObserver is not None and p.path is not None:
                p.path.RemoveObserver(self._ablationObserver)
                self._ablationObserver = None
            result, ids, ctx = self.logic.ablationZones(
                p.inputVolume, p.segmentation, p.path, p.targetName, p.ablationDevice, p.ablationSetting,
                multiProbe=p.ablationMultiProbe, marginMm=p.ablationMarginMm, plan=self._plan,
                progress=self.longRun.progress)
            p.ablationTable = slicer.mrmlScene.GetNodeByID(ids["table"])
            self.ui.ablationTableView.setMRMLTableNode(p.ablationTable)
            from imagio.mrml.ablation import placement_note, probe_note

            # the zone centred on the path's end as the CLI centres it on the target: how far past
            # it the probe's tip goes, or why less (trial 95 F3)
            note = "" if p.ablationMultiProbe else placement_note(result)
            self.onAblationCoverage(result.coverage, max(len(result.probes), 1), note)
            if result.placement:   # multi-probe: probes in place at once (own entries, shafts apart) or not
                label = self.ui.ablationResultLabel
                label.setText(label.text + "\n" + result.placement["statement"])
            if not p.ablationMultiProbe and p.path is not None:
                zoneNode = slicer.mrmlScene.GetNodeByID(ids["zones"][0])
                from imagio.mrml.ablation import chosen_setting
                from imagio.planning.ablation.commands import setting_choice_words

                # the zone followed live is the one placed: its own setting and position (IMAGIO may
                # have chosen another than asked to keep hollow viscera out: said in the note)
                setting, shift = chosen_setting(result)
                live = probe_note(setting, live=True)
                choice = setting_choice_words(result.hollow_viscus, result.device)
                if choice:
                    live = f"{choice}; {live}"
                self._ablationObserver = self.logic.observeAblation(
                    p.path, ctx, p.ablationDevice, setting.id, zoneNode, p.ablationTable,
                    lambda cov: self.onAblationCoverage(cov, 1, live), shiftMm=shift)

    def onBronchPlan(self):
        p = self._parameterNode
        with self.longRun.run(), slicer.util.tryWithErrorDisplay(_("Bronchoscopic planning failed."), waitCursor=True):
            plan, ids = self.logic.bronchoscopyRoute(p.inputVolume, p.segmentation, p.bronchTargetName,
                                                     p.bronchTargetPoint, p.bronchScope)
            p.bronchTable = slicer.mrmlScene.GetNodeByID(ids["table"])
            self.ui.bronchTableView.setMRMLTableNode(p.bronchTable)
            r = plan.route
            reach = (_("reaches the nodule") if r.reached_said else
                     _("reaches the nodule in the airway mask, UNVERIFIED on the CT") if r.reached_said is None else
                     _("ends {distance:.1f} mm from the nodule").format(distance=r.remaining_mm))
            tunnels = (_("; {count} tunnel(s)").format(count=len(plan.tunnels)) if plan.tunnels else
                       (f"; {plan.tunnel_problem}" if plan.tunnel_problem else ""))
            self.ui.statusLabel.setText(
                _("{scope}: {reach} at generation {generation}, route {length:.0f} mm").format(
                    scope=r.scope, reach=reach, generation=r.generation, length=r.length_mm) + tunnels)

    def onSarcomaPlan(self):
        p = self._parameterNode
        with self.longRun.run(), slicer.util.tryWithErrorDisplay(_("Sarcoma biopsy planning failed."), waitCursor=True):
            plan, ids = self.logic.sarcomaBiopsy(p.inputVolume, p.segmentation, p.sarcomaTumourName,
                                                 p.sarcomaIncision, p.sarcomaCores, self.longRun.progress)
            p.sarcomaTable = slicer.mrmlScene.GetNodeByID(ids["table"])
            self.ui.sarcomaTableView.setMRMLTableNode(p.sarcomaTable)
            if plan.feasible:
                self.ui.statusLabel.setText(_("{count} core(s) from one entry in {compartments}").format(
                    count=len(plan.cores), compartments=", ".join(plan.involved) or _("no labelled compartment")))
            else:
                self.ui.statusLabel.setText(plan.failure or self.logic.infeasibleReport(plan.plan))

    def onAblationCoverage(self, coverage, nProbes, note=""):
        from imagio.planning.ablation.criteria import mam_text

        c = coverage
        m5 = c.margin_covered_pct.get(5.0)
        text = _("{count} probe(s): tumour covered {pct:.1f}%").format(count=nProbes, pct=c.tumour_covered_pct)
        if m5 is not None:
            text += _(", tumour + 5 mm {pct:.1f}%").format(pct=m5)
        text += _("; minimal ablative margin {mam} mm").format(mam=mam_text(c.mam_mm))
        if not c.criteria["minimal_ablative_margin"]["met"]:
            text += " (< 5 mm)"
        hollow = c.criteria.get("no_hollow_viscus") or {}   # trial 96 F4: the criterion in the first line
        if hollow and hollow.get("met") is not True:   # its structures and what to do: the doubts below
            text += "; " + (_("no hollow viscus in the zone: NOT MET") if hollow.get("met") is False
                            else _("no hollow viscus in the zone: NOT VERIFIABLE ({why})").format(
                                why=hollow.get("not_verifiable", "")))
        if c.heat_sink:
            text += _("; heat sink: {vessels}").format(vessels=", ".join(h["vessel"] for h in c.heat_sink))
        # the same doubts as plan.json's warnings (tumour not covered, margin < 5 mm, structures in the zone)
        from imagio.planning.ablation.commands import zone_doubts

        tumour = self._parameterNode.targetName if self._parameterNode is not None else ""
        # the planned target's host organ and whether it lies in the lung, as plan.json's warnings have them
        target = getattr(getattr(self._plan, "problem", None), "target", None)
        planned = target is not None and getattr(target, "name", None) == tumour
        doubts = zone_doubts(_("ablation"), c.to_dict(), _("move the probe, choose a larger setting or more probes"),
                             tumour or "", (getattr(target, "organ", "") or "") if planned else "",
                             bool(getattr(target, "in_lung", False)) if planned else False,
                             # the planned CT's interpolated gaps (trial 107 F4: the margin's point in one)
                             getattr(self._plan.problem, "ct", None) if planned else None)
        if doubts:
            text += "\n" + "\n".join(doubts)
        if note:
            text += "\n" + note
        self.ui.ablationResultLabel.setText(text)

    def cleanup(self):
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        p = self._parameterNode
        if not p.inputVolume:
            p.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        if not p.segmentation:
            p.segmentation = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._showCatalogueChoices()
        self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None):
        """Each action button is enabled only when its inputs are set (and nothing is running)."""
        p = self._parameterNode
        idle = not (self.longRun and self.longRun.running)
        hasImages = bool(p and p.inputVolume and p.segmentation) and idle
        hasTarget = bool(p and (p.targetName or (p.targetPoint and p.targetPoint.GetNumberOfControlPoints())))
        hasBronchTarget = bool(p and (p.bronchTargetName or (
            p.bronchTargetPoint and p.bronchTargetPoint.GetNumberOfControlPoints())))
        self.ui.structuresButton.enabled = bool(p and p.segmentation) and idle
        self.ui.planButton.enabled = hasImages and hasTarget
        self.ui.ablationApplyButton.enabled = (hasImages and bool(p.ablationDevice and p.ablationSetting)
                                               and (bool(p.path) or (p.ablationMultiProbe and self._plan is not None)))
        self.ui.bronchPlanButton.enabled = hasImages and hasBronchTarget and bool(p.bronchScope)
        self.ui.sarcomaPlanButton.enabled = hasImages

    def onStructuresButton(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Could not list the structures."), waitCursor=True):
            p.structuresTable = self.logic.structureTable(p.segmentation, p.inputVolume, p.structuresTable)
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(p.structuresTable.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()

    def onPlanButton(self):
        p = self._parameterNode
        with self.longRun.run(), slicer.util.tryWithErrorDisplay(_("Planning failed."), waitCursor=True):
            if self._pathObserver is not None and p.path is not None:
                p.path.RemoveObserver(self._pathObserver)
                self._pathObserver = None
            result, ids = self.logic.plan(
                p.inputVolume, p.segmentation, p.targetName, p.needleLengthMm, p.maxCraniocaudalDeg,
                self.longRun.progress, targetPointNode=p.targetPoint, needleDiameterMm=p.needleDiameterMm,
                uncertaintyMm=p.placementUncertaintyMm, maxSkinAngleDeg=p.maxSkinAngleDeg,
                patientPosition=p.patientPosition, numberOfProposals=p.numberOfProposals)
            self._plan = result
            if not result.feasible:
                self.ui.metricsLabel.setText(self.logic.infeasibleReport(result))
            if "path" in ids:
                p.path = slicer.mrmlScene.GetNodeByID(ids["path"])
                p.metricsTable = slicer.mrmlScene.GetNodeByID(ids["table"])
                self._pathObserver = self.logic.observePath(p.path, result.evaluator, p.metricsTable,
                                                            self.onPathMetrics)
            self.ui.statusLabel.setText(_("{feasible} of {total} candidate paths are feasible").format(
                feasible=int(result.table.feasible.sum()), total=len(result.table)))

    def onPathMetrics(self, metrics):
        state = (_("feasible") if metrics.feasible else
                 _("NOT feasible: {violations}").format(violations=", ".join(metrics.violations)))
        self.ui.metricsLabel.setText(
            _("{state}; length {length:.1f} mm; closest {structure} {clearance:.1f} mm; "
              "craniocaudal {angle:.1f} deg").format(
                state=state, length=metrics.length_mm, structure=metrics.closest_structure,
                clearance=metrics.closest_clearance_mm, angle=metrics.craniocaudal_deg))


class IMAGIOPlanningLogic(ScriptedLoadableModuleLogic):
    """Delegates to imagio with the application's scene."""

    def getParameterNode(self):
        return IMAGIOPlanningParameterNode(super().getParameterNode())

    def structureTable(self, segmentationNode, volumeNode=None, tableNode=None):
        ensureImagio()
        from imagio.mrml import logic

        return logic.structure_table(slicer.mrmlScene, segmentationNode, tableNode, volumeNode)

    def plan(self, volumeNode, segmentationNode, target, needleLengthMm=None, maxCraniocaudalDeg=None,
             progress=None, targetPointNode=None, needleDiameterMm=None, uncertaintyMm=None,
             maxSkinAngleDeg=None, patientPosition=None, numberOfProposals=None, roles=None,
             disabledRules=None):
        """Proposals, editable best path, skin risk map and metrics table; the target is the
        first point of ``targetPointNode`` when it has one, else the segment ``target``.
        ``roles`` ({segment: role or (role, margin mm)}) and ``disabledRules`` (rule names) as the
        command line's --role and --no-rule; the plan records them."""
        ensureImagio()
        from imagio.mrml.planning import needle_plan_from_nodes

        return needle_plan_from_nodes(slicer.mrmlScene, volumeNode, segmentationNode, target, targetPointNode,
                               needleLengthMm, needleDiameterMm, uncertaintyMm, maxCraniocaudalDeg,
                               maxSkinAngleDeg, patientPosition, numberOfProposals, progress,
                               roles, disabledRules)

    def infeasibleReport(self, result):
        """One paragraph: which constraint excluded how many candidates, the best near-miss."""
        ensureImagio()
        from imagio.planning.planner import format_report

        return format_report(result.report)

    def observePath(self, pathNode, evaluator, tableNode=None, callback=None):
        ensureImagio()
        from imagio.mrml.planning import observe_path

        return observe_path(pathNode, evaluator, callback, tableNode)

    # ablation ------------------------------------------------------------------------------
    def ablationDevices(self):
        """[(name, label)] of the device catalogue (built-in + site tables)."""
        ensureImagio(requirements=False)
        from imagio.planning.ablation import load_catalogue

        return [(n, f"{d.label or n} [{d.modality}]") for n, d in load_catalogue().items()]

    def ablationSettings(self, device):
        """[(setting id, label with the zone size)] of one device."""
        ensureImagio(requirements=False)
        from imagio.planning.ablation import get_device

        return [(s.id, f"{s.label}: {s.zone_length_mm:g} x {s.zone_diameter_mm:g} mm")
                for s in get_device(device).settings.values()]

    def ablationZones(self, volumeNode, segmentationNode, pathNode, tumourSegment, device, setting=None,
                      multiProbe=False, marginMm=5.0, plan=None, progress=None):
        """Zone models, tumour margin model and coverage table: one probe on ``pathNode``
        (entry, target: the zone centred on the target, the tip advanced the device's offset past
        it, as the CLI places it), or the fewest probes covering tumour + ``marginMm`` (needs ``plan``).
        Returns (ProbePlan, node ids, AblationContext)."""
        ensureImagio()
        from imagio.mrml.ablation import ablation_from_nodes

        return ablation_from_nodes(slicer.mrmlScene, volumeNode, segmentationNode, pathNode, tumourSegment,
                                   device, setting, multiProbe, marginMm, plan, progress)

    def observeAblation(self, pathNode, context, device, setting, zoneNode=None, tableNode=None, callback=None,
                        shiftMm=0.0):
        """Recompute the zone (centred on the path's end, moved ``shiftMm`` along the path: the placed
        probe's own, `imagio.mrml.ablation.chosen_setting`), coverage and margin while the path's end is dragged."""
        ensureImagio()
        from imagio.mrml.ablation import observe_ablation
        from imagio.planning.ablation import get_device

        dev = get_device(device)
        return observe_ablation(pathNode, context, dev.setting(setting), dev.name, dev.modality, zoneNode,
                                tableNode, callback, shift_mm=shiftMm)

    def scopes(self):
        """Scope names of the catalogue (imagio/data/scopes.json or $IMAGIO_SCOPES)."""
        ensureImagio(requirements=False)
        from imagio.planning.bronchoscopy import load_scopes

        return list(load_scopes()["scopes"])

    def bronchoscopyRoute(self, volumeNode, segmentationNode, targetName=None, targetPointNode=None, scope="thin"):
        """Airway tree, route, tunnels and fly-through path into the scene. Returns (plan, node ids)."""
        ensureImagio()
        from imagio.mrml.bronchoscopy import bronchoscopy_plan_from_nodes

        plan, nodes = bronchoscopy_plan_from_nodes(slicer.mrmlScene, volumeNode, segmentationNode, targetName,
                                      targetPointNode, scope)
        ids = {k: ([n.GetID() for n in v] if isinstance(v, list) else v.GetID()) for k, v in nodes.items()}
        return plan, ids


    def sarcomaBiopsy(self, volumeNode, segmentationNode, tumourName="", incisionNode=None, cores=4, progress=None):
        """Sarcoma core-needle biopsy (imagio.planning.sarcoma) into the scene: cores, entry to tattoo,
        incision, viable tumour segment, rules table. Returns (SarcomaPlan, node ids)."""
        ensureImagio()
        from imagio.mrml.sarcoma import sarcoma_plan_from_nodes

        return sarcoma_plan_from_nodes(slicer.mrmlScene, volumeNode, segmentationNode, tumourName or None,
                                       incisionNode, cores, progress=progress)


class IMAGIOPlanningTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_plan_phantom()
        self.setUp()
        self.test_sarcoma_phantom()

    def test_sarcoma_phantom(self):
        ensureImagio()
        from imagio import mrml
        from imagio.phantom.limb import thigh

        ph = thigh(seed=0, spacing_mm=3.0)
        ct = mrml.volume_to_node(ph.ct, slicer.mrmlScene, "thigh CT")
        seg, _ = mrml.labels_to_segmentation(ph.labels, slicer.mrmlScene, reference_node=ct)
        plan, ids = IMAGIOPlanningLogic().sarcomaBiopsy(ct, seg, "sarcoma_1", None, 3)
        self.assertTrue(plan.feasible)
        self.assertEqual(len(ids["cores"]), 3)
        self.assertIn("table", ids)

    def test_plan_phantom(self):
        ensureImagio()
        from imagio import mrml, phantom

        ph = phantom.generate(spacing=3.0)
        ct = mrml.volume_to_node(ph.ct, slicer.mrmlScene, "phantom CT")
        seg, _ = mrml.labels_to_segmentation(ph.labels, slicer.mrmlScene, reference_node=ct)
        result, ids = IMAGIOPlanningLogic().plan(ct, seg, "liver_tumor_1")
        self.assertTrue(result.feasible)
        self.assertIn("path", ids)
        # live metrics: moving the entry re-scores the path
        seen = []
        path = slicer.mrmlScene.GetNodeByID(ids["path"])
        IMAGIOPlanningLogic().observePath(path, result.evaluator, None, seen.append)
        e = result.proposals[-1].entry_ras
        path.SetNthControlPointPosition(0, e[0], e[1], e[2])
        self.assertTrue(seen and seen[-1].feasible)
        # ablation zone on the chosen path: coverage and margin, updated while the tip moves
        logic = IMAGIOPlanningLogic()
        abl, abl_ids, ctx = logic.ablationZones(ct, seg, path, "liver_tumor_1", "emprint", "100W_10min",
                                                plan=result)
        self.assertGreater(abl.coverage.tumour_covered_pct, 0.0)
        self.assertIn("table", abl_ids)
        covs = []
        logic.observeAblation(path, ctx, "emprint", "100W_10min", None, None, covs.append)
        path.SetNthControlPointPosition(1, *result.proposals[0].target_ras)
        self.assertTrue(covs)
        logging.info("IMAGIOPlanning test passed")
