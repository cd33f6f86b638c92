"""Runnable examples for agency integrators (they use only public libraries and the .avsc files)."""
