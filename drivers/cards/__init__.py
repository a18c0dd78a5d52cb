"""Card-reader drivers: pure frame parsers per protocol, and the port loop that feeds them."""
