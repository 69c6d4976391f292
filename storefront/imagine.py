"""The search page's "Imagine it": what a shopper reads when a picture cannot be drawn,
and the status that goes with it (the drawing itself is ``embeddings.imagine``)."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from embeddings.generative import GenerativeError
from embeddings.imagine import imagine_status


@dataclass(frozen=True)
class ImagineFailure:
    status: int
    message: str  # plain words in the shopper's language, never the operator's details
    retry_after: int | None = None


def imagine_failure(error: GenerativeError) -> ImagineFailure:
    """How a failed drawing is told to a shopper (the details go to the log); the status is
    the one every face answers (``embeddings.imagine.imagine_status``)."""
    if error.code == "empty_prompt":
        return ImagineFailure(400, _("Describe what you are looking for, and we will draw it."))
    status, wait = imagine_status(error) or (None, None)
    if status == 429:
        return ImagineFailure(
            429,
            ngettext(
                "Many pictures are being drawn just now. Please try again in %(seconds)d second.",
                "Many pictures are being drawn just now. Please try again in %(seconds)d seconds.",
                wait,
            )
            % {"seconds": wait},
            wait,
        )
    if status == 503:
        return ImagineFailure(
            503,
            _(
                "The drawing service is not answering just now. Please try again in a minute, "
                "or search with words or a photo."
            ),
            wait,
        )
    if error.code == "refused":
        return ImagineFailure(502, _("The drawing service would not draw that. Try describing it in other words."))
    if status == 502:
        return ImagineFailure(
            502, _("The drawing service sent something that is not a picture. Please try again, or use other words.")
        )
    return ImagineFailure(503, _("Pictures cannot be drawn just now. Search with words or a photo."))


def imagine_paced(wait: int) -> ImagineFailure:
    """This client drew too many pictures in VITRINE_IMAGINE_RATE's window."""
    return ImagineFailure(
        429,
        ngettext(
            "Too many pictures drawn from here just now. Please try again in %(seconds)d second.",
            "Too many pictures drawn from here just now. Please try again in %(seconds)d seconds.",
            wait,
        )
        % {"seconds": wait},
        wait,
    )
