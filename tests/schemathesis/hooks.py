"""Loaded by tests/schemathesis/run.sh (SCHEMATHESIS_HOOKS): serializers for the API's media
types that schemathesis does not know."""

import schemathesis

# A tus-style upload chunk (PATCH /api/v1/uploads/{id}) is raw bytes, sent as
# application/offset+octet-stream: serialize it like application/octet-stream.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
