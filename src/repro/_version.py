"""The version of repro, in a leaf of its own: any module may read it without importing the
public ``repro`` package (which imports the session). Hatch reads it from here at build time."""

__version__ = "0.1.0"
