"""The credential vault: envelope encryption of provider keys, master-key loading, caller API
keys and the log-redaction backstop.

Modules: ``envelope`` (seal/open/rewrap), ``keys`` (master keys from the environment or a key
file), ``apikeys`` (callers' ``sb_...`` keys, stored as hashes), ``redact`` (structlog processor
and ``scrub``), ``errors`` (typed failures). Nothing here imports grpc or generated code.
"""
