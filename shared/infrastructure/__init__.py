"""Settings, database engines and sessions, and logging: the plumbing, which imports nothing
of the domain."""
