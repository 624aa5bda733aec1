"""Supervised assignment of faces to known people."""

from facekit.assign.person_assigner import UNASSIGNED, PersonAssigner

__all__ = ["UNASSIGNED", "PersonAssigner"]
