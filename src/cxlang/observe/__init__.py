"""Showing a run to people: the live status line, the timeline picture, structured logs.

These use optional extras (``rich`` for the status line, ``matplotlib`` for the picture) and are
imported only when asked for; the runtime's own seam and trace writers are in
:mod:`cxlang.runtime.observe`.
"""
