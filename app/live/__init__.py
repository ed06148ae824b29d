"""The live engine: change capture, change log, fan-out, read sets, live execution."""
