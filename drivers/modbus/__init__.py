"""Modbus field points: profiles, register decoding, read planning and polling."""
