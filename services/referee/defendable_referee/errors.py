"""One error base for the referee; messages are short and carry the facts.

A submission that fails a check is *data* (a Finding), never one of these:
these are for broken invariants at the edges (a sheet file that does not
validate, an unknown sheet id) and for the evaluator refusing an expression,
which the math rule turns into a finding.
"""

from __future__ import annotations


class RefereeError(Exception):
    """Base of every error the referee raises on purpose."""


class EvaluationError(RefereeError):
    """The safe evaluator refused or could not finish an expression."""


class FlightSheetInvalid(RefereeError):
    """A Flight Sheet file does not decode or does not validate."""


class UnknownFlightSheet(RefereeError, LookupError):
    """No Flight Sheet with that id and version is in the library."""
