"""Prometheus metrics shared by the services of one ``zone serve`` process.

The HTTP service's gunicorn workers count in prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, set by :class:`~bootstrap.http.serving.wsgi.HttpServer`):
each worker writes its samples to files there and ``/metrics`` sums them, so a
counter never goes backwards whichever worker answers the scrape.
"""

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("zone_http_requests_total", "HTTP requests", ["endpoint", "status"])
DHCP_ANSWERS = Counter("zone_dhcp_answers_total", "DHCP answers and drops", ["type"])
TFTP_TRANSFERS = Counter("zone_tftp_transfers_total", "TFTP transfers", ["result"])
DNS_QUERIES = Counter("zone_dns_queries_total", "DNS queries", ["rcode"])
# Every worker sets it from the store at each scrape: the latest setting is the truth.
NODES_BY_STATE = Gauge("zone_nodes", "Nodes by state", ["kind", "state"],
                       multiprocess_mode="mostrecent")
# A BMC firmware update takes minutes and a task may run 30 min: buckets up to an hour.
FIRMWARE_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, float("inf"))
FIRMWARE_SECONDS = Histogram("zone_firmware_update_seconds", "Firmware update duration",
                             buckets=FIRMWARE_BUCKETS)
