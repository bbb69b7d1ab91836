"""slotcast features package."""

from features.feast_import import skip_feast_typechecks

skip_feast_typechecks()  # before any module here imports Feast (see features/feast_import.py)
