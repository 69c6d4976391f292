"""Image intake: every bad file gets its own error and nothing is written."""

from __future__ import annotations

import pytest
from PIL import Image

from catalog import services
from catalog.intake import ImageRejected, image_accept, image_decode_rgb
from catalog.models import Product, ProductImage
from tests import images
from tests.conftest import stored_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def product():
    return services.product_upsert(external_id="sku-1", title="A mug").product


@pytest.mark.parametrize(
    ("content", "code", "words"),
    [
        (b"", "empty_file", "empty"),
        (b"this is a text file, not a picture\n" * 10, "not_an_image", "not an image"),
        (images.truncated_jpeg(), "damaged_image", "damaged or incomplete"),
        (images.decompression_bomb_png(), "too_many_pixels", "decompression bomb"),
        (images.image_bytes("PPM"), "unsupported_format", "PPM images are not accepted"),
        (images.image_bytes("ICO", size=(32, 32)), "unsupported_format", "ICO images are not accepted"),
    ],
    ids=["zero-bytes", "text-named-jpg", "truncated-jpeg", "decompression-bomb", "ppm", "ico"],
)
def test_it_rejects_a_bad_file_with_its_own_error_and_writes_nothing(product, settings, content, code, words):
    with pytest.raises(ImageRejected) as caught:
        services.image_create(product=product, content=content)

    assert caught.value.code == code
    assert words in caught.value.message
    assert ProductImage.objects.count() == 0
    assert stored_files(settings) == []


def test_it_rejects_a_file_over_the_byte_limit(product, settings):
    settings.VITRINE_MAX_IMAGE_BYTES = 2048
    content = images.noise_jpeg(3, size=(256, 256))
    assert len(content) > 2048

    with pytest.raises(ImageRejected) as caught:
        services.image_create(product=product, content=content)

    assert caught.value.code == "file_too_large"
    assert "VITRINE_MAX_IMAGE_BYTES" in caught.value.message
    assert ProductImage.objects.count() == 0


def test_the_pixel_limit_comes_from_settings(settings):
    settings.VITRINE_MAX_IMAGE_PIXELS = 99 * 99
    with pytest.raises(ImageRejected) as caught:
        image_accept(content=images.image_bytes("PNG", size=(100, 100)))
    assert caught.value.code == "too_many_pixels"
    assert "100×100 = 10,000 pixels" in caught.value.message

    accepted = image_accept(content=images.image_bytes("PNG", size=(99, 99)))
    assert (accepted.width, accepted.height) == (99, 99)


def test_exif_orientation_is_applied():
    content = images.exif_rotated_jpeg()

    accepted = image_accept(content=content)
    rgb = image_decode_rgb(content=content)

    assert (accepted.width, accepted.height) == (40, 80)
    assert rgb.size == (40, 80)
    top, bottom = rgb.getpixel((20, 10)), rgb.getpixel((20, 70))
    assert top[0] > 200 and top[2] < 60  # red on top
    assert bottom[2] > 200 and bottom[0] < 60  # blue below


def test_cmyk_is_converted_to_rgb():
    content = images.image_bytes("JPEG", mode="CMYK", color=(0, 255, 255, 0))  # pure red in CMYK
    rgb = image_decode_rgb(content=content)
    assert rgb.mode == "RGB"
    red, green, blue = rgb.getpixel((10, 10))
    assert red > 220 and green < 40 and blue < 40


def test_sixteen_bit_grey_keeps_its_brightness():
    rgb = image_decode_rgb(content=images.sixteen_bit_grey_png(40_000))
    assert rgb.mode == "RGB"
    # 40000 / 65535 of full scale is about 155 of 255; clipping would give 255.
    assert rgb.getpixel((5, 5)) == (155, 155, 155)


def test_palette_transparency_becomes_white_background():
    rgb = image_decode_rgb(content=images.palette_with_transparency_png())
    assert rgb.mode == "RGB"
    assert rgb.getpixel((5, 5)) == (255, 255, 255)
    assert rgb.getpixel((30, 5)) == (0, 200, 0)


def test_grey_with_alpha_is_composited_on_white():
    image = Image.new("LA", (10, 10), (0, 0))  # black, fully transparent
    image.paste((0, 255), (5, 0, 10, 10))  # right half black, opaque
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    rgb = image_decode_rgb(content=buffer.getvalue())
    assert rgb.getpixel((2, 2)) == (255, 255, 255)
    assert rgb.getpixel((7, 2)) == (0, 0, 0)


def test_only_the_first_frame_of_an_animated_gif_is_used():
    frames = [Image.new("RGB", (20, 20), (255, 0, 0)), Image.new("RGB", (20, 20), (0, 0, 255))]
    import io

    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    red, green, blue = image_decode_rgb(content=buffer.getvalue()).getpixel((10, 10))
    assert red > 200 and blue < 50


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_every_allowed_format_is_accepted_and_stored(product, settings, fmt):
    result = services.image_create(product=product, content=images.image_bytes(fmt, size=(30, 20)))

    image = result.image
    assert result.is_created
    assert (image.width, image.height, image.state) == (30, 20, "pending")
    assert image.format == fmt
    assert len(stored_files(settings)) == 1
    assert Product.objects.count() == 1


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_that_keeps_the_size_asked():
    big = images.noise_jpeg(3, size=(1600, 1200))

    assert image_decode_rgb(content=big).size == (1600, 1200)
    assert image_decode_rgb(content=big, min_side=448).size == (800, 600)  # 1/2: 1/4 would be 300 high
    assert image_decode_rgb(content=big, min_side=100).size == (200, 150)  # 1/8
    assert image_decode_rgb(content=images.image_bytes("PNG", size=(1600, 1200)), min_side=100).size == (1600, 1200)


def test_draft_decoding_keeps_the_exif_orientation():
    from io import BytesIO

    image = Image.open(BytesIO(images.noise_jpeg(4, size=(1600, 800))))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buffer = BytesIO()
    image.save(buffer, format="JPEG", exif=exif)

    assert image_decode_rgb(content=buffer.getvalue(), min_side=200).size == (200, 400)
