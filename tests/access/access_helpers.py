"""Constants shared by the access tests (imported by module name, like the other test helpers)."""

PASSWORD = "a long enough test password"
CSRF = "test-csrf-token"
