"""person name listing index

A caseload lists each person in scope with their primary name. The index on
(person_id, kind, given, family) answers that from the index alone; it replaces the index on
person_id, which it starts with.

Revision ID: 1cb16686ccff
Revises: cd5748977e25
Create Date: 2026-11-24 03:50:25.860439
"""

from __future__ import annotations

from alembic import op

revision = "1cb16686ccff"
down_revision = "cd5748977e25"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("person_name", schema=None) as batch_op:
        batch_op.create_index(
            "ix_person_name_listing", ["person_id", "kind", "given", "family"], unique=False
        )
        batch_op.drop_index(batch_op.f("ix_person_name_person_id"))


def downgrade() -> None:
    with op.batch_alter_table("person_name", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_person_name_person_id"), ["person_id"], unique=False)
        batch_op.drop_index("ix_person_name_listing")
