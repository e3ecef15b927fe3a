"""Single-file scripts copied into containers (stdlib plus pinned dependencies only).

They import nothing from this package; the package may import their constants.
"""
