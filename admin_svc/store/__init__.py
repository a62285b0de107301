"""SQL access, one module per table group. Functions take a connection (the caller owns the
transaction) and return frozen dataclasses; they check nothing about who is asking."""
