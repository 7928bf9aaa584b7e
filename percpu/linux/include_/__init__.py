"""linux.git's include/ (named include_: `include` is a keyword of Cython's .pxd files)."""
