"""The Celery app, configured from Django settings (the ``CELERY_`` namespace).

https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "searchsite.settings")

app = Celery("vitrine")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _survive_redis_outages() -> None:
    """Celery 5.7 closes a broken broker connection as soon as it is lost; closing the Redis
    channel then tries to hand its unacknowledged messages back through that connection,
    whose parameters are gone, and the AttributeError this raises (not a connection error,
    so nothing catches it) stops the worker for good ("Unrecoverable error: 'NoneType'
    object has no attribute 'hostname'"; found by tests/test_chaos.py, Redis restarted).
    Said as the connection error it is, it is ignored like the others: the worker
    reconnects, and the messages come back after the visibility timeout."""
    try:
        from kombu.transport import redis as kombu_redis
        from redis.exceptions import ConnectionError as RedisConnectionError
    except ImportError:  # no Redis transport: nothing to fix
        return
    original = kombu_redis.Channel._connparams

    def connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection was closed")
        return original(self, asynchronous=asynchronous)

    kombu_redis.Channel._connparams = connparams


_survive_redis_outages()
