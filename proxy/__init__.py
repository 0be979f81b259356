"""The capture proxy: a mitmproxy addon with a port per device."""
