"""hash chains per library; the database refuses changing consent events and audit entries

Existing events and audit entries are brought into their library's chains in the order they
were written (by id). Whom an audit entry was about, and why, moves to audit_note, which
retention may remove while the entry stays.

Revision ID: 3f9c1e7a2b64
Revises: 175ac17fc432
Create Date: 2026-12-01 20:05:00

"""
from alembic import op
import sqlalchemy as sa

import consentsvc.models
from consentsvc.database import APPEND_ONLY, append_only_sql, drop_append_only_sql
from consentsvc.ledger import chain

revision = '3f9c1e7a2b64'
down_revision = '175ac17fc432'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
When = consentsvc.models.UTCDateTime(timezone=True)


def upgrade():
    op.create_table('chain_head',
    sa.Column('library_id', sa.Integer(), nullable=False),
    sa.Column('chain', sa.String(length=10), nullable=False),
    sa.Column('length', BigId, nullable=False),
    sa.ForeignKeyConstraint(['library_id'], ['library.id'], name=op.f('fk_chain_head_library_id_library')),
    sa.PrimaryKeyConstraint('library_id', 'chain', name=op.f('pk_chain_head'))
    )
    op.create_table('audit_note',
    sa.Column('entry_id', BigId, nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.String(length=300), nullable=True),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['entry_id'], ['audit_entry.id'], name=op.f('fk_audit_note_entry_id_audit_entry')),
    sa.ForeignKeyConstraint(['subject_id'], ['subject.id'], name=op.f('fk_audit_note_subject_id_subject')),
    sa.PrimaryKeyConstraint('entry_id', name=op.f('pk_audit_note'))
    )
    with op.batch_alter_table('audit_note', schema=None) as batch_op:
        batch_op.create_index('ix_audit_note_subject', ['subject_id', 'entry_id'], unique=False)
    op.execute(
        'INSERT INTO audit_note (entry_id, subject_id, detail, reason) '
        'SELECT id, subject_id, detail, reason FROM audit_entry '
        'WHERE subject_id IS NOT NULL OR detail IS NOT NULL OR reason IS NOT NULL'
    )
    with op.batch_alter_table('consent_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('library_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('seq', BigId, nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('evidence_commitment', sa.String(length=64), nullable=True))
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seq', BigId, nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('note_commitment', sa.String(length=64), nullable=True))

    _bring_into_chains(op.get_bind())

    with op.batch_alter_table('consent_event', schema=None) as batch_op:
        batch_op.alter_column('library_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('seq', existing_type=BigId, nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_consent_event_library_id'), ['library_id', 'seq'])
        batch_op.create_foreign_key(batch_op.f('fk_consent_event_library_id_library'), 'library', ['library_id'], ['id'])
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=BigId, nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_audit_entry_library_id'), ['library_id', 'seq'])
        batch_op.drop_index('ix_audit_entry_subject')
        batch_op.drop_constraint('fk_audit_entry_subject_id_subject', type_='foreignkey')
        batch_op.drop_column('subject_id')
        batch_op.drop_column('detail')
        batch_op.drop_column('reason')

    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for statement in append_only_sql(dialect, table):
            op.execute(statement)


