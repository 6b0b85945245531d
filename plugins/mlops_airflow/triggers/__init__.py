"""Triggers (run by the triggerer, asyncio): importable from plugins/, which every component has on sys.path."""
