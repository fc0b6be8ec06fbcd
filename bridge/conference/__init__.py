"""Rooms and their control logic: who is in, who hears what, keypad, PIN entry, prompts.

Sans-I/O: payloads, digits and `now` in; payloads to send and actions (hang up a member)
out. The only bridge package that imports `dsp`. It knows nothing of SIP or sockets: a
member is an integer id given by the controller.
"""
