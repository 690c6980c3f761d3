"""live ledger: orders, fills, positions, cash, equity, bars, latency, kill switch, meta, outbox

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-05 14:59:28.038314
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _create_live_bars()
    _create_live_cash()
    _create_live_equity()
    _create_live_fills()
    _create_live_killswitch()
    _create_live_latency()
    _create_live_meta()
    _create_live_orders()
    _create_live_outbox()
    _create_live_positions()


def _create_live_bars() -> None:
    """The ``live_bars`` table."""
    op.create_table('live_bars',
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('last_bar_time', sa.BigInteger(), nullable=False),
    sa.Column('bars_processed', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('symbol')
    )


def _create_live_cash() -> None:
    """The ``live_cash`` table."""
    op.create_table('live_cash',
    sa.Column('currency', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('currency')
    )


def _create_live_equity() -> None:
    """The ``live_equity`` table."""
    op.create_table('live_equity',
    sa.Column('time_ms', sa.BigInteger(), nullable=False),
    sa.Column('equity', sa.Float(), nullable=False),
    sa.Column('cash', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('time_ms')
    )


def _create_live_fills() -> None:
    """The ``live_fills`` table and its indexes."""
    op.create_table('live_fills',
    sa.Column('fill_id', sa.String(length=64), nullable=False),
    sa.Column('client_order_id', sa.String(length=64), nullable=False),
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('qty', sa.Float(), nullable=False),
    sa.Column('price', sa.Float(), nullable=False),
    sa.Column('fee', sa.Float(), nullable=False),
    sa.Column('fee_currency', sa.String(length=16), nullable=False),
    sa.Column('time_ms', sa.BigInteger(), nullable=False),
    sa.Column('recorded_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('fill_id')
    )
    with op.batch_alter_table('live_fills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_fills_client_order_id'), ['client_order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_live_fills_time_ms'), ['time_ms'], unique=False)


def _create_live_killswitch() -> None:
    """The ``live_killswitch`` table."""
    op.create_table('live_killswitch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('halted', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.String(length=1000), nullable=False),
    sa.Column('since_ms', sa.BigInteger(), nullable=True),
    sa.Column('peak_equity', sa.Float(), nullable=True),
    sa.Column('day', sa.Integer(), nullable=True),
    sa.Column('day_start_equity', sa.Float(), nullable=True),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def _create_live_latency() -> None:
    """The ``live_latency`` table."""
    op.create_table('live_latency',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('time_ms', sa.BigInteger(), nullable=False),
    sa.Column('micros', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def _create_live_meta() -> None:
    """The ``live_meta`` table."""
    op.create_table('live_meta',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )


def _create_live_orders() -> None:
    """The ``live_orders`` table and its index."""
    op.create_table('live_orders',
    sa.Column('client_order_id', sa.String(length=64), nullable=False),
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('side', sa.String(length=4), nullable=False),
    sa.Column('qty', sa.Float(), nullable=False),
    sa.Column('price', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('bar_time', sa.BigInteger(), nullable=False),
    sa.Column('strategy', sa.String(length=64), nullable=False),
    sa.Column('reduce_only', sa.Boolean(), nullable=False),
    sa.Column('venue_order_id', sa.String(length=64), nullable=True),
    sa.Column('filled_qty', sa.Float(), nullable=False),
    sa.Column('avg_price', sa.Float(), nullable=True),
    sa.Column('reason', sa.String(length=400), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.Column('sent_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('client_order_id')
    )
    with op.batch_alter_table('live_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_orders_status'), ['status'], unique=False)


def _create_live_outbox() -> None:
    """The ``live_outbox`` table and its index."""
    op.create_table('live_outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('msg_id', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('created_ms', sa.BigInteger(), nullable=False),
    sa.Column('published_ms', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('msg_id')
    )
    with op.batch_alter_table('live_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_live_outbox_pending', ['published_ms', 'id'], unique=False)


def _create_live_positions() -> None:
    """The ``live_positions`` table."""
    op.create_table('live_positions',
    sa.Column('symbol', sa.String(length=40), nullable=False),
    sa.Column('qty', sa.Float(), nullable=False),
    sa.Column('cost', sa.Float(), nullable=False),
    sa.Column('baseline', sa.Float(), nullable=True),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('symbol')
    )


def downgrade() -> None:
    op.drop_table('live_positions')
    with op.batch_alter_table('live_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_live_outbox_pending')

    op.drop_table('live_outbox')
    with op.batch_alter_table('live_orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_orders_status'))

    op.drop_table('live_orders')
    op.drop_table('live_meta')
    op.drop_table('live_latency')
    op.drop_table('live_killswitch')
    with op.batch_alter_table('live_fills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_fills_time_ms'))
        batch_op.drop_index(batch_op.f('ix_live_fills_client_order_id'))

    op.drop_table('live_fills')
    op.drop_table('live_equity')
    op.drop_table('live_cash')
    op.drop_table('live_bars')
