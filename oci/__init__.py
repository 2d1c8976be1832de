"""The pure OCI protocol core: digests, names, media types, manifests and token scopes.

Nothing in this package imports Django, so its tests need no database and run in milliseconds.
"""
