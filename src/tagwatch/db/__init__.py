"""The store: engine, sessions, base model, migrations."""
