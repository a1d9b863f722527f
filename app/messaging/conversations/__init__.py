"""Conversations: what an inbound message means: keywords, journeys, and the routing rules."""
