"""Reporting: tables, CSV, figures, published numbers, output distances and the audit's table."""