def _bring_into_chains(connection):
    """Place every existing row in its library's chain, oldest first."""
    key = chain.commitment_key()
    libraries = connection.execute(sa.text('SELECT id, slug FROM library ORDER BY id')).all()
    event = sa.table(
        'consent_event', sa.column('id'), sa.column('subject_id'), sa.column('purpose_id'),
        sa.column('action'), sa.column('occurred_at', When), sa.column('channel'),
        sa.column('consent_text_id'), sa.column('actor'), sa.column('evidence_id'),
        sa.column('request_id'), sa.column('library_id'), sa.column('seq'), sa.column('hash'),
        sa.column('evidence_commitment'),
    )
    evidence = sa.table(
        'evidence', sa.column('id'), sa.column('created_at', When), sa.column('ip_address'),
        sa.column('user_agent'), sa.column('origin'), sa.column('details', sa.JSON()),
    )
    subject = sa.table('subject', sa.column('id'), sa.column('library_id'))
    entry = sa.table(
        'audit_entry', sa.column('id'), sa.column('library_id'), sa.column('staff_id'),
        sa.column('at', When), sa.column('action'), sa.column('seq'), sa.column('hash'),
        sa.column('note_commitment'),
    )
    for library_id, slug in libraries:
        codes = dict(connection.execute(
            sa.text('SELECT id, code FROM purpose WHERE library_id = :l'), {'l': library_id}).all())
        texts = {
            row[0]: {'id': row[0], 'version': row[1], 'language': row[2], 'sha256': row[3]}
            for row in connection.execute(sa.text(
                'SELECT t.id, t.version, t.language, t.sha256 FROM consent_text t '
                'JOIN purpose p ON p.id = t.purpose_id WHERE p.library_id = :l'), {'l': library_id})
        }
        rows = connection.execute(
            sa.select(event, evidence.c.created_at.label('ev_at'), evidence.c.ip_address,
                      evidence.c.user_agent, evidence.c.origin, evidence.c.details)
            .select_from(event.join(subject, subject.c.id == event.c.subject_id)
                         .outerjoin(evidence, evidence.c.id == event.c.evidence_id))
            .where(subject.c.library_id == library_id)
            .order_by(event.c.id)
        ).all()
        previous, places, updates = chain.GENESIS, {}, []
        for seq, row in enumerate(rows, start=1):
            places[row.id] = seq
            commitment = None
            if row.evidence_id is not None:
                commitment = chain.commit_to({
                    'created_at': chain.timestamp(row.ev_at), 'ip_address': row.ip_address,
                    'user_agent': row.user_agent, 'origin': row.origin, 'details': row.details or {},
                }, key)
            fields = chain.consent_fields(
                library=slug, seq=seq, subject=row.subject_id, purpose=codes[row.purpose_id],
                action=row.action, occurred_at=row.occurred_at, channel=row.channel,
                actor=row.actor, text=texts.get(row.consent_text_id),
                request=places.get(row.request_id) if row.request_id is not None else None,
            )
            previous = chain.link(previous, fields, commitment)
            updates.append({'b_id': row.id, 'b_lib': library_id, 'b_seq': seq, 'b_hash': previous,
                            'b_commitment': commitment})
        if updates:
            connection.execute(
                event.update().where(event.c.id == sa.bindparam('b_id')).values(
                    library_id=sa.bindparam('b_lib'), seq=sa.bindparam('b_seq'),
                    hash=sa.bindparam('b_hash'), evidence_commitment=sa.bindparam('b_commitment')),
                updates)
        consent_length = len(rows)

        notes = {
            row[0]: chain.note_part(row[1], row[2], row[3])
            for row in connection.execute(sa.text(
                'SELECT n.entry_id, n.subject_id, n.detail, n.reason FROM audit_note n '
                'JOIN audit_entry e ON e.id = n.entry_id WHERE e.library_id = :l'), {'l': library_id})
        }
        rows = connection.execute(
            sa.select(entry).where(entry.c.library_id == library_id).order_by(entry.c.id)).all()
        previous, updates = chain.GENESIS, []
        for seq, row in enumerate(rows, start=1):
            commitment = chain.commit_to(notes[row.id], key) if row.id in notes else None
            fields = chain.audit_fields(library=slug, seq=seq, staff=row.staff_id, at=row.at,
                                        action=row.action)
            previous = chain.link(previous, fields, commitment)
            updates.append({'b_id': row.id, 'b_seq': seq, 'b_hash': previous,
                            'b_commitment': commitment})
        if updates:
            connection.execute(
                entry.update().where(entry.c.id == sa.bindparam('b_id')).values(
                    seq=sa.bindparam('b_seq'), hash=sa.bindparam('b_hash'),
                    note_commitment=sa.bindparam('b_commitment')),
                updates)
        connection.execute(
            sa.text('INSERT INTO chain_head (library_id, chain, length) VALUES (:l, :c, :n)'),
            [{'l': library_id, 'c': chain.CONSENT, 'n': consent_length},
             {'l': library_id, 'c': chain.AUDIT, 'n': len(rows)}])


def downgrade():
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY:
        for statement in drop_append_only_sql(dialect, table):
            op.execute(statement)
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('detail', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('reason', sa.String(length=300), nullable=True))
    op.execute(
        'UPDATE audit_entry SET subject_id = (SELECT subject_id FROM audit_note WHERE entry_id = audit_entry.id), '
        'detail = (SELECT detail FROM audit_note WHERE entry_id = audit_entry.id), '
        'reason = (SELECT reason FROM audit_note WHERE entry_id = audit_entry.id)'
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.create_foreign_key('fk_audit_entry_subject_id_subject', 'subject', ['subject_id'], ['id'])
        batch_op.create_index('ix_audit_entry_subject', ['subject_id', 'at'], unique=False)
        batch_op.drop_constraint(batch_op.f('uq_audit_entry_library_id'), type_='unique')
        batch_op.drop_column('note_commitment')
        batch_op.drop_column('hash')
        batch_op.drop_column('seq')
    with op.batch_alter_table('consent_event', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_consent_event_library_id_library'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_consent_event_library_id'), type_='unique')
        batch_op.drop_column('evidence_commitment')
        batch_op.drop_column('hash')
        batch_op.drop_column('seq')
        batch_op.drop_column('library_id')
    op.drop_table('audit_note')
    op.drop_table('chain_head')
