"""A tiny key-value HTTP service over PostgreSQL, run only by the tests: it serves on the
coupon service's machinery, so the chaos toolkit can be shown to work on another service."""
