"""A serial GSM/4G modem, spoken to with AT commands: SMS out, delivery reports in."""
