"""The benchmark harness for imgsearch (`python -m bench OUT_DIR [--smoke]`, from the repo root).

It is not installed with the product: it drives the installed `imgsearch` the way a user would,
next to naive baselines written here, so every speed claim in the issue "Benchmarks and speed"
can be checked on the machine at hand with one command.
"""
