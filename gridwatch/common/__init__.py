"""Small primitives every layer may use (redaction of secrets in text, backoff): no I/O, no
runtime libraries, so settings can use them too."""
