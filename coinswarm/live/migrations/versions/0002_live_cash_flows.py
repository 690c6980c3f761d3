"""live ledger: cash flows that are not fills (funding, interest, borrow fees)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 03:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('live_cash_flows',
    sa.Column('flow_id', sa.String(length=200), nullable=False),
    sa.Column('currency', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.Float(), nullable=False),
    sa.Column('time_ms', sa.BigInteger(), nullable=False),
    sa.Column('recorded_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('flow_id')
    )
    with op.batch_alter_table('live_cash_flows', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_cash_flows_time_ms'), ['time_ms'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('live_cash_flows', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_cash_flows_time_ms'))

    op.drop_table('live_cash_flows')
