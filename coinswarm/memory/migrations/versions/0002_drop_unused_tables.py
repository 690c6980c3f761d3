"""drop the tables nothing reads or writes: agent_states, regimes

Agent state is persisted by the live runner's own step-protocol bytes, regimes are
recomputed causally from the bars; neither table ever had a writer. ``trades`` stays (the
live runner will fill it). The downgrade recreates both tables empty, as 0001 made them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table('agent_states')
    op.drop_table('regimes')


def downgrade() -> None:
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
    op.create_table('agent_states',
    sa.Column('agent', sa.String(length=64), nullable=False),
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('agent', 'symbol')
    )
