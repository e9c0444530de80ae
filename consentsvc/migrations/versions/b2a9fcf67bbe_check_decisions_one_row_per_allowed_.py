"""check decisions: one row per allowed person

Revision ID: b2a9fcf67bbe
Revises: 5b0ba47b7775
Create Date: 2026-12-01 11:13:03.308614

"""
from alembic import op
import sqlalchemy as sa

import consentsvc.models

# The two shapes of a decision's allowed people, for moving them across.
decision = sa.table('consent_decision', sa.column('id', sa.String), sa.column('allowed_subject_ids', sa.JSON))
recipient = sa.table('decision_recipient', sa.column('decision_id', sa.String), sa.column('subject_id', sa.Integer))

# revision identifiers, used by Alembic.
revision = 'b2a9fcf67bbe'
down_revision = '5b0ba47b7775'
branch_labels = None
depends_on = None


def upgrade():
    # Read the allowed people first: on SQLite, dropping the column rebuilds the table, which
    # foreign keys pointing at it (the new table's) would refuse.
    connection = op.get_bind()
    rows = [
        {'decision_id': decision_id, 'subject_id': sid}
        for decision_id, subject_ids in connection.execute(sa.select(decision.c.id, decision.c.allowed_subject_ids))
        for sid in sorted(set(subject_ids or []))
    ]
    with op.batch_alter_table('consent_decision', schema=None) as batch_op:
        batch_op.drop_column('allowed_subject_ids')

    op.create_table('decision_recipient',
    sa.Column('decision_id', sa.String(length=36), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['decision_id'], ['consent_decision.id'], name=op.f('fk_decision_recipient_decision_id_consent_decision')),
    sa.ForeignKeyConstraint(['subject_id'], ['subject.id'], name=op.f('fk_decision_recipient_subject_id_subject')),
    sa.PrimaryKeyConstraint('decision_id', 'subject_id', name=op.f('pk_decision_recipient'))
    )
    with op.batch_alter_table('decision_recipient', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decision_recipient_subject_id'), ['subject_id'], unique=False)
    if rows:
        connection.execute(recipient.insert(), rows)


def downgrade():
    connection = op.get_bind()
    allowed = {}
    for decision_id, subject_id in connection.execute(sa.select(recipient.c.decision_id, recipient.c.subject_id)):
        allowed.setdefault(decision_id, []).append(subject_id)
    with op.batch_alter_table('decision_recipient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decision_recipient_subject_id'))

    op.drop_table('decision_recipient')
    with op.batch_alter_table('consent_decision', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allowed_subject_ids', sa.JSON(), nullable=False, server_default='[]'))
    with op.batch_alter_table('consent_decision', schema=None) as batch_op:
        batch_op.alter_column('allowed_subject_ids', server_default=None)
    for decision_id, subject_ids in allowed.items():
        connection.execute(
            decision.update().where(decision.c.id == decision_id).values(allowed_subject_ids=sorted(subject_ids))
        )
