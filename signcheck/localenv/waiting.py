"""The local environment's waits use signcheck's one wait loop (`signcheck.wait`)."""

from signcheck.wait import TRANSIENT, NotYet, wait_for

__all__ = ["TRANSIENT", "NotYet", "wait_for"]
