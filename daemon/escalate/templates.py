"""Render mail from Jinja templates in a sandbox.

Customer text only ever enters as a variable's value, never as template source, so `{{ 7*7 }}` in
a subject stays literal (S6). Admin templates run in an ImmutableSandboxedEnvironment with
StrictUndefined, HTML templates autoescaped (S7). Templates are looked up first in the admin's
directory (ESCALATE_TEMPLATES), then in the ones shipped with escalate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateProblem(ValueError):
    """A template is missing or broken; the message names the template and line."""


def shipped_templates_dir() -> Path:
    """The templates inside the installed wheel, or the repository's `templates/` in a checkout."""
    packaged = Path(__file__).parent / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "templates"


@dataclass(frozen=True)
class RenderedMail:
    text: str
    html: str


class Renderer:
    def __init__(self, admin_dir: Path | None = None):
        dirs = [str(admin_dir)] if admin_dir else []
        dirs.append(str(shipped_templates_dir()))
        self.env = ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader(dirs),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def names(self) -> set[str]:
        """Template names that have both a text and an HTML part (what rules may refer to)."""
        files = set(self.env.list_templates())
        return {name[: -len(".txt.j2")] for name in files
                if name.endswith(".txt.j2") and name.replace(".txt.j2", ".html.j2") in files}

    def render(self, name: str, context: dict[str, Any]) -> RenderedMail:
        try:
            text = self.env.get_template(f"{name}.txt.j2").render(context)
            html = self.env.get_template(f"{name}.html.j2").render(context)
        except jinja2.TemplateNotFound as error:
            raise TemplateProblem(f"template {error.name} not found in {self.env.loader.searchpath}") from None
        except jinja2.TemplateSyntaxError as error:
            raise TemplateProblem(f"{error.filename or error.name}:{error.lineno}: {error.message}") from None
        except (jinja2.UndefinedError, jinja2.exceptions.SecurityError) as error:
            raise TemplateProblem(f"template {name}: {error}") from None
        return RenderedMail(text=text, html=html)
