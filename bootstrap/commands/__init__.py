"""Sub-commands of ``zone``: each module here defines ``register(subparsers)``."""
