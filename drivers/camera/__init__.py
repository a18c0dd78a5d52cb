"""Camera capture: frames in, typed observations (faults, restores) out; no rules."""
