"""Helpers the tests share: import them from here.

Fixtures live in tests/conftest.py (pytest finds them by name); everything a test
calls or compares with lives in this package. A test module never imports another
test module, nor conftest.py.

- environment: PROJECT_ROOT, TEST_PASSWORD, TEST_ENV
- factory: Factory, committed rows with random names (students, staff, their tokens)
- api: register, drop, course_counts, login, staff_login, refresh, logout, bearer through a TestClient
- concurrency: run_all_at_once (threads released together)
- database: assert_invariants, create_database_on
- servers: start_server (a real server, as `make run` serves), answered_by_worker
- openapi: breaking_changes between two OpenAPI documents, and the baseline's refresh
"""
