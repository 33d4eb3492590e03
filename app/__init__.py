"""The flash-sale coupon service: FastAPI on PostgreSQL through psycopg 3 and psycopg_pool."""

__all__: list[str] = []
