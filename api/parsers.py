"""The API's JSON parser: DRF's, refusing what parses in Python but cannot be stored or
sent back (all are 400 parse errors, never a 500 later on).

- numbers too large for a float (``1e400`` parses as infinity);
- lone UTF-16 surrogates (``"\\ud800"``), which no UTF-8 database or response can hold;
- nesting so deep that Python's parser runs out of stack.
"""

from __future__ import annotations

import codecs
import json
import math

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"The number {text[:40]} is too large.")
    return value


def _strict_constant(name: str):
    raise ValueError(f"{name} is not valid JSON.")


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.load(
                codecs.getreader(encoding)(stream), parse_float=_finite_float, parse_constant=_strict_constant
            )
            # Lone surrogates parse, but cannot be encoded: find them now.
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
        except UnicodeEncodeError:
            raise ParseError("JSON parse error - the body holds a lone UTF-16 surrogate (\\ud800-\\udfff).") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        return data


def json_loads_strict(text: str):
    """The same rules for JSON found inside a form field (the search's multipart ``filters``)."""
    try:
        data = json.loads(text, parse_float=_finite_float, parse_constant=_strict_constant)
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (RecursionError, UnicodeEncodeError, ValueError):
        raise ValueError("not valid JSON") from None
    return data
