"""Hand-written SDK functions and methods (above the generated module, which they complete)."""
