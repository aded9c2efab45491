import logging

from services.secrets import RedactingFilter, Secret, redact

KEY = "sk-live-abcdef0123456789"


def test_secret_hides_itself():
    secret = Secret(KEY)
    assert KEY not in repr(secret)
    assert KEY not in f"{secret}"
    assert secret.reveal() == KEY


def test_redact():
    assert redact(f"Bearer {KEY}", [KEY]) == "Bearer [redacted]"


def test_filter_scrubs_messages_arguments_and_tracebacks(caplog):
    logger = logging.getLogger("test.redaction")
    handler_filter = RedactingFilter([KEY])
    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Capture()
    handler.addFilter(handler_filter)
    logger.addHandler(handler)
    try:
        logger.warning("key is %s", KEY)
        try:
            raise RuntimeError(f"failed with {KEY}")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(logging.Formatter().format(r) for r in records)
    assert "key is [redacted]" in text
    assert "failed with [redacted]" in text
    assert KEY not in text
