"""Prometheus metrics shared by the services of one ``zone serve`` process."""

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("zone_http_requests_total", "HTTP requests", ["endpoint", "status"])
DHCP_ANSWERS = Counter("zone_dhcp_answers_total", "DHCP answers and drops", ["type"])
TFTP_TRANSFERS = Counter("zone_tftp_transfers_total", "TFTP transfers", ["result"])
DNS_QUERIES = Counter("zone_dns_queries_total", "DNS queries", ["rcode"])
NODES_BY_STATE = Gauge("zone_nodes", "Nodes by state", ["kind", "state"])
FIRMWARE_SECONDS = Histogram("zone_firmware_update_seconds", "Firmware update duration")
