"""The generative client (embeddings.generative) against the stand-in API on loopback
(tests/standin_openai.py): request shapes, retries, budgets and every failure it names."""

from __future__ import annotations

import base64
import io
import socket

import numpy as np
import pytest
from PIL import Image

from embeddings import generative
from embeddings.generative import GenerativeError, caption_image, image_generate
from tests.images import image_bytes


def blue_photo() -> bytes:
    image = Image.new("RGB", (120, 120), (250, 250, 250))
    image.paste((32, 72, 205), (30, 30, 90, 90))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def test_a_caption_is_asked_for_in_the_openai_shape_and_read_in_both_languages(standin):
    caption = caption_image(blue_photo(), context="Title: Blue mug. Category: kitchen")

    assert caption.alt["en"] == "A blue mug on a light background"
    assert caption.alt["zh"] == "浅色背景上的蓝色杯子"
    assert "blue" in caption.description["en"] and "蓝色" in caption.description["zh"]
    (call,) = standin.calls("chat")
    assert call.headers["Authorization"] == "Bearer sk-caption-test"
    assert call.body["model"] == "vision-test"
    assert call.body["response_format"] == {"type": "json_object"}
    parts = call.body["messages"][0]["content"]
    image_part = next(p for p in parts if p["type"] == "image_url")
    assert base64.b64decode(image_part["image_url"]["url"].split(",", 1)[1]) == blue_photo()
    assert "Blue mug" in next(p for p in parts if p["type"] == "text")["text"]


def test_nothing_is_sent_while_the_service_is_off(standin, settings):
    settings.VITRINE_CAPTION_API_URL = ""
    settings.VITRINE_IMAGE_API_URL = ""

    with pytest.raises(GenerativeError) as caught:
        caption_image(blue_photo())
    assert caught.value.code == "not_configured" and "VITRINE_CAPTION_API_URL" in caught.value.message
    with pytest.raises(GenerativeError) as caught:
        image_generate("a blue vase")
    assert caught.value.code == "not_configured" and "VITRINE_IMAGE_API_URL" in caught.value.message
    assert standin.requests == []
    assert not generative.captions_enabled() and not generative.imagine_enabled()


def test_a_full_endpoint_url_is_used_as_it_is(standin, settings):
    settings.VITRINE_CAPTION_API_URL = standin.url + "/chat/completions"

    caption_image(blue_photo())

    assert [r.path for r in standin.requests] == ["/v1/chat/completions"]


@pytest.mark.parametrize("failure", ["429", "500", "slow"])
def test_a_passing_failure_is_retried(standin, settings, failure):
    settings.VITRINE_CAPTION_TIMEOUT = 1.0  # the stand-in's "slow" waits 2 s
    standin.script("chat", failure)

    caption = caption_image(blue_photo())

    assert caption.alt["en"]
    assert len(standin.calls("chat")) == 2


def test_a_lasting_failure_stops_after_the_retries_and_says_so(standin, settings):
    settings.VITRINE_CAPTION_RETRIES = 2
    standin.script("chat", "500", "500", "500", "500")

    with pytest.raises(GenerativeError) as caught:
        caption_image(blue_photo())

    assert caught.value.code == "server_error"
    assert "(500)" in caught.value.message and "The server had an error" in caught.value.message
    assert "after 3 attempts" in caught.value.message
    assert len(standin.calls("chat")) == 3


def test_a_timeout_names_the_wait(standin, settings):
    settings.VITRINE_CAPTION_TIMEOUT = 0.5
    settings.VITRINE_CAPTION_RETRIES = 0
    standin.script("chat", "slow")

    with pytest.raises(GenerativeError) as caught:
        caption_image(blue_photo())

    assert caught.value.code == "timeout" and "0.5 s" in caught.value.message


def test_an_unreachable_service_is_named(settings):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.VITRINE_CAPTION_API_URL = f"http://127.0.0.1:{port}/v1"
    settings.VITRINE_CAPTION_RETRIES = 0

    with pytest.raises(GenerativeError) as caught:
        caption_image(blue_photo())

    assert caught.value.code == "unreachable" and f"127.0.0.1:{port}" in caught.value.message


def test_a_refused_key_is_not_retried_and_names_the_setting(standin):
    standin.script("chat", "401")

    with pytest.raises(GenerativeError) as caught:
        caption_image(blue_photo())

    assert caught.value.code == "refused" and "VITRINE_CAPTION_API_KEY" in caught.value.message
    assert "Incorrect API key" in caught.value.message
    assert len(standin.calls("chat")) == 1


