"""The HTTP layer: the app factory, routes of both APIs, and the one error-to-HTTP mapper."""
