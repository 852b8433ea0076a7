"""A written answer as the TA sees it: markdown rendered, LaTeX as MathML, keyword hints highlighted.

Everything is rendered on the server. Raw HTML in an answer is shown as text (markdown-it with
``html=False``); LaTeX is converted with latex2mathml and then re-serialised from an allowlist of
MathML elements and attributes with every text escaped, since latex2mathml copies ``\\text{...}``
verbatim and keeps ``\\href`` targets.
"""

from __future__ import annotations

import functools
import html
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any

from latex2mathml.converter import convert_to_element
from markdown_it import MarkdownIt
from markupsafe import Markup, escape
from mdit_py_plugins.dollarmath import dollarmath_plugin

MATHML_TAGS = frozenset((
    "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msup", "msub", "msubsup", "munder", "mover",
    "munderover", "mfrac", "msqrt", "mroot", "mstyle", "mtable", "mtr", "mtd", "mpadded", "mphantom",
    "menclose", "merror", "semantics", "annotation", "mlabeledtr", "maligngroup", "malignmark", "mprescripts",
    "none", "mmultiscripts",
))
MATHML_ATTRIBUTES = frozenset((
    "display", "mathvariant", "stretchy", "fence", "separator", "lspace", "rspace", "columnalign", "rowalign",
    "columnspacing", "rowspacing", "columnlines", "rowlines", "frame", "framespacing", "minsize", "maxsize",
    "accent", "accentunder", "movablelimits", "linethickness", "width", "height", "depth", "symmetric",
    "largeop", "form", "notation", "displaystyle", "scriptlevel", "align", "equalrows", "equalcolumns",
    "mathsize",
))
_VALUE = re.compile(r"^[\w.%+ #-]*$")  # attribute values: lengths, names, numbers; never a URL or script


def _serialise(element: ET.Element, out: list[str]) -> None:
    tag = element.tag.rsplit("}", 1)[-1]
    known = tag in MATHML_TAGS
    if known:
        attributes = "".join(f' {name}="{escape(value)}"' for name, value in sorted(element.attrib.items())
                             if name in MATHML_ATTRIBUTES and _VALUE.match(value))
        out.append(f"<{tag}{attributes}>")
    else:
        out.append("<mrow>")
    if element.text:
        out.append(str(escape(html.unescape(element.text))))
    for child in element:
        _serialise(child, out)
        if child.tail:
            out.append(str(escape(html.unescape(child.tail))))
    out.append(f"</{tag}>" if known else "</mrow>")


@functools.lru_cache(maxsize=4096)
def mathml(latex: str, block: bool = False) -> Markup:
    """MathML for ``latex`` (safe to insert), or the LaTeX source as code when it cannot be converted."""
    try:
        element = convert_to_element(latex, display="block" if block else "inline")
    except Exception:  # latex2mathml raises many kinds of errors on malformed input
        return Markup(f'<code class="tex">{escape(latex)}</code>')
    out: list[str] = []
    _serialise(element, out)
    content = "".join(out).replace("<math", '<math xmlns="http://www.w3.org/1998/Math/MathML"', 1)
    return Markup(content)


def _math_renderer(content: str, options: dict[str, Any]) -> str:
    return str(mathml(content.strip(), bool(options.get("display_mode"))))


@functools.cache
def _markdown() -> MarkdownIt:
    # html=False: a student's raw HTML is shown as text, never interpreted
    return (MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
            .use(dollarmath_plugin, allow_space=True, allow_digits=False, double_inline=True,
                 renderer=_math_renderer, label_renderer=lambda label: f'<span class="eqno">({escape(label)})</span>'))


@functools.lru_cache(maxsize=2048)
def render_markdown(text: str) -> Markup:
    return Markup(_markdown().render(text))


def _keyword_pattern(keyword: str) -> str:
    return r"[\s-]+".join(re.escape(word) for word in re.split(r"[\s-]+", keyword.strip()) if word)


_TAG = re.compile(r"(<[^>]*>)")
_ENTITY = re.compile(r"(&#?\w+;)")


def highlight(rendered: Markup, keywords: Iterable[str]) -> Markup:
    """``<mark>`` around each keyword (case and hyphens ignored) in the text of ``rendered``, not in math or code."""
    patterns = [_keyword_pattern(k) for k in keywords if k.strip()]
    if not patterns:
        return rendered
    regex = re.compile(r"\b(?:" + "|".join(sorted(patterns, key=len, reverse=True)) + r")\b", re.IGNORECASE)
    out, skip = [], 0
    for part in _TAG.split(str(rendered)):
        if part.startswith("<"):
            name = re.match(r"</?\s*([a-zA-Z0-9]+)", part)
            if name and name.group(1).lower() in ("math", "code", "pre"):
                skip += -1 if part.startswith("</") else 1
            out.append(part)
        elif skip > 0 or not part:
            out.append(part)
        else:
            out += [piece if piece.startswith("&") else regex.sub(lambda m: f'<mark class="hint">{m.group(0)}</mark>',
                                                                  piece) for piece in _ENTITY.split(part)]
    return Markup("".join(out))
