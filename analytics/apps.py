from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """What shoppers searched for and what they did next: no personal data (no IP, no user
    id), one random id per search, kept ``VITRINE_ANALYTICS_DAYS``."""

    name = "analytics"
    verbose_name = "Search analytics"
