"""The DHCP service: codec (wire format), answer (the pure decision), server (UDP)."""
