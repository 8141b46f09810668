"""IMAGIOSegmentation: CT in, the structures a needle plan needs out, as one segmentation.

Thin Slicer layer: the Widget handles the GUI, the Logic passes MRML nodes to
``imagio.mrml.logic`` where the work happens (tested outside Slicer on slicer-core MRML).
Heavy packages are imported inside methods and installed at first use, after asking.
"""

import logging
import os
import sys

import qt
import slicer
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin


STRUCTURES = ("body", "bones", "lungs", "airways", "emphysema", "vessels")


def ensureImagio(askToInstall=True):
    """Make the ``imagio`` package importable: it sits beside the modules in an installed
    extension, or at the repository root in a source checkout. Missing pip packages
    (Resources/requirements.txt) are installed after the user agrees, never at import time."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (here, os.path.dirname(here)):
        if os.path.isdir(os.path.join(candidate, "imagio")) and candidate not in sys.path:
            sys.path.insert(0, candidate)
    try:
        import edt  # noqa: F401
        import cc3d  # noqa: F401
        import fill_voids  # noqa: F401
    except ImportError:
        req = os.path.join(here, "Resources", "requirements.txt")
        if not askToInstall or not slicer.util.confirmOkCancelDisplay(
                "IMAGIO needs a few Python packages (edt, connected-components-3d, fill-voids). "
                "Install them now?", "IMAGIO"):
            raise RuntimeError("IMAGIO's Python requirements are not installed")
        slicer.util.pip_install(["-r", req])
    import imagio

    return imagio


def ensureTorch():
    """torch through Slicer's PyTorch extension (the CUDA build matching the GPU), and the
    network classes (dynamic-network-architectures, without its timm/torchvision tree). Asks
    before installing anything; never runs at module import."""
    try:
        import torch  # noqa: F401
    except ImportError:
        try:
            import PyTorchUtils
        except ImportError:
            raise RuntimeError("Deep models need PyTorch: install the 'PyTorch' extension from the "
                               "Extensions Manager and restart Slicer") from None
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is None:
            raise RuntimeError("PyTorch is not installed; deep models cannot run")
    try:
        import dynamic_network_architectures  # noqa: F401
    except ImportError:
        if not slicer.util.confirmOkCancelDisplay(
                "Deep models need the 'dynamic-network-architectures' package (nnU-Net's network "
                "classes). Install it now?", "IMAGIO"):
            raise RuntimeError("dynamic-network-architectures is not installed")
        slicer.util.pip_install(["einops"])
        slicer.util.pip_install(["--no-deps", "dynamic-network-architectures==0.4.4"])


class IMAGIOSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "IMAGIO Segmentation"
        self.parent.categories = ["IMAGIO"]
        self.parent.dependencies = []
        self.parent.contributors = ["IMAGIO developers"]
        self.parent.helpText = (
            "Segment the structures a needle or bronchoscopy plan needs from a CT: body and skin, "
            "bones, lungs, airways, emphysema and contrast vessels by rules; a lesion from one click. "
            "Results are added as new segments; existing segments are never changed.")
        self.parent.acknowledgementText = "IMAGIO is open source (Apache-2.0)."


@parameterNodeWrapper
class IMAGIOSegmentationParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    lesionPoint: vtkMRMLMarkupsFiducialNode
    segmentBody: bool = True
    segmentBones: bool = True
    segmentLungs: bool = True
    segmentAirways: bool = True
    segmentEmphysema: bool = False
    segmentVessels: bool = False
    lesionName: str = "tumor"
    modelName: str = "total_fast"
    modelDevice: str = "auto"


class IMAGIOSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._cancelRequested = False

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/IMAGIOSegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = IMAGIOSegmentationLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.loadButton.connect("clicked(bool)", self.onLoadButton)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.lesionButton.connect("clicked(bool)", self.onLesionButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.runModelButton.connect("clicked(bool)", self.onRunModelButton)
        self.ui.importModelButton.connect("clicked(bool)", self.onImportModelButton)
        self._fillModelChoices()
        self.ui.progressBar.setVisible(False)
        self.ui.cancelButton.setEnabled(False)
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
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.inputVolume = first

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
        return not self._cancelRequested

    def _run(self, fn):
        self._cancelRequested = False
        self.ui.cancelButton.setEnabled(True)
        try:
            with slicer.util.tryWithErrorDisplay("IMAGIO segmentation failed.", waitCursor=True):
                return fn()
        finally:
            self.ui.cancelButton.setEnabled(False)
            self.ui.progressBar.setVisible(False)

    def onCancelButton(self):
        self._cancelRequested = True

    def onLoadButton(self):
        path = self.ui.labelFilePathLineEdit.currentPath
        p = self._parameterNode
        node = self._run(lambda: self.logic.loadSegmentation(p.inputVolume, path, p.outputSegmentation))
        if node is not None:
            p.outputSegmentation = node

    def onSegmentButton(self):
        p = self._parameterNode
        chosen = [s for s, on in zip(STRUCTURES, (p.segmentBody, p.segmentBones, p.segmentLungs, p.segmentAirways,
                                                  p.segmentEmphysema, p.segmentVessels)) if on]
        node = self._run(lambda: self.logic.segment(p.inputVolume, chosen, p.outputSegmentation, self._progress))
        if node is not None:
            p.outputSegmentation = node

    def _fillModelChoices(self):
        """Catalogue models into the combo box (name as the item text, details as its tooltip)."""
        try:
            ensureImagio(askToInstall=False)
            from imagio.mrml import logic

            choices = logic.model_choices()
        except Exception as e:  # the section stays usable with a model folder
            choices = []
            self.ui.modelInfoLabel.setToolTip(f"model catalogue unavailable: {e}")
        current = self._parameterNode.modelName if self._parameterNode else None
        self.ui.modelComboBox.clear()
        for n, (name, description) in enumerate(choices):
            self.ui.modelComboBox.addItem(name)
            self.ui.modelComboBox.setItemData(n, description, qt.Qt.ToolTipRole)
        if current:
            self.ui.modelComboBox.setCurrentText(current)

    def onRunModelButton(self):
        p = self._parameterNode
        model = self.ui.modelFolderPathLineEdit.currentPath or p.modelName
        device = None if p.modelDevice == "auto" else p.modelDevice
        node = self._run(lambda: self.logic.segmentWithModel(p.inputVolume, model, p.outputSegmentation, device,
                                                             self._progress))
        if node is not None:
            p.outputSegmentation = node
        self._fillModelChoices()

    def onImportModelButton(self):
        path = qt.QFileDialog.getOpenFileName(None, "Model zip", "", "Zip files (*.zip)")
        if not path:
            return
        name = self._parameterNode.modelName
        self._run(lambda: self.logic.importModel(name, path))
        self._fillModelChoices()

    def onLesionButton(self):
        p = self._parameterNode
        if not p.lesionPoint or p.lesionPoint.GetNumberOfControlPoints() < 1:
            slicer.util.errorDisplay("Place a point inside the lesion first.")
            return
        point = [0.0, 0.0, 0.0]
        p.lesionPoint.GetNthControlPointPositionWorld(0, point)
        result = self._run(lambda: self.logic.lesion(p.inputVolume, point, p.outputSegmentation, p.lesionName))
        if result is not None:
            node, meas = result
            p.outputSegmentation = node
            self.ui.statusLabel.setText(
                f"{p.lesionName}: {meas.volume_ml:.2f} mL, long axis {meas.long_axis_mm:.1f} mm, "
                f"short axis {meas.short_axis_mm:.1f} mm")


class IMAGIOSegmentationLogic(ScriptedLoadableModuleLogic):
    """Delegates to imagio.mrml.logic with the application's scene."""

    def getParameterNode(self):
        return IMAGIOSegmentationParameterNode(super().getParameterNode())

    def loadSegmentation(self, volumeNode, path, segmentationNode=None):
        ensureImagio()
        from imagio.mrml import logic

        return logic.load_segmentation_file(slicer.mrmlScene, volumeNode, path, segmentationNode)

    def segment(self, volumeNode, structures, segmentationNode=None, progress=None):
        ensureImagio()
        from imagio.mrml import logic

        return logic.segment_volume_node(slicer.mrmlScene, volumeNode, structures, segmentationNode, progress)

    def lesion(self, volumeNode, pointRas, segmentationNode=None, name="tumor"):
        ensureImagio()
        from imagio.mrml import logic

        return logic.lesion_from_point(slicer.mrmlScene, volumeNode, pointRas, segmentationNode, name)


    def segmentWithModel(self, volumeNode, model, segmentationNode=None, device=None, progress=None):
        """Deep-model segmentation (catalogue name or nnU-Net v2 folder) into new segments."""
        ensureImagio()
        ensureTorch()
        from imagio.mrml import logic

        return logic.model_segment_volume_node(slicer.mrmlScene, volumeNode, model, segmentationNode, device,
                                               progress)

    def importModel(self, name, zipPath):
        ensureImagio()
        from imagio.segmentation import models

        return models.import_zip(name, zipPath)


class IMAGIOSegmentationTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_segment_phantom()

    def test_segment_phantom(self):
        ensureImagio(askToInstall=False)
        from imagio import mrml, phantom

        ph = phantom.generate(spacing=3.0)
        ct = mrml.volume_to_node(ph.ct, slicer.mrmlScene, "phantom CT")
        node = IMAGIOSegmentationLogic().segment(ct, ["body", "lungs"])
        names = mrml.segment_names(node)
        self.assertIn("lung_left", names)
        self.assertIn("lung_right", names)
        logging.info("IMAGIOSegmentation test passed")
