"""Incidents: the queue and its storage, evidence, lifecycle and delivery to sinks."""
