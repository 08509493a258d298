"""Errors that reach the user as one line, without a traceback."""


class InputError(ValueError):
    """A problem with what the user gave us (file, option, data), worded for them.

    The message should name the file or option and the problem, e.g.
    ``"scan.dcm: not a DICOM file"``.
    """
