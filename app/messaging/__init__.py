"""The messaging domain: states, segments, routing, intake and dispatch."""
