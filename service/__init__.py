"""The background service: watches the roots, owns the stores, answers queries over HTTP.

This package's `__init__` stays light: the CLI imports `imgsearch.service.client` to find a
running service without loading torch or the stores."""
