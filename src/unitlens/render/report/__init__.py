"""The browsable static HTML report of a run folder: measured claims, a unit browser, figures, tables."""

from unitlens.render.report.builder import write_report

__all__ = ["write_report"]
