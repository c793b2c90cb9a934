"""Running it: the daemon's stages, instances and heartbeats, sd_notify, metrics, status,
logging, and the checks of configuration and rules."""
