"""Typed tasks: each measurement process as a frozen dataclass that builds its problems.

=====================  ==========================  ==================================
task                   class                        command
=====================  ==========================  ==================================
``ct-sparse-view``     :class:`SparseViewCT`        ``recon ct --projections V``
``ct-limited-angle``   :class:`LimitedAngleCT`      ``recon ct --arc DEGREES``
``mri``                :class:`UndersampledMRI`     ``recon mri --accel R``
``ct-mar``             :class:`MetalArtifacts`      ``recon mar``
``ct-scan``            :class:`ScanCT`              ``recon ct --geometry GEOM.json``
=====================  ==========================  ==================================

A new task is one module here (a :class:`Task` subclass: its settings, ``measurement`` or ``problem``,
``describe``) plus, when it needs one, a mask in :mod:`operators.masks`.
"""
from recon.tasks.base import METRICS_NOTE, Problem, Task
from recon.tasks.limited_angle import LimitedAngleCT
from recon.tasks.metal import MetalArtifacts
from recon.tasks.mri import UndersampledMRI
from recon.tasks.scan_ct import ScanCT
from recon.tasks.sparse_view import SparseViewCT

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (SparseViewCT, LimitedAngleCT, UndersampledMRI,
                                                           MetalArtifacts, ScanCT)}


def task_from_record(record: dict) -> Task:
    """The task a :meth:`Task.record` describes."""
    settings = {k: v for k, v in record.items() if k != "task"}
    return TASKS[record["task"]](**settings)


__all__ = ["METRICS_NOTE", "LimitedAngleCT", "MetalArtifacts", "Problem", "ScanCT", "SparseViewCT", "TASKS", "Task",
           "UndersampledMRI", "task_from_record"]
