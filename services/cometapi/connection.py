"""Where the API is and how patiently to talk to it: the values the prediction service and the start-up key
check are built from (services/config.py makes them from the settings)."""

from __future__ import annotations

from dataclasses import dataclass

from services.secrets import Secret


@dataclass(frozen=True)
class Connection:
    base_url: str
    api_key: Secret
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # Opt-in Replicate "sync mode" (`Prefer: wait=N` on create), 0 = off.
    sync_wait_seconds: int = 0
    max_download_bytes: int = 25 * 1024 * 1024
    download_timeout: float = 60.0
    # Bytes of images in flight held in memory, for the whole process; the rest go to temporary files.
    image_memory_bytes: int = 32 * 1024 * 1024
    # The longest one prediction is waited for before it is cancelled.
    prediction_deadline: float = 600.0
