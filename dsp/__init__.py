"""Pure signal processing for the bridge: numpy/scipy in, arrays out, no I/O and no clock."""
