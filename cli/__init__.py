"""The command-line apps `busymate` and `bmc`."""
