"""Reporting: findings sentences generated from claims, Markdown, the deck, the site and their rendering."""
