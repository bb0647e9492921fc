"""The views: one Flask blueprint per concern. They stand on :mod:`bootstrap.http.core`
only (the service, settings, problems, identification, access) and never on what
serves them."""

from __future__ import annotations

from . import api, boot, cloudinit, files, health, metrics, phonehome, status, ztp

BLUEPRINTS = (boot.bp, ztp.bp, cloudinit.bp, phonehome.bp, files.bp, api.bp, metrics.bp,
              health.bp, status.bp)
