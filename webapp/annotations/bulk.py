"""Fast bulk import on PostgreSQL: ids from the sequence in one query, rows through COPY.

Django's bulk_create spends most of 100,000 rows building model instances and array parameters;
COPY takes plain tuples. Column lists are spelled out here and must follow the models (the import
tests run on PostgreSQL, so a mismatch fails them).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from django.db import connection

from webapp.annotations.models import Annotation, AnnotationHistory, HistoryAction, shape_for
from webapp.annotations.qupath import ParsedFeature

_ANNOTATION_COLUMNS = (
    "id", "slide_id", "uuid", "object_type", "shape", "geometry", "nucleus_geometry", "min_x", "min_y", "max_x",
    "max_y", "extent_class", "label_id", "name", "note", "qupath_properties", "author_id", "model_id", "job_id",
    "version", "created_at", "updated_at", "deleted_at", "deleted_by_id",
)
_HISTORY_COLUMNS = ("annotation_id", "version", "action", "actor_id", "at", "before", "after")


def _copy(cursor, table: str, columns: tuple[str, ...], rows) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    with cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)


def copy_import(slide, user, features: list[ParsedFeature], label_ids: list[int | None], now: datetime) -> None:
    """Insert the annotations and their `imported` history rows (inside the caller's transaction)."""
    user_id = user.pk if user is not None else None
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor  # the psycopg cursor, for COPY
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [Annotation._meta.db_table, len(features)],
        )
        ids = [row[0] for row in cursor.fetchall()]
        geometries = [json.dumps(f.geometry, separators=(",", ":")) for f in features]

        def annotation_rows():
            for pk, feature, label_id, geometry in zip(ids, features, label_ids, geometries, strict=True):
                box = feature.bbox
                nucleus = json.dumps(feature.nucleus_geometry) if feature.nucleus_geometry is not None else None
                yield (pk, slide.pk, feature.uuid or uuid.uuid4(), feature.object_type, shape_for(feature.geometry),
                       geometry, nucleus, box.min_x, box.min_y, box.max_x, box.max_y, box.extent_class, label_id,
                       feature.name, "", json.dumps(feature.extra_properties), user_id, "", None, 1, now, now,
                       None, None)

        def history_rows():
            for pk, feature, label_id, geometry in zip(ids, features, label_ids, geometries, strict=True):
                # Annotation.snapshot() of the new row, with the geometry's JSON reused rather than encoded twice.
                rest = json.dumps({"shape": shape_for(feature.geometry), "object_type": feature.object_type,
                                   "nucleus_geometry": feature.nucleus_geometry, "label": label_id,
                                   "name": feature.name, "note": "", "deleted": False})
                yield (pk, 1, HistoryAction.IMPORTED.value, user_id, now, None, f'{{"geometry":{geometry},{rest[1:]}')

        _copy(cursor, Annotation._meta.db_table, _ANNOTATION_COLUMNS, annotation_rows())
        _copy(cursor, AnnotationHistory._meta.db_table, _HISTORY_COLUMNS, history_rows())
