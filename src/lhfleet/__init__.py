"""lhfleet: run Google Lighthouse over many URLs, several runs each, in parallel."""

__version__ = "0.1.0"
