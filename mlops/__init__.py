"""The template's machinery, in layers: `config` (bottom), `github` and `report`, `release`,
`cli` (top). The forker's code is `model/`; `serve/` and `monitoring/` run and watch it.
tests/test_layers.py holds the import rule."""
