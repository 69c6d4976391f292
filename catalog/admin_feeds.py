"""The feed imports' admin: upload a feed (its columns explained, a sample to start from),
follow its import, read what failed, and reach the products it left without a photo."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from catalog import selectors
from catalog import tasks as catalog_tasks
from catalog.feeds.formats import FORMATS
from catalog.models import FeedImport


class FeedImportPhotolessFilter(admin.SimpleListFilter):
    """The products a feed import left without a usable photo (the import's page links
    here); shown in the sidebar only while it is in use."""

    title = _("left without a photo by a feed import")
    parameter_name = "photoless_from_feed"

    def lookups(self, request, model_admin):
        value = self.value()
        job = FeedImport.objects.filter(pk=value).first() if value and value.isdigit() else None
        return [(str(job.pk), str(job))] if job else []

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        job = FeedImport.objects.filter(pk=value).first() if value.isdigit() else None
        if job is None:
            return queryset.none()
        return queryset.filter(pk__in=selectors.feed_import_photoless_products(job).values("pk"))


class FeedImportForm(forms.ModelForm):
    class Meta:
        model = FeedImport
        fields = ["file", "format"]
        widgets = {"format": forms.Select(choices=[("", "Detect"), *((f, f.upper()) for f in FORMATS)])}

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.VITRINE_MAX_FEED_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"The feed is {upload.size / 1048576:.1f} MB; the limit is {limit / 1048576:.0f} MB "
                "(VITRINE_MAX_FEED_BYTES). Import larger feeds with `manage.py import_feed`."
            )
        return upload


@admin.register(FeedImport)
class FeedImportAdmin(admin.ModelAdmin):
    """Upload a feed; a worker imports it (in the embedded mode, before the page returns)."""

    form = FeedImportForm
    list_display = [
        "__str__",
        "outcome",
        "photoless",
        "progress",
        "created",
        "updated",
        "unchanged",
        "failed",
        "image_failures",
        "report_link",
        "created_at",
    ]
    list_filter = ["state"]
    readonly_fields = [
        "name",
        "outcome",
        "photoless",
        "rows_total",
        "rows_done",
        "created",
        "updated",
        "unchanged",
        "failed",
        "images_added",
        "images_removed",
        "image_failures",
        "error",
        "report_link",
        "created_at",
        "finished_at",
    ]

    def get_fields(self, request, obj=None):
        return ["file", "format"] if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        return False if obj is not None else super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        obj.name = form.cleaned_data["file"].name[:255]
        super().save_model(request, obj, form, change)
        job_id = obj.pk
        transaction.on_commit(lambda: catalog_tasks.import_feed.delay(job_id), robust=True)

    @admin.display(description=_("State"), ordering="state")
    def outcome(self, job: FeedImport) -> str:
        """ "Done" only when nothing failed: rows skipped and photos that could not be
        fetched or read count as failures."""
        failures = job.failed + job.image_failures
        if job.state != FeedImport.State.DONE or not failures:
            return job.get_state_display()
        return ngettext("Done with %(count)d failure", "Done with %(count)d failures", failures) % {"count": failures}

    @admin.display(description=_("Products without a photo"))
    def photoless(self, job: FeedImport) -> str:
        if not job.image_failures:
            return "–"
        count = selectors.feed_import_photoless_products(job).count()
        if not count:
            return "–"
        url = f"{reverse('admin:catalog_product_changelist')}?{FeedImportPhotolessFilter.parameter_name}={job.pk}"
        text = ngettext("%(count)d product without a photo", "%(count)d products without a photo", count)
        return format_html('<a href="{}" class="photoless">{}</a>', url, text % {"count": count})

    @admin.display(description="Progress")
    def progress(self, obj) -> str:
        return f"{obj.rows_done} / {obj.rows_total} rows" if obj.rows_total else "–"

    @admin.display(description="Report")
    def report_link(self, obj) -> str:
        if not obj.report.strip() or obj.report.count("\n") < 2:
            return "–"
        url = reverse("admin:catalog_feedimport_report", args=[obj.pk])
        return format_html('<a href="{}">failed rows (CSV)</a>', url)

    def get_urls(self):
        custom = [
            path(
                "<int:pk>/report.csv",
                self.admin_site.admin_view(self.report_view),
                name="catalog_feedimport_report",
            )
        ]
        return custom + super().get_urls()

    def report_view(self, request, pk: int):
        job = get_object_or_404(FeedImport, pk=pk)
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        response = HttpResponse(job.report, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="feed-{job.pk}-report.csv"'
        return response
