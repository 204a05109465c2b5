"""The package version, in one place: pyproject.toml reads it (``dynamic = ["version"]``), and so do
``rnnstate.__version__`` and ``python -m rnnstate --version``."""
__version__ = "0.1.0"
