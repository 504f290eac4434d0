"""The ReturnLens service: API, policy engine, storage, web pages and dock station."""
