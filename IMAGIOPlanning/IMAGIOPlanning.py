"""IMAGIOPlanning: needle trajectories from the skin to the target, scored against the
structures at risk, with live metrics while the user drags the path.

Thin Slicer layer: the Logic passes MRML nodes to ``imagio.mrml.logic`` and
``imagio.mrml.planning`` (tested outside Slicer on slicer-core MRML).
"""

import logging
import os
import sys

import slicer
from slicer import vtkMRMLMarkupsLineNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin


def ensureImagio():
    """Put the ``imagio`` package (beside the modules, or at the repository root) on sys.path."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (here, os.path.dirname(here)):
        if os.path.isdir(os.path.join(candidate, "imagio")) and candidate not in sys.path:
            sys.path.insert(0, candidate)
    import imagio

    return imagio


class IMAGIOPlanning(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "IMAGIO Planning"
        self.parent.categories = ["IMAGIO"]
        self.parent.dependencies = []
        self.parent.contributors = ["IMAGIO developers"]
        self.parent.helpText = (
            "Plan straight needle paths from the skin to a target: every skin entry is scored "
            "against forbidden, margin and avoid structures, angles and gantry tilt; the best "
            "paths are proposed and the chosen path is re-scored live while you drag it.")
        self.parent.acknowledgementText = "IMAGIO is open source (Apache-2.0)."


@parameterNodeWrapper
class IMAGIOPlanningParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    structuresTable: vtkMRMLTableNode
    path: vtkMRMLMarkupsLineNode
    metricsTable: vtkMRMLTableNode
    targetName: str = "tumor"
    needleLengthMm: float = 150.0
    maxCraniocaudalDeg: float = 30.0


class IMAGIOPlanningWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._pathObserver = None

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
        self.ui.progressBar.setVisible(False)
        self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

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
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)

    def _progress(self, fraction, message):
        self.ui.progressBar.setVisible(True)
        self.ui.progressBar.setValue(int(100 * fraction))
        self.ui.statusLabel.setText(message)
        slicer.app.processEvents()

    def onStructuresButton(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Could not list the structures.", waitCursor=True):
            p.structuresTable = self.logic.structureTable(p.segmentation, p.inputVolume, p.structuresTable)
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(p.structuresTable.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()

    def onPlanButton(self):
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay("Planning failed.", waitCursor=True):
            result, ids = self.logic.plan(p.inputVolume, p.segmentation, p.targetName, p.needleLengthMm,
                                          p.maxCraniocaudalDeg, self._progress)
            if "path" in ids:
                p.path = slicer.mrmlScene.GetNodeByID(ids["path"])
                p.metricsTable = slicer.mrmlScene.GetNodeByID(ids["table"])
                self._pathObserver = self.logic.observePath(p.path, result.evaluator, p.metricsTable,
                                                            self.onPathMetrics)
            self.ui.statusLabel.setText(f"{int(result.table.feasible.sum())} of {len(result.table)} "
                                        "candidate paths are feasible")
        self.ui.progressBar.setVisible(False)

    def onPathMetrics(self, metrics):
        state = "feasible" if metrics.feasible else "NOT feasible: " + ", ".join(metrics.violations)
        self.ui.metricsLabel.setText(
            f"{state}; length {metrics.length_mm:.1f} mm; closest {metrics.closest_structure} "
            f"{metrics.closest_clearance_mm:.1f} mm; craniocaudal {metrics.craniocaudal_deg:.1f} deg")


class IMAGIOPlanningLogic(ScriptedLoadableModuleLogic):
    """Delegates to imagio with the application's scene."""

    def getParameterNode(self):
        return IMAGIOPlanningParameterNode(super().getParameterNode())

    def structureTable(self, segmentationNode, volumeNode=None, tableNode=None):
        ensureImagio()
        from imagio.mrml import logic

        return logic.structure_table(slicer.mrmlScene, segmentationNode, tableNode, volumeNode)

    def plan(self, volumeNode, segmentationNode, target, needleLengthMm=None, maxCraniocaudalDeg=None,
             progress=None):
        ensureImagio()
        from imagio.mrml import logic

        return logic.plan_trajectories(slicer.mrmlScene, volumeNode, segmentationNode, target,
                                       needleLengthMm, maxCraniocaudalDeg, progress)

    def observePath(self, pathNode, evaluator, tableNode=None, callback=None):
        ensureImagio()
        from imagio.mrml.planning import observe_path

        return observe_path(pathNode, evaluator, callback, tableNode)


class IMAGIOPlanningTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_plan_phantom()

    def test_plan_phantom(self):
        ensureImagio()
        from imagio import mrml, phantom

        ph = phantom.generate(spacing=3.0)
        ct = mrml.volume_to_node(ph.ct, slicer.mrmlScene, "phantom CT")
        seg, _ = mrml.labels_to_segmentation(ph.labels, slicer.mrmlScene, reference_node=ct)
        result, ids = IMAGIOPlanningLogic().plan(ct, seg, "liver_tumor_1")
        self.assertTrue(result.feasible)
        self.assertIn("path", ids)
        logging.info("IMAGIOPlanning test passed")
