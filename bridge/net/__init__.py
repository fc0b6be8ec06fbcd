"""Twisted edges: sockets, the media clock and the one timer that drives the cores.

Everything here is thin: bytes in from a socket go to the controller with `now`, and
what the controller wants sent goes out. The reactor is always passed in.
"""
