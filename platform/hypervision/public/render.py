"""Jinja2 rendering of the public pages and label sheets (templates/ beside this file).

Autoescaping is on for every template: member-declared texts (names, purposes) are
data, never markup.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2

from hypervision.processing_register import Lang
from hypervision.public.texts import UI


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("hypervision.public", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(template: str, lang: Lang, **context: Any) -> str:
    return environment().get_template(template).render(lang=lang, t=UI[lang], **context)
