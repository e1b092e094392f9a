"""Store tests (a package, so its conftest.py has a module name of its own for mypy)."""
