"""Persistence: SQLModel tables and repository functions. The only database access in pki/."""
