"""Database engine, sessions, declarative base and the embedded server."""
