"""The overview: one read that composes every domain's figures (`GET /v1/stats`)."""
