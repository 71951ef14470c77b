"""The export package's base error, in a module of its own so torch-free helpers
(:mod:`samplecnn.export.tensorrt`'s compatibility check) can raise it without importing torch.

``exit_code`` follows the one rule of every command: 2 = refused before work starts (a bad
option, checkpoint, audio source or missing library), 1 = the work ran and failed a check
(parity, int8 agreement, an engine that would not build); nothing is written either way.
"""


class ExportError(RuntimeError):
    """Export could not produce a valid graph or bundle. The message names the fix."""

    exit_code = 2


class ExportCheckFailed(ExportError):
    """The export ran and a graph or engine failed its check (see the message)."""

    exit_code = 1
