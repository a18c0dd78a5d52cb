"""Community safety: smoke, intrusion and panic alarms, charging-area power cut, and who is told."""
