from django.contrib import admin

from embeddings.models import RelevanceCutoff


@admin.register(RelevanceCutoff)
class RelevanceCutoffAdmin(admin.ModelAdmin):
    """The relevance cutoffs per embedding space: calibrated values, and overrides."""

    list_display = ["embedding_space", "text_auto", "text_override", "image_auto", "image_override", "calibrated_at"]
    fields = [
        "embedding_space",
        ("text_auto", "text_override"),
        ("image_auto", "image_override"),
        "sample_products",
        "stats",
        "calibrated_at",
    ]
    readonly_fields = ["embedding_space", "text_auto", "image_auto", "sample_products", "stats", "calibrated_at"]

    def has_add_permission(self, request):
        return False  # rows come from calibration
