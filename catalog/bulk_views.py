"""The admin's bulk upload page and its JSON endpoints (used by ``bulk.js``).

Without JavaScript the page's form posts every file at once and shows the result; with it,
files go one per request, each row shows its progress, and the states (pending → indexed,
or failed with the reason) are polled from the server, so a reload loses nothing.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from catalog.bulk import bulk_add, bulk_item_remove, bulk_item_retry
from catalog.models import BulkUpload, BulkUploadItem, Product

PERMISSION = "catalog.change_product"


class BulkUploadForm(forms.ModelForm):
    class Meta:
        model = BulkUpload
        fields = ["mode", "product_external_id", "category", "brand"]
        labels = {"product_external_id": "Existing product id"}
        widgets = {"mode": forms.RadioSelect}

    def clean(self):
        data = super().clean()
        if data.get("mode") == BulkUpload.Mode.EXISTING:
            external_id = (data.get("product_external_id") or "").strip()
            if not Product.objects.filter(external_id=external_id).exists():
                raise forms.ValidationError({"product_external_id": f"There is no product {external_id!r}."})
        return data


def _check(request: HttpRequest) -> None:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied


def item_data(item: BulkUploadItem) -> dict:
    image = item.image
    return {
        "id": item.pk,
        "name": item.name,
        "product": item.product_external_id,
        "state": item.state,
        "reason": item.reason,
        "note": item.note or _duplicate_note(image),
        "image_id": item.image_id,
        "thumbnail": image.thumbnail_url if image else "",
        "product_url": reverse("admin:catalog_product_change", args=[image.product_id]) if image else "",
    }


def _duplicate_note(image) -> str:
    if image is None or image.duplicate_of_id is None:
        return ""
    return f"Looks like a duplicate of image {image.duplicate_of_id} (cosine {image.duplicate_score})."


def _items(upload: BulkUpload) -> list[dict]:
    return [item_data(item) for item in upload.items.select_related("image")]


def bulk_upload_page(request: HttpRequest) -> HttpResponse:
    _check(request)
    if request.method == "POST":
        form = BulkUploadForm(request.POST)
        files = request.FILES.getlist("files")
        if form.is_valid():
            if len(files) > settings.VITRINE_MAX_UPLOAD_FILES:
                form.add_error(
                    None, f"At most {settings.VITRINE_MAX_UPLOAD_FILES} files at once (VITRINE_MAX_UPLOAD_FILES)."
                )
            else:
                upload = form.save(commit=False)
                upload.user = request.user
                upload.save()
                for upload_file in files:
                    bulk_add(upload, name=upload_file.name, file=upload_file)
                return HttpResponseRedirect(f"{reverse('bulk-upload')}?upload={upload.pk}")
    else:
        form = BulkUploadForm()
    uploads = BulkUpload.objects.filter(user=request.user)
    chosen = request.GET.get("upload", "")
    upload = uploads.filter(pk=int(chosen)).first() if chosen.isdigit() else uploads.first()
    context = {
        **admin.site.each_context(request),
        "title": "Bulk upload",
        "form": form,
        "upload": upload,
        "items": _items(upload) if upload else [],
        "max_files": settings.VITRINE_MAX_UPLOAD_FILES,
    }
    return render(request, "admin/bulk_upload.html", context)


@require_POST
def bulk_upload_start(request: HttpRequest) -> JsonResponse:
    _check(request)
    form = BulkUploadForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    upload = form.save(commit=False)
    upload.user = request.user
    upload.save()
    return JsonResponse({"upload": upload.pk}, status=201)


def _own_upload(request: HttpRequest, upload_id: int) -> BulkUpload:
    return get_object_or_404(BulkUpload, pk=upload_id, user=request.user)


@require_POST
def bulk_upload_file(request: HttpRequest, upload_id: int) -> JsonResponse:
    _check(request)
    upload = _own_upload(request, upload_id)
    upload_file = request.FILES.get("file")
    if upload_file is None:
        return JsonResponse({"error": "Send the file as the multipart field 'file'."}, status=400)
    # A file dropped with its folder keeps its relative path (for grouping by folder).
    name = (request.POST.get("path") or upload_file.name)[:500]
    items = bulk_add(upload, name=name, file=upload_file)
    return JsonResponse({"items": [item_data(item) for item in items]}, status=201)


def bulk_upload_items(request: HttpRequest, upload_id: int) -> JsonResponse:
    _check(request)
    return JsonResponse({"items": _items(_own_upload(request, upload_id))})


@require_POST
def bulk_item_action(request: HttpRequest, item_id: int, action: str) -> JsonResponse:
    _check(request)
    if action not in ("retry", "remove"):
        return JsonResponse({"error": "The action is retry or remove."}, status=404)
    item = get_object_or_404(BulkUploadItem.objects.select_related("image"), pk=item_id, upload__user=request.user)
    if action == "retry":
        if not bulk_item_retry(item):
            return JsonResponse(
                {"error": "Only an image that failed to index can be retried; upload the file again."}, status=409
            )
        item.refresh_from_db()
        return JsonResponse({"item": item_data(item)})
    bulk_item_remove(item)
    return JsonResponse({"removed": item_id})
