from __future__ import annotations

from django.db import models


class RelevanceCutoff(models.Model):
    """Where "relevant" ends for one embedding space, for text and for photo queries.

    The automatic values come from :func:`embeddings.relevance.cutoffs_calibrate`; a person
    can override either in the admin (``VITRINE_TEXT_CUTOFF`` / ``VITRINE_IMAGE_CUTOFF``
    override both for every space).
    """

    embedding_space = models.CharField(max_length=300, unique=True)
    text_auto = models.FloatField(null=True, blank=True, help_text="Calibrated cutoff for text queries")
    image_auto = models.FloatField(null=True, blank=True, help_text="Calibrated cutoff for photo queries")
    text_override = models.FloatField(
        null=True, blank=True, help_text="Set to use this instead of the calibrated text cutoff"
    )
    image_override = models.FloatField(
        null=True, blank=True, help_text="Set to use this instead of the calibrated photo cutoff"
    )
    sample_products = models.PositiveIntegerField(default=0)
    stats = models.JSONField(default=dict, blank=True, help_text="The score percentiles the values came from")
    calibrated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"cutoffs for {self.embedding_space}"

    @property
    def text(self) -> float | None:
        return self.text_override if self.text_override is not None else self.text_auto

    @property
    def image(self) -> float | None:
        return self.image_override if self.image_override is not None else self.image_auto
