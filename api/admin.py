"""API keys in the admin: made here (the key is shown once), revoked here."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from api.keys import SCOPE_NAMES, api_key_create, api_key_revoke
from api.models import ApiKey
from searchsite.env import RATE_PATTERN


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.SCOPES,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKey.SCOPE_SEARCH],
        help_text="A storefront needs only search; the shop's backend that syncs the catalog needs catalog:write.",
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "rate", "expires_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The admin splits the expiry into a date and a time input, labelled by text that
        # is no <label>: give each its own accessible name.
        widget = self.fields["expires_at"].widget
        if hasattr(widget, "widgets"):
            date, time = widget.widgets
            date.attrs["aria-label"] = _("Expiry date")
            time.attrs["aria-label"] = _("Expiry time")

    def clean_rate(self):
        rate = self.cleaned_data["rate"].strip().lower().replace(" ", "")
        if rate and not RATE_PATTERN.match(rate):
            raise forms.ValidationError("Write it like 600/minute (per second, minute, hour or day).")
        return rate

    def clean_scopes(self):
        return [scope for scope in SCOPE_NAMES if scope in self.cleaned_data["scopes"]]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix_shown", "scopes_shown", "status", "last_used_at", "expires_at", "created_at"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["prefix_shown", "status", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        fields = ["name", "scopes", "rate", "expires_at"]
        return fields if obj is None else ["prefix_shown", "status", *fields, *self.readonly_fields[2:]]

    @admin.display(description="Key", ordering="prefix")
    def prefix_shown(self, api_key: ApiKey) -> str:
        return format_html("<code>{}…</code>", api_key.prefix)

    @admin.display(description="Scopes")
    def scopes_shown(self, api_key: ApiKey) -> str:
        return ", ".join(api_key.scopes or [])

    @admin.display(description="Status")
    def status(self, api_key: ApiKey) -> str:
        if api_key.revoked_at:
            return f"revoked {api_key.revoked_at:%Y-%m-%d %H:%M}"
        if api_key.expires_at and api_key.expires_at <= timezone.now():
            return "expired"
        return "active"

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        new = api_key_create(
            name=obj.name,
            scopes=form.cleaned_data["scopes"],
            rate=obj.rate,
            expires_at=obj.expires_at,
            created_by=request.user,
        )
        obj.pk = new.api_key.pk
        obj.prefix = new.api_key.prefix
        request._vitrine_new_api_key = new.key  # shown once, by response_add

    def response_add(self, request, obj, post_url_continue=None):
        key = getattr(request, "_vitrine_new_api_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "opts": self.model._meta,
            "api_key": obj,
            "key": key,
        }
        response = TemplateResponse(request, "admin/api/apikey/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected API keys (requests with them are refused at once)")
    def revoke(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
            count += 1
        self.message_user(request, f"Revoked {count} API key{'s' if count != 1 else ''}.", messages.SUCCESS)
