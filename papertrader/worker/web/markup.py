"""HTML built from Python values, escaped unless it is already :class:`Markup`.

``h("td", {"class": "num"}, text)`` is ``<td class="num">text</td>`` with ``text`` escaped.  Pages and
the fragments the live connection pushes are made by the same functions (papertrader/worker/web/views.py),
so a value reaches the browser escaped in exactly one place.  Synchronous on purpose: a pushed fragment
is rendered inside a reactor callback, and a page of a few thousand elements renders in milliseconds.
"""

from html import escape

#: Elements that have no end tag.
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})


class Markup(str):
    """Text that is already HTML (made by :func:`h` or :func:`join`): never escaped again."""

    __slots__ = ()


def text(value):
    """``value`` as HTML: Markup as it is, None as nothing, anything else escaped."""
    if value is None or value is False:
        return ""
    if isinstance(value, Markup):
        return value
    if isinstance(value, (list, tuple)):
        return "".join(text(v) for v in value)
    return escape(str(value), quote=False)


def attributes(attrs):
    out = []
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        if value is True:
            out.append(f" {name}")
        else:
            out.append(f' {name}="{escape(str(value), quote=True)}"')
    return "".join(out)


def h(tag, attrs=None, *children):
    """One element.  ``attrs`` may be omitted (a child in its place is a child); True makes a bare
    attribute, None and False leave it out."""
    if attrs is not None and not isinstance(attrs, dict):
        children = (attrs,) + children
        attrs = None
    opening = f"<{tag}{attributes(attrs or {})}>"
    if tag in VOID:
        return Markup(opening)
    return Markup(f"{opening}{''.join(text(c) for c in children)}</{tag}>")


def join(*parts):
    return Markup("".join(text(p) for p in parts))
