"""Gridwatch wiring: configuration, command line, service, HTTP API and console."""

__version__ = "0.1.0"
