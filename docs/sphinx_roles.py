"""A griffe extension for the API reference: the docstrings' Sphinx roles as links.

The docstrings cross-reference with Sphinx roles (``:class:`~dueldqn.replay.frames.FrameReplayBuffer```,
``:func:`available_cores```), which Markdown would show as raw text. At load time this rewrites each
role into mkdocs-autorefs' optional reference: a link when the name, resolved in the scope of the object
whose docstring holds it, is documented on the site, else the name in code. A ``~`` shows the last
component only, as in Sphinx. A role naming a dueldqn object that does not exist, or a name not in
the docstring's scope, is a warning, so ``mkdocs build --strict`` fails on it. Only the site sees the
rewrite; the source keeps its roles.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc|const):`([^`]+)`")


def target_and_title(obj: griffe.Object, text: str) -> tuple[str | None, str]:
    """The full path a role's text names (``None`` outside dueldqn) and the title to show.

    Raises:
        griffe.NameResolutionError: the name is not in the object's scope (names outside dueldqn are
            written as code, not as roles).
    """
    titled = re.fullmatch(r"(.+?)\s*<(.+)>", text, flags=re.DOTALL)
    title, name = (titled[1], titled[2]) if titled else (None, text)
    name = name.strip()
    short = name.startswith("~")
    name = name.lstrip("~.")
    if title is None:
        title = name.rsplit(".", 1)[-1] if short else name
    head, _, rest = name.partition(".")
    path = name if head == "dueldqn" else obj.resolve(head) + (f".{rest}" if rest else "")
    return (path if path.split(".")[0] == "dueldqn" else None), title


def exists(pkg: griffe.Module, path: str) -> bool:
    """Whether ``path`` (``dueldqn.a.b``) names an object of ``pkg``."""
    try:
        pkg.get_member(path.split(".")[1:])
    except KeyError:
        return False
    except griffe.GriffeError:  # an import not resolved yet: the name exists
        return True
    return True


def rewrite(pkg: griffe.Module, obj: griffe.Object, text: str) -> str:
    """``text`` with every role replaced by an optional autoref (or code)."""

    def replace(match: re.Match[str]) -> str:
        where = f"{obj.relative_filepath}:{obj.docstring.lineno if obj.docstring else obj.lineno}"
        try:
            path, title = target_and_title(obj, match[1])
        except griffe.NameResolutionError:
            griffe.logger.warning(f"{where}: {match[0]} names nothing in the scope of {obj.path}")
            return f"<code>{html.escape(match[1])}</code>"
        code = f"<code>{html.escape(title)}</code>"
        if path is None:
            return code
        if not exists(pkg, path):
            griffe.logger.warning(f"{where}: {match[0]} names {path}, which does not exist")
            return code
        return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>'

    return ROLE.sub(replace, text)


class SphinxRoles(griffe.Extension):
    """Rewrite the Sphinx roles of every docstring in a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.docstring is not None:
                obj.docstring.value = rewrite(pkg, obj, obj.docstring.value)
            stack.extend(member for member in obj.members.values() if isinstance(member, griffe.Object))  # not aliases
