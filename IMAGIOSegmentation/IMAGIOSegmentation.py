"""IMAGIOSegmentation: CT in, the structures a needle plan needs out, as one segmentation.

Thin Slicer layer: the Widget handles the GUI, the Logic passes MRML nodes to
``imagio.mrml.logic`` where the work happens (tested outside Slicer on slicer-core MRML).
Heavy packages are imported inside methods and installed at first use, after asking.
"""

import logging
import os
import sys
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

STRUCTURES = ("body", "bones", "lungs", "airways", "emphysema", "vessels")
HELP_URL = "https://github.com/imagio-planning/IMAGIO#use-it-in-3d-slicer"
DEVICES = ["auto", "cpu", "cuda"]


def ensureImagio(askToInstall=True, requirements=True):
    """The ``imagio`` package, importable, with its pip requirements installed once after the
    user agrees (IMAGIOLib.dependencies; never at import time)."""
    return imagioLib().dependencies.ensureImagio(__file__, askToInstall, requirements)


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
            raise RuntimeError(_("Deep models need PyTorch: install the 'PyTorch' extension from the "
                                 "Extensions Manager and restart Slicer")) from None
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True) is None:
            raise RuntimeError(_("PyTorch is not installed; deep models cannot run"))
    try:
        import dynamic_network_architectures  # noqa: F401
    except ImportError:
        if not slicer.util.confirmOkCancelDisplay(
                _("Deep models need the 'dynamic-network-architectures' package (nnU-Net's network "
                  "classes). Install it now?"), "IMAGIO"):
            raise RuntimeError(_("dynamic-network-architectures is not installed"))
        slicer.util.pip_install(["einops"])
        slicer.util.pip_install(["--no-deps", "dynamic-network-architectures==0.4.4"])


class IMAGIOSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("IMAGIO Segmentation")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "IMAGIO")]
        self.parent.dependencies = []
        self.parent.contributors = ["IMAGIO developers"]
        self.parent.helpText = _(
            "Segment the structures a needle or bronchoscopy plan needs from a CT: body and skin, "
            "bones, lungs, airways, emphysema and contrast vessels by rules; a lesion from one click. "
            "Results are added as new segments; existing segments are never changed. "
            'See the <a href="{url}">IMAGIO documentation</a>.').format(url=HELP_URL)
        self.parent.acknowledgementText = _("IMAGIO is open source (Apache-2.0).")
        slicer.app.connect("startupCompleted()", registerSampleData)


def loadPhantomSample(source=None):
    """SampleData custom loader: generate the digital patient (no download) into the scene."""
    ensureImagio()
    from imagio.mrml.sample import phantom_to_scene

    _, ct, seg = phantom_to_scene(slicer.mrmlScene, spacing=1.5)
    slicer.util.setSliceViewerLayers(background=ct, fit=True)
    return [ct, seg]


def registerSampleData():
    """The IMAGIO phantom (a synthetic contrast CT with reference labels, generated locally) in
    the Sample Data module."""
    import SampleData

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="IMAGIO",
        sampleName="IMAGIOPhantom",
        thumbnailFileName=os.path.join(os.path.dirname(__file__), "Resources", "Icons", "IMAGIOSegmentation.png"),
        uris="imagio://phantom",
        fileNames="IMAGIOPhantom.nrrd",
        nodeNames="IMAGIO phantom CT",
        customDownloader=loadPhantomSample,
    )


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
    # the model combo box is filled from the catalogue at run time, so it is not bound to this
    # field by SlicerParameterName (a bound QComboBox needs a fixed Choice); the widget keeps both in step
    modelName: str = "total_fast"
    modelDevice: Annotated[str, Choice(DEVICES)] = "auto"


class IMAGIOSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.longRun = None

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
        self.longRun = imagioLib().longrun.LongRun(self.ui.progressBar, self.ui.statusLabel, self.ui.cancelButton,
                                                    self._checkCanApply)
        self.ui.runModelButton.connect("clicked(bool)", self.onRunModelButton)
        self.ui.importModelButton.connect("clicked(bool)", self.onImportModelButton)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChosen)
        self.ui.labelFilePathLineEdit.connect("currentPathChanged(QString)", self._checkCanApply)
        self.initializeParameterNode()
        self._fillModelChoices()

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
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.inputVolume = first

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self.ui.modelComboBox.setCurrentText(self._parameterNode.modelName)
        self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None):
        """Each action button is enabled only when its inputs are set (and nothing is running)."""
        p = self._parameterNode
        hasVolume = bool(p and p.inputVolume) and not (self.longRun and self.longRun.running)
        hasPoint = bool(p and p.lesionPoint and p.lesionPoint.GetNumberOfControlPoints() > 0)
        self.ui.segmentButton.enabled = hasVolume
        self.ui.runModelButton.enabled = hasVolume
        self.ui.loadButton.enabled = hasVolume and bool(self.ui.labelFilePathLineEdit.currentPath)
        self.ui.lesionButton.enabled = hasVolume and hasPoint and bool(p.lesionName)
        self.ui.importModelButton.enabled = not (self.longRun and self.longRun.running)

    def _run(self, fn):
        """``fn()`` with the busy state, progress bar and Cancel; errors shown, None returned."""
        with self.longRun.run(), slicer.util.tryWithErrorDisplay(_("IMAGIO segmentation failed."), waitCursor=True):
            return fn()

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
        node = self._run(lambda: self.logic.segment(p.inputVolume, chosen, p.outputSegmentation, self.longRun.progress))
        if node is not None:
            p.outputSegmentation = node

    def onModelChosen(self, index=None):
        name = self.ui.modelComboBox.currentText
        if self._parameterNode and name:
            self._parameterNode.modelName = name

    def _fillModelChoices(self):
        """Catalogue models into the combo box (name as the item text, details as its tooltip)."""
        try:
            choices = self.logic.modelChoices()
        except Exception as e:  # the section stays usable with a model folder
            choices = []
            self.ui.modelInfoLabel.setToolTip(_("model catalogue unavailable: {error}").format(error=e))
        current = self._parameterNode.modelName if self._parameterNode else None
        wasBlocked = self.ui.modelComboBox.blockSignals(True)
        self.ui.modelComboBox.clear()
        for n, (name, description) in enumerate(choices):
            self.ui.modelComboBox.addItem(name)
            self.ui.modelComboBox.setItemData(n, description, qt.Qt.ToolTipRole)
        self.ui.modelComboBox.blockSignals(wasBlocked)
        if current:
            self.ui.modelComboBox.setCurrentText(current)
        if self.ui.modelComboBox.currentText != current:  # a saved model no longer in the catalogue
            self.onModelChosen()

    def onRunModelButton(self):
        p = self._parameterNode
        model = self.ui.modelFolderPathLineEdit.currentPath or p.modelName
        device = None if p.modelDevice == "auto" else p.modelDevice
        node = self._run(lambda: self.logic.segmentWithModel(p.inputVolume, model, p.outputSegmentation, device,
                                                             self.longRun.progress))
        if node is not None:
            p.outputSegmentation = node
        self._fillModelChoices()

    def onImportModelButton(self):
        path = qt.QFileDialog.getOpenFileName(None, _("Model zip"), "", _("Zip files (*.zip)"))
        if not path:
            return
        name = self._parameterNode.modelName
        self._run(lambda: self.logic.importModel(name, path))
        self._fillModelChoices()

    def onLesionButton(self):
        p = self._parameterNode
        if not p.lesionPoint or p.lesionPoint.GetNumberOfControlPoints() < 1:
            slicer.util.errorDisplay(_("Place a point inside the lesion first."))
            return
        point = [0.0, 0.0, 0.0]
        p.lesionPoint.GetNthControlPointPositionWorld(0, point)
        result = self._run(lambda: self.logic.lesion(p.inputVolume, point, p.outputSegmentation, p.lesionName))
        if result is not None:
            node, meas = result
            p.outputSegmentation = node
            # a click-dependent or leaked outline gives no size as the lesion's, neither volume nor
            # diameters (trial 68 M5), with its reason in one place (LesionMeasurements.size_withheld);
            # the outline's own volume is named as the outline's
            if meas.size_withheld:
                self.ui.statusLabel.setText(
                    _("{name}: no size is given ({why}; outline {v:.1f} mL), see the warnings").format(
                        name=p.lesionName, why=meas.size_withheld, v=meas.volume_ml))
            else:
                self.ui.statusLabel.setText(
                    _("{name}: {v:.2f} mL, long axis {long:.1f} mm, short axis {short:.1f} mm").format(
                        name=p.lesionName, v=meas.volume_ml, long=meas.long_axis_mm, short=meas.short_axis_mm))


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

    def modelChoices(self):
        """(name, description) of the catalogue's models; needs no pip package (no question asked)."""
        ensureImagio(requirements=False)
        from imagio.mrml import logic

        return logic.model_choices()

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
