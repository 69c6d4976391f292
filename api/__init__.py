"""The integration API, v1: API keys with scopes, catalog writes, image intake, search."""
