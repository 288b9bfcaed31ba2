"""Adapters of the JobStore port."""
