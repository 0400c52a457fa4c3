"""The real-time recommendation service: ``recfuse serve`` (see :mod:`recfuse.serve.app`).

``store`` keeps events durably (SQLite or PostgreSQL through SQLAlchemy, on
the tables of :mod:`recfuse.data.eventdb`), ``state`` keeps every user's
history in memory, ``engine`` scores with the model in micro-batches,
``service`` holds them together for the routes.  The HTTP side: ``schemas``
(request bodies), ``auth`` (API keys), ``errors`` (422/409 answers),
``routes`` (one router per resource) and ``app`` (``create_app`` wiring them).
``recfuse train --from-db`` reads the store through
:mod:`recfuse.train.feedback`, without importing this package.
"""
