"""Adapters of the ReportStore port."""
