"""decision recipients without foreign keys: the check writes ids it has just read

Revision ID: 9c4d2a7e1b36
Revises: 5b8e2f4a7c19
Create Date: 2026-12-02 08:50:00

"""
from alembic import op


revision = '9c4d2a7e1b36'
down_revision = '5b8e2f4a7c19'
branch_labels = None
depends_on = None

SUBJECT_FK = 'fk_decision_recipient_subject_id_subject'
DECISION_FK = 'fk_decision_recipient_decision_id_consent_decision'


def upgrade():
    # Checked per row, the two keys took two thirds of writing a check's 6,000 allowed
    # people on PostgreSQL (docs/performance.md). Only ledger.record_decision writes these
    # rows, from subject ids read in the same request and the decision it inserted just
    # before; people are never deleted, and retention deletes a decision's rows with it.
    with op.batch_alter_table('decision_recipient') as batch_op:
        batch_op.drop_constraint(SUBJECT_FK, type_='foreignkey')
        batch_op.drop_constraint(DECISION_FK, type_='foreignkey')


def downgrade():
    with op.batch_alter_table('decision_recipient') as batch_op:
        batch_op.create_foreign_key(DECISION_FK, 'consent_decision', ['decision_id'], ['id'])
        batch_op.create_foreign_key(SUBJECT_FK, 'subject', ['subject_id'], ['id'])
