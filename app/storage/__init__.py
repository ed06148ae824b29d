"""File storage: signed upload and download URLs, streamed bytes, backends by URL.

- ``signing``: HMAC-signed, expiring tokens for the upload and download URLs;
- ``blobs``: the bytes, content-addressed, in a store chosen by ``STORAGE_URL``;
- ``routes``: the HTTP endpoints the signed URLs point at;
- ``housekeeping``: files nobody attached, or whose message is gone, removed later.
"""
