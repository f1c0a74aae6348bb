"""User-supplied text shown as text: never as links, images, HTML or colour directives.

``st.error``, ``st.warning``, ``st.info`` and ``st.markdown`` render Markdown, so a URL
value such as ``[Session expired](https://evil.example/login)`` or a file named
``![x](https://tracker)`` would become a real link or an image every visitor's browser
fetches. ``plain`` backslash-escapes every mark that forms a link, image, HTML, code,
emphasis or Streamlit's ``:red[...]`` / ``$...$`` syntax (CommonMark shows an escaped
mark as itself), and bounds the length. Bare URLs need more: GFM turns ``https://...``, ``www.`` and
``a@b.c`` into links by searching the text *after* escapes are resolved, so an invisible
WORD JOINER (U+2060) goes after each ``http(s)``, ``www``, ``mailto``, ``xmpp`` and ``@``.

Example:
    >>> st.error(f"The link's settings were not applied: {plain(error)}")
"""

from __future__ import annotations

import re

MAX_CHARS = 2000  # a message quoting user data is cut here
# Every mark Markdown or Streamlit reads as syntax outside a line start, except "_": it is
# everywhere in names (prune_rate) and makes only italics (_x_), which reach nothing.
_SYNTAX = re.compile(r"([\\`*\[\](){}<>!:$&~|#])")
_AUTOLINK = re.compile(r"(https?|www|mailto|xmpp|@)", re.IGNORECASE)
JOINER = "\u2060"  # zero-width, invisible: breaks GFM's autolink patterns


def plain(value: object, limit: int = MAX_CHARS) -> str:
    """``value`` as Markdown that displays exactly its characters (cut to ``limit``)."""
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _SYNTAX.sub(r"\\\1", _AUTOLINK.sub(r"\1" + JOINER, text))
