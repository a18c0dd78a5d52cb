"""OSDP v2 readers through libosdp, the gateway as Control Panel over RS-485."""
