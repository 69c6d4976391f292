from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

# Room for the multipart envelope and the other form fields around one image.
UPLOAD_ENVELOPE_BYTES = 1024 * 1024


class RequestSizeLimitMiddleware:
    """Refuse a body larger than one accepted image before Django spools it to disk.

    Django's own DATA_UPLOAD_MAX_MEMORY_SIZE does not count uploaded files.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.VITRINE_MAX_IMAGE_BYTES
        if length > limit + UPLOAD_ENVELOPE_BYTES:
            message = (
                f"The request is {length / 1048576:.1f} MB; images may be at most {limit / 1048576:.1f} MB "
                "(VITRINE_MAX_IMAGE_BYTES)."
            )
            if request.path.startswith("/api/"):
                return JsonResponse({"error": {"code": "file_too_large", "message": message}}, status=413)
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
