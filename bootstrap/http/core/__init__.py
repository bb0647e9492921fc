"""What every view stands on: the service (plan, store, events, rendering, the
``on_state_change`` hooks), settings and secrets, problems (errors → status codes),
who is asking (identification) and the per-node access rule. Imports no other layer
of :mod:`bootstrap.http`."""
