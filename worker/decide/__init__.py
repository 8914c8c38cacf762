"""The decision core: observation in, typed decision out; no I/O."""
