"""Exceptions raised by ferrotrace itself (never by a traced program or a trace function)."""

from ferrotrace._native import FerrotraceError

__all__ = ["FerrotraceError"]
