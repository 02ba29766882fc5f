"""Slow reference operators (teachers), each behind the small protocol in distill.core.protocols."""
