"""published signing keys (receipts and ledger heads)

Revision ID: 3d5e7a9c1b20
Revises: 3f9c1e7a2b64
Create Date: 2026-12-01 19:55:00.000000

"""
from alembic import op
import sqlalchemy as sa

import consentsvc.models


# revision identifiers, used by Alembic.
revision = '3d5e7a9c1b20'
down_revision = '3f9c1e7a2b64'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('signing_key',
    sa.Column('kid', sa.String(length=43), nullable=False),
    sa.Column('x', sa.String(length=43), nullable=False),
    sa.Column('first_used_at', consentsvc.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('kid', name=op.f('pk_signing_key'))
    )


def downgrade():
    op.drop_table('signing_key')
