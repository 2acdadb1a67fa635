"""The flag catalogue that ``flagsync docs`` generates: model, Markdown and HTML renderers."""

from __future__ import annotations

from flagsync.catalogue import html, markdown
from flagsync.catalogue._banner import check_revision, parse
from flagsync.catalogue.model import Behaviour, Catalogue, FlagDoc, SegmentDoc, build_catalogue

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
