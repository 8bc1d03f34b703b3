"""Shared helpers for the tinfer notebooks: one idea per module."""
