"""PBX features: DIDs, ring groups, trunks, forwarding, DND, blocked numbers, the dial plan."""
