"""/imagine: a prompt, options, and any reference images attached; everything as in `Kind`."""

from __future__ import annotations

from services.jobs.kinds.base import Kind


class Imagine(Kind):
    name = "imagine"


IMAGINE = Imagine()
