"""A stand-in for an OpenAI-compatible API, on loopback, for tests and for trying the
generative features without an account.

It implements the two request/response shapes Vitrine uses:

* ``POST /v1/chat/completions`` with a photo as a ``data:`` URL: answers a JSON caption
  (``alt_en``, ``description_en``, ``alt_zh``, ``description_zh``) naming the photo's main
  colour (measured from its pixels) and the kind of product when the prompt's context
  names one, as a vision model would.
* ``POST /v1/images/generations``: draws what the prompt describes with the demo shop's
  renderer (colour, pattern and kind words in English or Chinese) and answers it as
  ``b64_json`` (or as a ``url`` on this server when the request asks for it).

It misbehaves on demand: ``standin.script("chat", "slow", "429", "500", "malformed",
"not_json", "empty", "401", "not_an_image", "url", "ok")`` queues what the next requests to
that route get, one each; afterwards it answers normally. Every request is recorded
(``standin.requests``: path, headers, parsed body).

Run alone (``.venv/bin/python tests/standin_openai.py --port 8765``) and point
``VITRINE_CAPTION_API_URL`` / ``VITRINE_IMAGE_API_URL`` at ``http://127.0.0.1:8765/v1``.
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

if __package__ in (None, ""):  # run as a script: the repository's packages
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from catalog.demo import COLOURS, KINDS, PATTERNS, PLURALS, Attributes, render_image  # noqa: E402

ROUTES = {"/v1/chat/completions": "chat", "/v1/images/generations": "images"}
GENERATED_SIDE = 256


@dataclass
class Recorded:
    path: str
    headers: dict
    body: dict | None


class StandIn:
    def __init__(self, port: int = 0, *, slow_seconds: float = 3.0):
        self.slow_seconds = slow_seconds
        self.requests: list[Recorded] = []
        self._scripts: dict[str, deque] = {"chat": deque(), "images": deque()}
        self._files: dict[str, bytes] = {}
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                content = standin._files.get(self.path)
                if content is None:
                    return self._send(404, b'{"error": {"message": "no such file"}}')
                self._send(200, content, "image/png")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                route = ROUTES.get(self.path)
                with standin._lock:
                    standin.requests.append(Recorded(self.path, dict(self.headers), body))
                    behaviour = standin._scripts[route].popleft() if route and standin._scripts[route] else "ok"
                if route is None:
                    return self._send(404, b'{"error": {"message": "unknown route"}}')
                if behaviour == "slow":
                    time.sleep(standin.slow_seconds)
                    behaviour = "ok"
                if behaviour == "429":
                    limited = b'{"error": {"message": "Rate limit reached"}}'
                    return self._send(429, limited, headers={"Retry-After": "0"})
                if behaviour == "500":
                    return self._send(500, b'{"error": {"message": "The server had an error"}}')
                if behaviour == "401":
                    return self._send(401, b'{"error": {"message": "Incorrect API key provided"}}')
                if behaviour == "malformed":
                    return self._send(200, b'{"choices": [ {"mess')
                if not isinstance(body, dict):
                    return self._send(400, b'{"error": {"message": "the body is not JSON"}}')
                answer = standin._chat(body, behaviour) if route == "chat" else standin._images(body, behaviour)
                self._send(200, json.dumps(answer).encode())

            def _send(self, status: int, content: bytes, content_type: str = "application/json", headers=None):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(content)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                    super().handle_error(request, client_address)  # a client that gave up waiting is no news

        self.server = Server(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> StandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, route: str, *behaviours: str) -> None:
        with self._lock:
            self._scripts[route].extend(behaviours)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            for queue in self._scripts.values():
                queue.clear()

    def calls(self, route: str) -> list[Recorded]:
        path = next(path for path, name in ROUTES.items() if name == route)
        return [r for r in self.requests if r.path == path]

    # --- Answers ----------------------------------------------------------------------

    def _chat(self, body: dict, behaviour: str) -> dict:
        if behaviour == "not_json":
            content = "Here is a lovely description of your product!"
        elif behaviour == "empty":
            content = json.dumps({"something": "else"})
        else:
            prompt, image = _chat_inputs(body)
            colour = _main_colour(image) if image is not None else "grey"
            kind = _first_word(prompt.split("facts, not instructions):")[-1], _kind_words()) or "product"
            pattern = ""
            en_colour, zh_colour = COLOURS[colour][0], COLOURS[colour][1]
            en_kind, zh_kind = (KINDS[kind][0], KINDS[kind][1]) if kind in KINDS else ("product", "商品")
            content = json.dumps(
                {
                    "alt_en": f"A {en_colour} {pattern}{en_kind} on a light background",
                    "description_en": f"A {en_colour} {en_kind}, photographed on a plain light background. "
                    f"The {en_colour} colour covers most of the {en_kind}.",
                    "alt_zh": f"浅色背景上的{zh_colour}{zh_kind}",
                    "description_zh": f"一件{zh_colour}的{zh_kind}，在浅色背景上拍摄。",
                },
                ensure_ascii=False,
            )
            if behaviour == "fenced":
                content = f"```json\n{content}\n```"
        return {
            "id": "chatcmpl-standin",
            "object": "chat.completion",
            "model": body.get("model", ""),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        }

    def _images(self, body: dict, behaviour: str) -> dict:
        if behaviour == "not_an_image":
            return {"data": [{"b64_json": base64.b64encode(b"<html>not a picture</html>").decode()}]}
        if behaviour == "empty":
            return {"data": []}
        picture = draw(str(body.get("prompt", "")))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        content = buffer.getvalue()
        if behaviour == "url":
            name = f"/files/{len(self._files)}.png"
            self._files[name] = content
            return {"created": int(time.time()), "data": [{"url": f"http://127.0.0.1:{self.port}{name}"}]}
        return {"created": int(time.time()), "data": [{"b64_json": base64.b64encode(content).decode()}]}


def _chat_inputs(body: dict) -> tuple[str, Image.Image | None]:
    prompt, image = "", None
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        parts = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        for part in parts:
            if part.get("type") == "text":
                prompt += str(part.get("text", ""))
            elif part.get("type") == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                if url.startswith("data:") and "," in url:
                    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    return prompt, image


def _main_colour(image: Image.Image) -> str:
    """The demo palette's colour that most of the photo's foreground is nearest to (the
    background is what the border shows; a pattern's dots and stripes are outvoted)."""
    side = 48
    raw = image.resize((side, side)).tobytes()
    pixels = [tuple(raw[i : i + 3]) for i in range(0, len(raw), 3)]
    border = [p for i, p in enumerate(pixels) if i < side or i >= side * (side - 1) or i % side in (0, side - 1)]
    background = tuple(sorted(channel)[len(channel) // 2] for channel in zip(*border, strict=True))
    foreground = [p for p in pixels if sum(abs(a - b) for a, b in zip(p, background, strict=True)) > 80] or pixels
    votes = Counter(
        min(COLOURS, key=lambda name, p=p: sum((a - b) ** 2 for a, b in zip(COLOURS[name][2], p, strict=True)))
        for p in foreground
    )
    return votes.most_common(1)[0][0]


def _kind_words() -> dict[str, str]:
    words = {}
    for kind, (english, chinese, *_rest) in KINDS.items():
        words[english] = kind
        words[chinese] = kind
        words[PLURALS.get(kind, english + "s")] = kind
    return words


def _first_word(text: str, words: dict[str, str]) -> str | None:
    """The value of the word that appears first in ``text`` (longest first at one place)."""
    lowered = text.lower()
    found = []
    for word, value in words.items():
        match = re.search(rf"(?<![a-z]){re.escape(word.lower())}(?![a-z])", lowered)
        if match:
            found.append((match.start(), -len(word), value))
    return min(found)[2] if found else None


def draw(prompt: str) -> Image.Image:
    """What an image model would draw for a product description, in the demo shop's style."""
    colours = {}
    for name, (english, chinese, _rgb) in COLOURS.items():
        colours[english] = name
        colours[chinese] = name
        colours[chinese.rstrip("色")] = name
    colours["gray"] = "grey"
    patterns = {}
    for name, (english, chinese) in PATTERNS.items():
        patterns[english] = name
        patterns[chinese] = name
    patterns.update(
        {"stripes": "striped", "dots": "dotted", "polka": "dotted", "checks": "checked", "plaid": "checked"}
    )
    colour = _first_word(prompt, colours) or "grey"
    pattern = _first_word(prompt, patterns) or "plain"
    kind = _first_word(prompt, _kind_words()) or "vase"
    rng = random.Random(f"standin-{prompt}")
    return render_image(Attributes(kind, colour, pattern), rng=rng, size=GENERATED_SIDE)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    standin = StandIn(args.port).start()
    print(f"Stand-in OpenAI-compatible API on {standin.url} (Ctrl-C stops it)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        standin.stop()
