"""imgsearch: local multimodal search for photo collections.

This package (the `core/` folder) holds what the indexer, the searcher and the CLI share:
settings, errors, model loading and the two stores.
"""

__version__ = "0.1.0"
