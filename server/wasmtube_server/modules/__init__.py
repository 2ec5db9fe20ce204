"""Modules: which version of each module serves, and where it comes from.

registry.py holds the serving versions and swaps in new ones; resolve.py
finds the version and function a call names; loader.py, watcher.py and
files.py bring the module directory's files in; names.py says what a module
name is; settings.py reads a module's NAME.toml.
"""
