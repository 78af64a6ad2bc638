"""Incidents: from rule events to one incident each, their lifecycle, deadlines, evidence and
reports, routed to the grid cell that owns the camera."""
