"""The web console: its static file server (Python) and its single-page app (``web/``)."""