@pytest.mark.parametrize("answer", ["malformed", "not_json", "empty"])
def test_an_answer_that_is_not_a_caption_is_an_error_not_a_caption(standin, answer):
    standin.script("chat", answer)

    with pytest.raises(GenerativeError) as caught:
        caption_image(blue_photo())

    assert caught.value.code == "malformed_response"
    assert len(standin.calls("chat")) == 1  # asking again would get the same


def test_a_caption_in_a_code_fence_is_read(standin):
    standin.script("chat", "fenced")

    assert caption_image(blue_photo()).alt["en"] == "A blue product on a light background"


def test_generated_text_is_cleaned_and_capped():
    content = (
        '{"alt_en": "A <b>blue</b>\\u0000 mug", "description_en": "'
        + "word " * 400
        + '", "alt_zh": 5, "description_zh": "蓝色<script>x</script>杯子"}'
    )

    caption = generative._caption_parse(content)

    assert caption.alt["en"] == "A blue mug"
    assert caption.alt["zh"] == ""
    assert caption.description["zh"] == "蓝色x杯子"
    assert len(caption.description["en"]) <= generative.DESCRIPTION_MAX_CHARS + 1
    assert caption.description["en"].endswith("…")


def test_the_budget_stops_calls_before_they_are_sent(standin, settings):
    settings.VITRINE_CAPTION_PER_MINUTE = 2

    caption_image(blue_photo())
    caption_image(blue_photo())
    with pytest.raises(GenerativeError) as caught:
        caption_image(blue_photo())

    assert caught.value.code == "budget_exhausted"
    assert "VITRINE_CAPTION_PER_MINUTE" in caught.value.message
    assert 0 < caught.value.retry_after <= 60
    assert len(standin.calls("chat")) == 2
    image_generate("a blue vase")  # each service has its own budget
    assert len(standin.calls("images")) == 1


def test_a_generated_picture_comes_back_as_an_image_that_passed_the_intake(standin):
    picture = image_generate("  a blue   dotted vase ")

    assert picture.mode == "RGB" and picture.size == (256, 256)
    (call,) = standin.calls("images")
    assert call.body == {
        "model": "image-test",
        "prompt": "a blue dotted vase",
        "n": 1,
        "size": "256x256",
        "response_format": "b64_json",
    }
    assert call.headers["Authorization"] == "Bearer sk-image-test"


def test_a_long_description_is_cut_to_the_limit(standin, settings):
    settings.VITRINE_IMAGINE_MAX_CHARS = 20

    image_generate("a blue dotted vase with a long story about where it was made")

    assert standin.calls("images")[0].body["prompt"] == "a blue dotted vase w"


def test_a_picture_given_by_url_on_the_services_host_is_fetched(standin):
    standin.script("images", "url")

    picture = image_generate("a red mug")

    assert picture.size == (256, 256)
    assert [r.path for r in standin.requests] == ["/v1/images/generations"]  # GETs are not recorded


@pytest.mark.parametrize(("answer", "code"), [("not_an_image", "not_an_image"), ("empty", "malformed_response")])
def test_what_is_not_a_picture_is_refused(standin, answer, code):
    standin.script("images", answer)

    with pytest.raises(GenerativeError) as caught:
        image_generate("a blue vase")

    assert caught.value.code == code


def test_a_picture_too_large_for_the_intake_is_refused(standin, settings):
    settings.VITRINE_MAX_IMAGE_PIXELS = 100 * 100  # the stand-in draws 256 × 256

    with pytest.raises(GenerativeError) as caught:
        image_generate("a blue vase")

    assert caught.value.code == "not_an_image" and "pixels" in caught.value.message


def test_the_stand_in_draws_what_it_is_asked(standin):
    """The stand-in's drawings are the demo shop's renders (what the tests of "imagine it"
    rely on): a blue dotted vase is mostly blue."""
    picture = image_generate("一个蓝色圆点花瓶")

    pixels = np.asarray(picture.resize((32, 32)), dtype=int).reshape(-1, 3)
    blue = int(((pixels[:, 2] > 150) & (pixels[:, 0] < 90)).sum())
    assert blue > 32 * 32 * 0.1


def test_a_red_photo_is_captioned_red(standin):
    assert caption_image(image_bytes(color=(205, 32, 38))).alt["en"].startswith("A red ")
