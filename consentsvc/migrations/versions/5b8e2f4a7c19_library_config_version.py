"""a library's config_version, raised by every change to it, its purposes or their texts

Revision ID: 5b8e2f4a7c19
Revises: 7a1d4c9e5f30
Create Date: 2026-12-02 00:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '5b8e2f4a7c19'
down_revision = '7a1d4c9e5f30'
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN with a default: no table rebuild on SQLite, no rewrite on PostgreSQL.
    op.add_column(
        'library', sa.Column('config_version', sa.Integer(), server_default='0', nullable=False)
    )


def downgrade():
    with op.batch_alter_table('library') as batch_op:
        batch_op.drop_column('config_version')
