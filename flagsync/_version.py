"""flagsync's version: the single source (pyproject.toml reads it, ``flagsync --version``
prints it). Its own module so that any module can import it without the package facade."""

__version__ = "0.2.0"
