"""The local /auth/v1: GoTrue-compatible sign-in and the OAuth 2.1 authorization server."""
