"""Size limits for annotation geometry and imports, from the environment (see webapp/env.py)."""

from __future__ import annotations

from webapp.env import env_int

# Positions in one geometry (all rings and parts together).
MAX_VERTICES = env_int("ANNOTATION_MAX_VERTICES", 100_000, minimum=4)
# Features and positions in one imported file.
MAX_IMPORT_FEATURES = env_int("ANNOTATION_IMPORT_MAX_FEATURES", 250_000, minimum=1)
MAX_IMPORT_VERTICES = env_int("ANNOTATION_IMPORT_MAX_VERTICES", 25_000_000, minimum=4)
# Rows per INSERT in bulk imports.
IMPORT_BATCH_SIZE = env_int("ANNOTATION_IMPORT_BATCH_SIZE", 2_000, minimum=1)
