"""Adapters of the Dispatcher port."""
