# The owner model the interfaces share (docs/api.md): status, settings, sessions.
from firmware.owner.model import Owner  # noqa: F401
