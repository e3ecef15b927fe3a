"""Plain knowledge of the release system: no ``dagger`` import (a lint rule fails CI on one).

Each module is the single owner of its facts (versions, flags, ports, role names,
the pinning rule...). The Dagger wiring beside ``main.py`` turns these recipes
into containers; the tests run the very same recipes with real tools.
"""
