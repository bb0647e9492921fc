"""TFTP service: iPXE binaries from a root directory, anything else fetched from the controller.

The ToR appliance holds the iPXE binaries (Debian's ``ipxe`` package by default); a
file it does not hold is fetched once from ``<controller>/files/<name>``, cached on
disk atomically and then served (the "TFTP proxy on the ToR").

tftpy supplies the protocol (packet codec, option negotiation, per-transfer state
machine); this package supplies the policy and the event loop, in sections:

- ``names``: which names may be served;
- ``packets``: reading a request, refusing it with an ERROR no larger than itself;
- ``cache``: the controller fetch, the bounded disk cache, the file source;
- ``transfers``: admission (open transfers per source and in total), the transfer
  context with bounded, backed-off resends, and the loops running transfers;
- ``service``: the request loop.

tftpy's own ``TftpServer.listen`` is not used because it blocks every transfer while a
file is opened, scans every session for each packet and lets an unexpected exception
end the server; here one bad request never stops the loop and a controller fetch runs
on a worker thread.
"""

from .cache import CacheDir, Fetcher, FileSource, Misses, http_get
from .names import clean_name
from .service import TftpService

__all__ = ["CacheDir", "Fetcher", "FileSource", "Misses", "TftpService", "clean_name",
           "http_get"]
