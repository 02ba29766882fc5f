"""The core: colour spaces, image I/O, atomic writes, protocols. Imports nothing else of the project."""
