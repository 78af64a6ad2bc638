"""Delivery of incident changes to other systems: the outbox, its dispatcher and the sinks."""
