"""The core: settings, I/O, data contracts, redaction and the inert console.

Imports nothing else of clm.
"""
