"""The real-time recommendation service: ``recfuse serve`` (see :mod:`recfuse.serve.app`).

``store`` keeps events durably (SQLite or PostgreSQL through SQLAlchemy, on
the tables of :mod:`recfuse.data.eventdb`), ``state`` keeps every user's
history in memory, ``engine`` scores with the model in micro-batches,
``service`` holds them together for the routes, ``sync`` keeps several
such processes over one PostgreSQL store coherent (LISTEN/NOTIFY).  The HTTP side: ``schemas``
(request and answer models, the input rules), ``auth`` (API keys, checked
before a body is read), ``errors`` (error answers and the statuses each route
documents), ``routes`` (one router per resource) and ``app`` (``create_app``
wiring them, and the OpenAPI document with its security schemes).
``recfuse train --from-db`` reads the store through
:mod:`recfuse.train.feedback`, without importing this package.
"""
