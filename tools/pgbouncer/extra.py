"""How to install the optional `[pgbouncer]` extra (psycopg) into *this* installation."""

from __future__ import annotations

from pathlib import Path

__all__ = ["INSTALL_HINT", "install_hint"]


def install_hint() -> str:
    """A clone (source or editable install) takes the extra from its folder, an installed wheel from the index."""
    here = Path(__file__).resolve()
    if not any(part in ("site-packages", "dist-packages") for part in here.parts):
        clone = next((p for p in here.parents if (p / "pyproject.toml").is_file()), None)
        return "pip install -e '.[pgbouncer]'" + (f" in {clone}" if clone else "")
    return "pip install 'poolpilot[pgbouncer]'"


INSTALL_HINT = install_hint()
