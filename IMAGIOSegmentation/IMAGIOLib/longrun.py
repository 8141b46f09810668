"""Busy state, progress bar and Cancel of an IMAGIO module panel (shared by both modules)."""

from contextlib import contextmanager


class LongRun:
    """One long computation at a time in a panel: the progress bar shows imagio's progress
    callbacks, the Cancel button makes the next callback return False (imagio then raises
    errors.Cancelled and adds nothing to the scene), ``onStateChanged()`` is called when a run
    starts or ends (the panel re-checks which buttons may be pressed)."""

    def __init__(self, progressBar, statusLabel, cancelButton, onStateChanged=None):
        self.progressBar, self.statusLabel, self.cancelButton = progressBar, statusLabel, cancelButton
        self.onStateChanged = onStateChanged
        self.running = False
        self.cancelRequested = False
        cancelButton.connect("clicked(bool)", self.cancel)
        cancelButton.setEnabled(False)
        progressBar.setVisible(False)

    def cancel(self, checked=False):
        self.cancelRequested = True

    def progress(self, fraction, message):
        """imagio progress callback: returns False once Cancel was pressed."""
        import slicer

        self.progressBar.setVisible(True)
        self.progressBar.setValue(int(100 * fraction))
        self.statusLabel.setText(message)
        slicer.app.processEvents()
        return not self.cancelRequested

    @contextmanager
    def run(self):
        """``with longRun.run(): ...`` around one computation."""
        self.cancelRequested = False
        self.running = True
        self.cancelButton.setEnabled(True)
        self._changed()
        try:
            yield self
        finally:
            self.running = False
            self.cancelButton.setEnabled(False)
            self.progressBar.setVisible(False)
            self._changed()

    def _changed(self):
        if self.onStateChanged is not None:
            self.onStateChanged()
