"""The real-time recommendation service: ``recfuse serve`` (see :mod:`recfuse.serve.app`).

``store`` keeps events durably (SQLite or PostgreSQL through SQLAlchemy),
``state`` keeps every user's history in memory, ``engine`` scores with the
model in micro-batches, ``app`` is the FastAPI application, ``feedback``
turns stored events into training data for ``recfuse train --from-db``.
"""
