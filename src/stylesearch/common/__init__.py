"""Plumbing every stage shares: atomic writes and content hashes."""
