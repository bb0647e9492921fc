"""The Jinja templates the HTTP service renders, shipped as package data bootstrap.templates
(pyproject maps this folder there; bootstrap/resources.py finds it)."""
