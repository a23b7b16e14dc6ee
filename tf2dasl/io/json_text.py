"""JSON from files a user gives (boxes, model and export descriptions, manifests): every way the text can be
unusable is one :class:`ValueError` whose message says which, never a traceback."""
from __future__ import annotations

import json


class JsonTextError(ValueError):
    """Text that is not usable JSON: not valid, not UTF-8, or nested deeper than Python's parser goes."""


def parse_json(data: str | bytes):
    """``json.loads(data)``; :class:`JsonTextError` with a one-line reason when it fails, including a value nested
    too deeply for the parser (``RecursionError``: e.g. 100,000 ``[``), which ``json`` does not report as a
    ``JSONDecodeError``."""
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise JsonTextError(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise JsonTextError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise JsonTextError("nested too deeply for the JSON parser") from None
