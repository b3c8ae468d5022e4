"""Settings, database engines and sessions, and logging: the plumbing, which knows no user."""
