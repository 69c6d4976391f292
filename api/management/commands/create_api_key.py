"""Make an API key from the command line (deployments, scripts); the admin does the same."""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from api.keys import SCOPE_NAMES, api_key_create


class Command(BaseCommand):
    help = "Make an API key and print it (only its hash is stored: keep the printed key)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Who or what uses it")
        parser.add_argument(
            "--scope",
            action="append",
            choices=SCOPE_NAMES,
            dest="scopes",
            help="search and/or catalog:write (repeat for both; default: search)",
        )
        parser.add_argument("--days", type=int, help="Expires after this many days (default: never)")
        parser.add_argument("--rate", default="", help="Its own request rate, e.g. 1200/minute")

    def handle(self, *args, name, scopes, days, rate, **options):
        expires_at = timezone.now() + timedelta(days=days) if days else None
        try:
            new = api_key_create(name=name, scopes=scopes or ["search"], expires_at=expires_at, rate=rate)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stderr.write(f"API key {new.api_key.prefix}… ({', '.join(new.api_key.scopes)}) for {name!r}:")
        self.stdout.write(new.key)
