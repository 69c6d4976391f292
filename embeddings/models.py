from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone


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
        null=True,
        blank=True,
        validators=[MinValueValidator(-1.0), MaxValueValidator(1.0)],
        help_text="Set to use this instead of the calibrated text cutoff (a cosine similarity, -1 to 1)",
    )
    image_override = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(-1.0), MaxValueValidator(1.0)],
        help_text="Set to use this instead of the calibrated photo cutoff (a cosine similarity, -1 to 1)",
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


# --- Zero-shot tags: the model's suggestions for products, reviewed by a person ---------


class TagFacet(models.Model):
    """A facet of the zero-shot tag taxonomy (colour, pattern, material…)."""

    name = models.SlugField(max_length=50, unique=True, help_text="The product attribute it fills, e.g. colour")
    name_zh = models.CharField(max_length=50, blank=True)
    prompt = models.CharField(
        max_length=200, default="{value}", help_text="How a value is described to the model; {value} is replaced"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TagValue(models.Model):
    facet = models.ForeignKey(TagFacet, on_delete=models.CASCADE, related_name="values")
    value = models.CharField(max_length=100)
    value_zh = models.CharField(max_length=100, blank=True, help_text="Also described in Chinese when given")

    class Meta:
        ordering = ["facet", "value"]
        constraints = [models.UniqueConstraint(fields=["facet", "value"], name="unique_tag_value")]

    def __str__(self) -> str:
        return f"{self.facet.name}: {self.value}"


class TagSuggestion(models.Model):
    """The model's guess of a product's value for a facet, waiting for a person."""

    class State(models.TextChoices):
        SUGGESTED = "suggested", "Suggested"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    product = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="tag_suggestions")
    value = models.ForeignKey(TagValue, on_delete=models.CASCADE, related_name="suggestions")
    confidence = models.FloatField(help_text="The value's probability among the facet's values")
    # CLIP's softmax is near 1.0 for most suggestions of a well-trained model: the margin
    # tells the clear ones from the close calls, for review.
    margin = models.FloatField(
        null=True,
        blank=True,
        help_text="How much closer the photos are to this value than to the runner-up (cosine difference)",
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.SUGGESTED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-confidence", "id"]
        constraints = [models.UniqueConstraint(fields=["product", "value"], name="unique_tag_suggestion")]

    def __str__(self) -> str:
        return f"{self.product.external_id}: {self.value} ({self.confidence:.2f}, {self.state})"


class CaptionSuggestion(models.Model):
    """A vision model's alt text (and, for a product without one, description) of a photo,
    in English and Chinese, waiting for a person (embeddings.captions). One per image: a new
    caption replaces a pending one."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"

    image = models.OneToOneField("catalog.ProductImage", on_delete=models.CASCADE, related_name="caption_suggestion")
    product = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="caption_suggestions")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    # Empty where the image already had alt text (or the product a description): only
    # what is missing is asked for and shown.
    alt_en = models.CharField("Alt text (English)", max_length=300, blank=True)
    alt_zh = models.CharField("Alt text (Chinese)", max_length=300, blank=True)
    description_en = models.TextField("Description (English)", blank=True)
    description_zh = models.TextField("Description (Chinese)", blank=True)
    error = models.TextField(blank=True, help_text="Why no caption was written (failed only)")
    model = models.CharField(max_length=200, blank=True, help_text="The model that wrote it")
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"caption of image {self.image_id} ({self.state})"


# --- Blue/green: which embedding space serves searches --------------------------------


class IndexSpace(models.Model):
    """An embedding space's collection and how to load its model.

    The live one serves every search. After a model change the configured model's space is
    built in the background (new images go to both), and takes over, alias and all, once it
    holds every image; the old one is then retired (its collection kept until dropped).
    """

    class State(models.TextChoices):
        BUILDING = "building", "Building"
        LIVE = "live", "Live"
        RETIRED = "retired", "Retired"

    embedding_space = models.CharField(max_length=300, unique=True)
    model_name = models.CharField(max_length=500, help_text="VITRINE_CLIP_MODEL that loads it")
    pretrained = models.CharField(max_length=1000, blank=True, help_text="VITRINE_CLIP_PRETRAINED that loads it")
    state = models.CharField(max_length=10, choices=State.choices, default=State.BUILDING)
    created_at = models.DateTimeField(auto_now_add=True)
    live_since = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["state"], condition=models.Q(state="live"), name="one_live_space"),
        ]

    def __str__(self) -> str:
        return f"{self.embedding_space} ({self.state})"


class Synonym(models.Model):
    """Words shoppers use for the same thing (cup, mug, 杯子, 马克杯), applied to the
    keyword side of search: a query with one of them also finds products with the others."""

    terms = models.CharField(
        max_length=1000,
        help_text="Words or phrases that mean the same, separated by commas: cup, mug, 杯子, 马克杯",
    )
    one_way = models.BooleanField(
        default=False,
        help_text="Only the first word stands for the others (crimson → red), not the other way round.",
    )
    is_active = models.BooleanField(default=True, help_text="Untick to stop applying it without deleting it.")
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["terms"]

    def __str__(self) -> str:
        return self.terms

    @property
    def words(self) -> list[str]:
        return [word.strip() for word in self.terms.replace("，", ",").split(",") if word.strip()]

    def clean(self) -> None:
        words = self.words
        if len(words) < 2:
            raise ValidationError({"terms": "Give at least two words, separated by commas (cup, mug)."})
        if len({word.casefold() for word in words}) < len(words):
            raise ValidationError({"terms": "A word is listed twice."})
        if any(len(word) > 100 for word in words):
            raise ValidationError({"terms": "A word or phrase is over 100 characters."})


# --- Merchandising: rules that steer the search (embeddings/search/rules.py applies them) --


class RulePart(models.Model):
    """A rule or one of its rows: saving or deleting one tells every process to re-read
    the rules (they are cached per process). In save() rather than in the admin, so that
    every way of writing a rule (admin, shell, a fixture) is seen at once."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        _rules_changed()

    def delete(self, *args, **kwargs):
        deleted = super().delete(*args, **kwargs)
        _rules_changed()
        return deleted


def _rules_changed() -> None:
    from embeddings.search.rules import rules_touch_on_commit  # the search imports these models

    rules_touch_on_commit()


class MerchandisingRule(RulePart):
    """For the searches it matches (in its date window, while enabled): pin products to
    positions, hide products, and boost or bury products by a field. README, "Merchandising
    rules", says exactly what each does."""

    class Match(models.TextChoices):
        EXACT = "exact", "Query is exactly the phrase"
        CONTAINS = "contains", "Query contains the phrase"
        CATEGORY = "category", "Query is for the category (filtered on it, or its words name it)"
        ANY = "any", "Every search"

    name = models.CharField(max_length=200)
    is_enabled = models.BooleanField(
        "enabled", default=True, help_text="Untick to stop applying it without deleting it."
    )
    match = models.CharField(max_length=10, choices=Match.choices, default=Match.EXACT)
    phrase = models.CharField(
        max_length=200,
        blank=True,
        help_text="The words (exact, contains) or the category's name (category); compared "
        "case-insensitively, spaces collapsed. Empty for every search.",
    )
    starts_at = models.DateTimeField(null=True, blank=True, help_text="Empty: applies already")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty: no end (applies until this time)")
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "merchandising rule"

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.match != self.Match.ANY and not self.phrase.strip():
            raise ValidationError({"phrase": "Give the words (or the category) the rule is for."})
        if self.starts_at and self.ends_at and self.starts_at >= self.ends_at:
            raise ValidationError({"ends_at": "The end must be after the start."})


class RulePin(RulePart):
    """Put a product at a position of the whole result list (1 = the first result)."""

    rule = models.ForeignKey(MerchandisingRule, on_delete=models.CASCADE, related_name="pins")
    product = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField(validators=[MinValueValidator(1)], help_text="1 = the first result")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"#{self.position}: {self.product_id}"


class RuleHide(RulePart):
    """Never list the product for the rule's searches (nor count it)."""

    rule = models.ForeignKey(MerchandisingRule, on_delete=models.CASCADE, related_name="hides")
    product = models.ForeignKey("catalog.Product", on_delete=models.CASCADE, related_name="+")

    def __str__(self) -> str:
        return f"hide {self.product_id}"


class RuleBoost(RulePart):
    """Multiply the ranking score of the products a field selects: factor 1.5 lifts them,
    0.5 buries them (README, "Merchandising rules")."""

    class Field(models.TextChoices):
        BRAND = "brand", "Brand is"
        CATEGORY = "category", "Category is"
        ATTRIBUTE = "attribute", "Attribute (key; value, or range, or true)"
        PRICE = "price", "Price in range"

    rule = models.ForeignKey(MerchandisingRule, on_delete=models.CASCADE, related_name="boosts")
    field = models.CharField(max_length=10, choices=Field.choices)
    key = models.CharField(max_length=100, blank=True, help_text="The attribute's key (attribute only): in_stock")
    value = models.CharField(
        max_length=200,
        blank=True,
        help_text="Brand, category or attribute value; for an attribute, empty: "
        "its number in the range, or (no range) any true value",
    )
    low = models.DecimalField(
        max_digits=14, decimal_places=4, null=True, blank=True, help_text="Range start, inclusive (empty: none)"
    )
    high = models.DecimalField(
        max_digits=14, decimal_places=4, null=True, blank=True, help_text="Range end, exclusive (empty: none)"
    )
    factor = models.FloatField(
        default=1.5,
        validators=[MinValueValidator(0.01), MaxValueValidator(100.0)],
        help_text="Over 1 boosts (1.5: half again), under 1 buries (0.5: halved)",
    )

    def __str__(self) -> str:
        return f"{self.field} ×{self.factor}"

    def clean(self) -> None:
        if self.factor is not None and self.factor <= 0:
            raise ValidationError({"factor": "The factor must be positive (under 1 buries, over 1 boosts)."})
        if self.field in (self.Field.BRAND, self.Field.CATEGORY) and not self.value.strip():
            raise ValidationError({"value": "Give the brand or category."})
        if self.field == self.Field.ATTRIBUTE and not self.key.strip():
            raise ValidationError({"key": "Give the attribute's key."})
        if self.field == self.Field.PRICE and self.low is None and self.high is None:
            raise ValidationError({"low": "Give a price range (a start, an end, or both)."})
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValidationError({"high": "The range's end must be above its start."})
