"""User text shown as text: one escape for every Markdown context of the dashboard.

``st.markdown``, ``st.info``/``warning``/``error``/``success``, ``st.caption``, ``st.write``, widget
labels, ``st.metric`` labels and image captions all render GitHub-flavoured Markdown plus Streamlit's
directives (``:red[...]``, ``:material/icon:``, ``$LaTeX$``). A case label such as
``![t](http://host/x.png)`` would then load an image from another host in every reader's browser
(a tracking pixel), and ``[click](http://...)`` would be a link that looks like NBRisk's own text.
Anything a person or a file chose (case labels, notes, user names, uploaded file names,
DICOM-derived strings, error messages that quote them) goes through :func:`md` before it is put
into Markdown; fixed text written in the code does not.

CommonMark lets any ASCII punctuation character be backslash-escaped, and an escaped character is
always a literal character: it can open no link, image, emphasis, code span, HTML tag, entity,
heading, list, table, math span or directive. Escaping every punctuation character that Markdown,
GFM or Streamlit give a meaning to therefore shows the text exactly as typed, with one exception:
GFM's *autolink literals* (``http://...``, ``www....``, ``name@host.org``) are found by remark-gfm
in the text after the escapes are resolved (seen in Chromium: an escaped ``http\\://host`` still
became a link). For those, an invisible U+2060 WORD JOINER is put after ``:`` of ``://``, after
``www`` and after ``@``: the text looks the same, and the pattern no longer matches.
"""

from __future__ import annotations

import re

#: ASCII punctuation with a meaning in CommonMark, GFM (tables, strikethrough, autolink literals
#: ``www.``/``http://``/``a@b.c``) or Streamlit (``:directive[...]``, ``$math$``)
MARKDOWN_SPECIAL = "\\`*_{}[]()#+-.!|~<>$:&@"
_SPECIAL = re.compile("([" + re.escape(MARKDOWN_SPECIAL) + "])")
_ESCAPED = re.compile(r"\\([" + re.escape(MARKDOWN_SPECIAL) + "])")
#: U+2060 WORD JOINER: invisible, breaks GFM's autolink-literal patterns where it is put
WORD_JOINER = "\u2060"
_AUTOLINK_START = re.compile(r"(?i)(:)(?=//)|(www)(?=\.)|(@)")


def md(text) -> str:
    """``text`` (any object, via ``str``) as Markdown that renders exactly those characters.

    Line breaks become spaces: a label or a file name is one line, and a line break inside a
    Markdown paragraph would otherwise start block syntax the escape cannot see (an indented code
    block). Other control characters are dropped.

    Examples
    --------
    >>> print(md("![t](http://host/x.png)").replace(WORD_JOINER, "<WJ>"))
    \\!\\[t\\]\\(http\\:<WJ>//host/x\\.png\\)
    """
    value = "" if text is None else str(text)
    value = "".join(" " if ch in "\r\n\t\v\f" else ch for ch in value if ch >= " " or ch in "\r\n\t\v\f")
    value = _AUTOLINK_START.sub(lambda m: m.group(0) + WORD_JOINER, value)
    return _SPECIAL.sub(r"\\\1", value)


def code(text) -> str:
    """``text`` as a Markdown code span, shown literally (paths, commands); a backtick in it becomes ``'``.

    >>> code("nbrisk benchmark --cv 5 --out data/cv/my_cohort")
    '`nbrisk benchmark --cv 5 --out data/cv/my_cohort`'
    """
    return "`" + " ".join(str(text).replace("`", "'").split("\n")) + "`"


def plain(markdown: str) -> str:
    """The text :func:`md` escaped, back (for tests and logs: ``plain(md(s)) == s`` for one-line ``s``)."""
    return _ESCAPED.sub(r"\1", markdown).replace(WORD_JOINER, "")


def show_error(error, where=None) -> None:
    """``st.error`` of an error's message, as text (messages quote file names, labels and values)."""
    import streamlit as st

    (where or st).error(md(error))
