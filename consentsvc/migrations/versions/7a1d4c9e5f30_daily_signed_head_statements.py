"""daily signed head statements of each library's chains (ledger_anchor)

Revision ID: 7a1d4c9e5f30
Revises: 3d5e7a9c1b20
Create Date: 2026-12-01 20:30:00

"""
from alembic import op
import sqlalchemy as sa

import consentsvc.models


revision = '7a1d4c9e5f30'
down_revision = '3d5e7a9c1b20'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table('ledger_anchor',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('library_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('issued_at', consentsvc.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('consent_length', BigId, nullable=False),
    sa.Column('consent_hash', sa.String(length=64), nullable=False),
    sa.Column('audit_length', BigId, nullable=False),
    sa.Column('audit_hash', sa.String(length=64), nullable=False),
    sa.Column('statement', sa.JSON(), nullable=False),
    sa.Column('mailed_at', consentsvc.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['library_id'], ['library.id'], name=op.f('fk_ledger_anchor_library_id_library')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_anchor')),
    sa.UniqueConstraint('library_id', 'day', name=op.f('uq_ledger_anchor_library_id'))
    )


def downgrade():
    op.drop_table('ledger_anchor')
