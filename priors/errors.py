"""The prior layer's error, reaching the user as one line without a traceback."""


class PriorError(ValueError):
    """A problem with a prior, checkpoint, configuration or training data, worded for the user.

    One line naming the file or option and the problem, e.g.
    ``"run/checkpoints/step-100.json: metadata must be a JSON object"``.
    """
