"""Command-line importer: a folder of ``subject/photo.jpg`` files into a Facegrid collection
through the streaming BulkAddFaces RPC (``python -m facegrid_import --help``).

A client of the public API only: it imports the generated stubs of ``facegrid/`` and no service.
"""
