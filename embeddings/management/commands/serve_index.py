import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from embeddings.index import IndexUnavailable, open_local
from embeddings.index.remote import IndexServer, parse_address


class Command(BaseCommand):
    help = (
        "Open the embedded vector store (VITRINE_INDEX_PATH) and serve it to this deployment's other "
        "processes (gunicorn workers, Celery workers), which set VITRINE_INDEX_SERVER to the same "
        "host:port. For one machine without a Qdrant server; keep it on loopback or a private network."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--bind",
            default=settings.VITRINE_INDEX_SERVER or "127.0.0.1:6390",
            help="host:port to listen on (default: VITRINE_INDEX_SERVER, else 127.0.0.1:6390)",
        )

    def handle(self, *args, bind: str, **options):
        if settings.QDRANT_URL:
            raise CommandError("QDRANT_URL is set: the processes share the Qdrant server; there is nothing to serve.")
        try:
            address = parse_address(bind)
        except ValueError as exc:
            raise CommandError(f"--bind: {exc}") from None
        try:
            index = open_local()
        except IndexUnavailable as exc:
            raise CommandError(str(exc)) from None
        try:
            server = IndexServer(address, index)
        except OSError as exc:
            index.close()
            raise CommandError(f"Cannot listen on {bind}: {exc.strerror or exc}") from None

        def stop(signum, frame):
            threading.Thread(target=server.shutdown, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"Serving the vector store at {settings.VITRINE_INDEX_PATH} on {bind}", ending="\n")
        self.stdout.flush()
        try:
            server.serve_forever()
        finally:
            server.server_close()
            index.close()
            self.stdout.write("Index server stopped; the store is closed.")
