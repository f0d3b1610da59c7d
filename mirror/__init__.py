"""``broker-hub mirror``: the agent a PyPI mirror operator runs beside their mirror.

It subscribes to the hub's PyPI topics, takes signed pushes, queues them durably in a small
SQLite file and turns each changed project into a sync of the mirror (devpi, proxpi, a command
such as bandersnatch, or an HTTP hook). It needs no hub on its machine; it imports from
``broker_hub`` only small pure helpers (signing).
"""
