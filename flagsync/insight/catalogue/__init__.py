"""The flag catalogue that ``flagsync docs`` generates: model, Markdown and HTML renderers."""

from __future__ import annotations

from flagsync.insight.catalogue import html, markdown
from flagsync.insight.catalogue._banner import check_revision, parse
from flagsync.insight.catalogue.model import (
    Behaviour,
    Catalogue,
    FlagDoc,
    SegmentDoc,
    build_catalogue,
)

RENDERERS = {"markdown": markdown.render, "html": html.render}

__all__ = [
    "RENDERERS",
    "Behaviour",
    "Catalogue",
    "FlagDoc",
    "SegmentDoc",
    "build_catalogue",
    "check_revision",
    "parse",
]
