"""The lab: a virtual pod on this machine, and the test kit it is built from.

Shipped beside :mod:`bootstrap` but not part of it: the product never imports this
package at module level (``zone up --lab`` loads it on demand), and only this package
uses the test-only tools (sushy-tools, libvirt, bcrypt, QEMU, debootstrap).
It imports :mod:`bootstrap`; never the other way round.
"""
