"""initial schema: trades, patterns, regimes, episodes, agent states, quorum

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25 11:15:43.230998
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _create_agent_states()
    _create_audit_events()
    _create_episodes()
    _create_patterns()
    _create_proposals()
    _create_quorum_votes()
    _create_regimes()
    _create_trades()
    _create_decisions()
    _create_planner_weights()


def _create_agent_states() -> None:
    """The ``agent_states`` table."""
    op.create_table('agent_states',
    sa.Column('agent', sa.String(length=64), nullable=False),
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('agent', 'symbol')
    )


def _create_audit_events() -> None:
    """The ``audit_events`` table and its index."""
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('proposal_id', sa.String(length=128), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_proposal', ['proposal_id'], unique=False)


def _create_episodes() -> None:
    """The ``episodes`` table and its index."""
    op.create_table('episodes',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('data_time', sa.BigInteger(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.Float(), nullable=False),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('embedding', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('episodes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_episodes_data_time'), ['data_time'], unique=False)


def _create_patterns() -> None:
    """The ``patterns`` table."""
    op.create_table('patterns',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('mean', sa.Float(), nullable=False),
    sa.Column('std', sa.Float(), nullable=False),
    sa.Column('win_rate', sa.Float(), nullable=False),
    sa.Column('p05', sa.Float(), nullable=False),
    sa.Column('p95', sa.Float(), nullable=False),
    sa.Column('mean_slippage_bps', sa.Float(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('last_update', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )


def _create_proposals() -> None:
    """The ``proposals`` table and its index."""
    op.create_table('proposals',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('submitter', sa.String(length=64), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('data_time', sa.BigInteger(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proposals_data_time'), ['data_time'], unique=False)


def _create_quorum_votes() -> None:
    """The ``quorum_votes`` table and its index."""
    op.create_table('quorum_votes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('proposal_id', sa.String(length=128), nullable=False),
    sa.Column('manager', sa.String(length=64), nullable=False),
    sa.Column('approve', sa.Boolean(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('timestamp', sa.BigInteger(), nullable=False),
    sa.Column('signature', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('quorum_votes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quorum_votes_proposal_id'), ['proposal_id'], unique=False)


def _create_regimes() -> None:
    """The ``regimes`` table."""
    op.create_table('regimes',
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('volatility', sa.String(length=16), nullable=False),
    sa.Column('trend', sa.String(length=16), nullable=False),
    sa.Column('liquidity', sa.String(length=16), nullable=False),
    sa.Column('session', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('symbol', 'time', 'version')
    )


def _create_trades() -> None:
    """The ``trades`` table and its index."""
    op.create_table('trades',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('time', sa.BigInteger(), nullable=False),
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('qty', sa.Float(), nullable=False),
    sa.Column('price', sa.Float(), nullable=False),
    sa.Column('fee', sa.Float(), nullable=False),
    sa.Column('strategy', sa.String(length=64), nullable=False),
    sa.Column('data_time', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trades_time'), ['time'], unique=False)


def _create_decisions() -> None:
    """The ``decisions`` table and its index."""
    op.create_table('decisions',
    sa.Column('proposal_id', sa.String(length=128), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('approvals', sa.JSON(), nullable=False),
    sa.Column('rejections', sa.JSON(), nullable=False),
    sa.Column('decided_at', sa.BigInteger(), nullable=False),
    sa.Column('coordinator', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], ),
    sa.PrimaryKeyConstraint('proposal_id')
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decisions_seq'), ['seq'], unique=False)


def _create_planner_weights() -> None:
    """The ``planner_weights`` table."""
    op.create_table('planner_weights',
    sa.Column('proposal_id', sa.String(length=128), nullable=False),
    sa.Column('data_time', sa.BigInteger(), nullable=False),
    sa.Column('weights', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], ),
    sa.PrimaryKeyConstraint('proposal_id')
    )


def downgrade() -> None:
    op.drop_table('planner_weights')
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decisions_seq'))

    op.drop_table('decisions')
    with op.batch_alter_table('trades', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trades_time'))

    op.drop_table('trades')
    op.drop_table('regimes')
    with op.batch_alter_table('quorum_votes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quorum_votes_proposal_id'))

    op.drop_table('quorum_votes')
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proposals_data_time'))

    op.drop_table('proposals')
    op.drop_table('patterns')
    with op.batch_alter_table('episodes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_episodes_data_time'))

    op.drop_table('episodes')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_proposal')

    op.drop_table('audit_events')
    op.drop_table('agent_states')
