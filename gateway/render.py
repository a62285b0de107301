"""Renders Envoy's configuration for given ports; ``envoy.yaml`` is its output for the defaults.

``python -m gateway.render > envoy.yaml`` regenerates the committed file; the launcher renders a
copy when any port, path, limit or node count differs from the defaults. Routes: REST
(transcoded) and gRPC for the recognition and admin services only (embed_svc is internal),
balanced over every node with retries of what is safe to retry (docs/gateway.md), each with its
body limit (gateway/limits.py); every other path to the web console's static file server
(neither gRPC nor an ``/api/`` path ever reaches it); ``/healthz`` (liveness: Envoy is up) and
``/ready`` (readiness: at least one ready node of each service, counted through readiness-only
clusters health-checked on ``facegrid.ready``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

from gateway.limits import MAX_REQUEST_HEADERS_KIB, ROUTES, BodyLimits, Route

GATEWAY_DIR = Path(__file__).resolve().parent

_KIB = 1024
_MIB = 1024 * _KIB

#: gRPC services exposed at the edge.
PUBLIC_SERVICES = ("facegrid.recognition.v1.RecognitionService", "facegrid.admin.v1.AdminService")
#: Node i of a service listens on its base port + NODE_PORT_STEP * i (DESIGN.md "Ports and names").
NODE_PORT_STEP = 100
#: Most nodes of one service on one machine.
MAX_NODES = 10
#: Health service name of a node ready for work (facegrid.server.READY_SERVICE).
READY_SERVICE = "facegrid.ready"

#: RecognitionService calls that only read or compute: retried on another node when the first
#: attempt got no answer. Every other call (AddFace, CreateSubject, RenameSubject, the deletes, and
#: any call added later) is retried only when it never reached a node.
RECOGNITION_READS = (
    "ListFaces",
    "GetFaceImage",
    "RecognizeFaces",
    "VerifyAgainstFace",
    "RecognizeEmbeddings",
    "VerifyEmbeddingsAgainstFace",
    "ListSubjects",
    "DetectFaces",
    "VerifyImages",
    "VerifyEmbeddings",
)
#: AdminService calls that only read: every Get* and List* call.
ADMIN_READ_PREFIXES = ("Get", "List")

#: Retry conditions where the request never reached a node: safe for every call.
NEVER_REACHED = ("connect-failure", "refused-stream", "reset-before-request")
#: Retry conditions where a node may have seen the request but gave no answer: reads only.
NO_ANSWER = ("reset", "unavailable")


@dataclass(frozen=True, slots=True)
class DnsUpstreams:
    """Upstream services found by DNS name (compose services, Kubernetes headless Services).

    Envoy resolves each name (STRICT_DNS), then balances over and health-checks every address
    the name returns; it re-resolves every 5 s (its default), so replicas added or removed are
    picked up within seconds. Each name is used with the service's base port.
    """

    api: str
    """Name of api_svc (e.g. ``api-svc-headless``)."""
    embed: str
    """Name of embed_svc (health-checked for readiness only, never routed)."""
    admin: str
    """Name of admin_svc."""
    console: str = "console"
    """Name of the console's static file server (its port is ``GatewayPorts.console_port``)."""


@dataclass(frozen=True, slots=True)
class GatewayPorts:
    """Where Envoy listens and where the upstream services are (all on one host)."""

    listen_port: int = 8000
    """Public REST + gRPC port (CompreFace's)."""
    admin_port: int = 9901
    """Envoy's admin interface (bound to loopback)."""
    api_port: int = 50051
    """api_svc gRPC port of node 0 (node i: + 100 * i)."""
    embed_port: int = 50052
    """embed_svc gRPC port of node 0 (node i: + 100 * i; readiness only, never routed)."""
    admin_svc_port: int = 50053
    """admin_svc gRPC port."""
    console_port: int = 8300
    """The console's static file server (HTTP/1.1), which serves every non-API path."""
    host: str = "127.0.0.1"
    """Interface for the listener and the upstream services."""
    descriptor_path: str = "gateway/descriptor.pb"
    """Descriptor set built by ``make proto`` (relative to the working directory)."""
    max_request_bytes: int = 10 * 1024 * 1024
    """Largest request body, bytes (CompreFace: 10 MB per request)."""
    services: tuple[str, ...] = PUBLIC_SERVICES
    """gRPC services transcoded and routed at the edge."""
    api_nodes: int = 1
    """Number of api_svc nodes (1..10)."""
    embed_nodes: int = 1
    """Number of embed_svc nodes (1..10)."""
    dns: DnsUpstreams | None = None
    """Upstreams by DNS name (then ``host`` is only the listener's address and the node counts
    are unused); None: every node at ``host`` on its port (STATIC clusters)."""
    stats_port: int | None = None
    """A listener on ``host`` that serves only Envoy's ``/stats/prometheus`` (proxied to the admin
    interface, which stays on 127.0.0.1); None: none (the embedded mesh scrapes the admin port)."""
    trusted_hops: int = 0
    """Proxies in front of Envoy whose ``x-forwarded-for`` entries are trusted
    (FACEGRID_ENVOY_TRUSTED_HOPS): the client address the services see (sign-in throttling) is
    the one that many hops back from Envoy's own peer; 0 means Envoy's peer itself."""
    max_connections: int = 10_000
    """Client connections the public listener holds at once (FACEGRID_ENVOY_MAX_CONNECTIONS); one
    more is closed as it is accepted. The admin interface and the stats listener do not count,
    so Envoy stays observable while the public listener is full."""
    max_heap_mib: int = 1024
    """Envoy's heap budget, MiB (FACEGRID_ENVOY_MAX_HEAP_MB): at 90% of it Envoy hands free
    memory back, at 95% it answers new requests 503 until it is under again; keep it below the
    memory Envoy may use (a container's limit)."""

    @property
    def limits(self) -> BodyLimits:
        """Body limits of the routes: images and bulk at ``max_request_bytes``."""
        return BodyLimits(request_bytes=self.max_request_bytes, bulk_bytes=self.max_request_bytes)


def node_ports(base: int, nodes: int) -> list[int]:
    """The ports of ``nodes`` nodes of a service whose node 0 listens on ``base``."""
    return [base + NODE_PORT_STEP * i for i in range(nodes)]


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else line for line in text.splitlines())


def size_text(size_bytes: int) -> str:
    """A size as the error messages say it: ``10 MB`` for whole MiB, ``4 KB`` for whole KiB,
    else in bytes."""
    mib, rest = divmod(size_bytes, _MIB)
    if mib and not rest:
        return f"{mib} MB"
    kib, rest = divmod(size_bytes, _KIB)
    return f"{kib} KB" if kib and not rest else f"{size_bytes} bytes"


def _retry_policy(conditions: Sequence[str]) -> str:
    return (
        f'{{retry_on: "{",".join(conditions)}", num_retries: 2,'
        " retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts, typed_config:"
        ' {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3'
        ".PreviousHostsPredicate}}], host_selection_retry_max_attempts: 3,"
        " retry_back_off: {base_interval: 0.025s, max_interval: 0.25s}}"
    )


_TYPE = "type.googleapis.com/envoy.extensions.filters.http"
#: Name of the buffer filter that holds each request body to its route's limit.
BODY_LIMIT_FILTER = "body_limit"
#: Name of the Lua filter after it that counts a body's last chunk too.
BODY_END_FILTER = "body_limit_end"
#: Route metadata the Lua filter reads to name the limit in a 413 answer.
LUA_FILTER = "envoy.filters.http.lua"


def _limit_config(limit_bytes: int | None) -> str:
    """Per-route settings: the buffer filter's limit (None: not buffered) and its words for
    the Lua filter."""
    buffer = f'"@type": {_TYPE}.buffer.v3.BufferPerRoute'
    if limit_bytes is None:
        per_route = (
            f"{BODY_LIMIT_FILTER}: {{{buffer}, disabled: true}},"
            f' {BODY_END_FILTER}: {{"@type": {_TYPE}.lua.v3.LuaPerRoute, disabled: true}}'
        )
        words = "each message: the service's gRPC message limit"
    else:
        limit = f"buffer: {{max_request_bytes: {limit_bytes}}}"
        per_route = f"{BODY_LIMIT_FILTER}: {{{buffer}, {limit}}}"
        words = size_text(limit_bytes)
    end = f', {BODY_END_FILTER}: {{max_bytes: "{limit_bytes}"}}' if limit_bytes is not None else ""
    return (
        f"  typed_per_filter_config: {{{per_route}}}\n"
        f'  metadata: {{filter_metadata: {{{LUA_FILTER}: {{body_limit: "{words}"}}{end}}}}}'
    )


def _cluster_of(route: Route) -> tuple[str, str]:
    """The cluster serving a route and its timeout."""
    if route.service.startswith("facegrid.admin"):
        return "admin_svc", "600s"
    return "api_svc", "120s"


def _is_read(route: Route) -> bool:
    if route.service.startswith("facegrid.admin"):
        return route.rpc.startswith(ADMIN_READ_PREFIXES)
    return route.rpc in RECOGNITION_READS


def _routes(limits: BodyLimits) -> str:
    """REST paths first: they match only before the transcoder rewrites the path (it clears the
    route cache), to hold the body to its route's limit; a REST path the transcoder does not
    take answers 404. Then one route per gRPC method (reads with their own retry policy, the
    others under the virtual host's), then each service's catch-all."""
    reads = _retry_policy((*NEVER_REACHED, *NO_ANSWER))
    routes = [
        f'- match: {{safe_regex: {{regex: "{r.rest_regex}"}},'
        f' headers: [{{name: ":method", string_match: {{exact: {r.method}}}}}]}}\n'
        "  direct_response: {status: 404}\n" + _limit_config(limits.of(r.kind))
        for r in ROUTES
    ]
    for r in ROUTES:
        cluster, timeout = _cluster_of(r)
        policy = f", retry_policy: {reads}" if _is_read(r) else ""
        limit = None if r.streaming else limits.of(r.kind)
        routes.append(
            f'- match: {{path: "{r.grpc_path}"}}\n'
            f"  route: {{cluster: {cluster}, timeout: {timeout}{policy}}}\n" + _limit_config(limit)
        )
    routes += [
        '- match: {prefix: "/facegrid.recognition.v1.RecognitionService/"}\n'
        "  route: {cluster: api_svc, timeout: 120s}",
        '- match: {prefix: "/facegrid.admin.v1.AdminService/"}\n'
        "  route: {cluster: admin_svc, timeout: 600s}",
        _CONSOLE_ROUTES,
    ]
    return _indent("\n".join(routes), 24)


#: Any other gRPC call is unknown, and a REST path under /api/ that the transcoder does not know
#: it answers itself (404): neither reaches the console, which serves every other path, with the
#: REST filters (Lua, transcoder) off.
_CONSOLE_ROUTES = """\
- match: {prefix: "/", grpc: {}}
  direct_response: {status: 404}
- match: {prefix: "/api/"}
  direct_response: {status: 404}
- match: {prefix: "/"}
  route: {cluster: console, timeout: 30s}
  typed_per_filter_config:
    envoy.filters.http.lua:
      "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.LuaPerRoute
      disabled: true
    envoy.filters.http.grpc_json_transcoder:
      "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
      disabled: true"""

_CONSOLE_CLUSTER = """\
- name: console
  type: STATIC
  connect_timeout: 1s
  load_assignment:
    cluster_name: console
    endpoints:
      - lb_endpoints:
          - endpoint: {{address: {{socket_address: {{address: {host}, port_value: {port}}}}}}}"""


_CLUSTER = """\
- name: {name}
  type: {cluster_type}
  connect_timeout: 1s
  typed_extension_protocol_options:
    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
      "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
      explicit_http_config: {{http2_protocol_options: {{}}}}
  health_checks:
    - timeout: 1s
      interval: 1s
      no_traffic_interval: 1s
      unhealthy_threshold: 2
      healthy_threshold: 1
      grpc_health_check: {{{health}}}
{balancing}  load_assignment:
    cluster_name: {name}
    endpoints:
      - lb_endpoints:
{endpoints}"""

_BALANCING = """\
  common_lb_config: {healthy_panic_threshold: {value: 0}}
  outlier_detection:
    split_external_local_origin_errors: true
    consecutive_local_origin_failure: 2
    enforcing_consecutive_local_origin_failure: 100
    enforcing_consecutive_5xx: 0
    enforcing_consecutive_gateway_failure: 0
    enforcing_success_rate: 0
    enforcing_local_origin_success_rate: 0
    interval: 1s
    base_ejection_time: 5s
    max_ejection_time: 30s
    max_ejection_percent: 100
"""


def _cluster(
    name: str, host: str, ports: Sequence[int], *, routed: bool, by_dns: bool = False
) -> str:
    address = "{{address: {{socket_address: {{address: {host}, port_value: {port}}}}}}}"
    endpoints = "\n".join(
        "          - endpoint: " + address.format(host=host, port=port) for port in ports
    )
    text = _CLUSTER.format(
        name=name,
        cluster_type="STRICT_DNS" if by_dns else "STATIC",
        health="" if routed else f"service_name: {READY_SERVICE}",
        balancing=_BALANCING if routed else "",
        endpoints=endpoints,
    )
    if by_dns:
        text = text.replace("  connect_timeout: 1s\n", _DNS_SETTINGS, 1)
    return text


#: STRICT_DNS clusters: every address of the name is a host (IPv4 first, as clusters mostly are).
_DNS_SETTINGS = "  connect_timeout: 1s\n  dns_lookup_family: V4_PREFERRED\n"


def _dns_clusters(ports: GatewayPorts, dns: DnsUpstreams) -> str:
    """The same clusters over names: one endpoint per name, every address it has a host."""
    api, admin, embed = [ports.api_port], [ports.admin_svc_port], [ports.embed_port]
    clusters = [
        _cluster("api_svc", dns.api, api, routed=True, by_dns=True),
        _cluster("admin_svc", dns.admin, admin, routed=True, by_dns=True),
        _cluster("api_svc_ready", dns.api, api, routed=False, by_dns=True),
        _cluster("admin_svc_ready", dns.admin, admin, routed=False, by_dns=True),
        _cluster("embed_svc_ready", dns.embed, embed, routed=False, by_dns=True),
        _CONSOLE_CLUSTER.format(host=dns.console, port=ports.console_port).replace(
            "  type: STATIC\n", "  type: STRICT_DNS\n  dns_lookup_family: V4_PREFERRED\n"
        ),
    ]
    return _indent("\n".join(clusters), 4)


def _clusters(ports: GatewayPorts) -> str:
    if ports.dns is not None:
        return _dns_clusters(ports, ports.dns)
    for count, name in ((ports.api_nodes, "api_nodes"), (ports.embed_nodes, "embed_nodes")):
        if not 1 <= count <= MAX_NODES:
            raise ValueError(f"{name} must be 1..{MAX_NODES}, got {count}")
    api = node_ports(ports.api_port, ports.api_nodes)
    admin = [ports.admin_svc_port]
    embed = node_ports(ports.embed_port, ports.embed_nodes)
    clusters = [
        _cluster("api_svc", ports.host, api, routed=True),
        _cluster("admin_svc", ports.host, admin, routed=True),
        _cluster("api_svc_ready", ports.host, api, routed=False),
        _cluster("admin_svc_ready", ports.host, admin, routed=False),
        _cluster("embed_svc_ready", ports.host, embed, routed=False),
        _CONSOLE_CLUSTER.format(host=ports.host, port=ports.console_port),
    ]
    return _indent("\n".join(clusters), 4)


#: Envoy's Prometheus stats path on its admin interface.
STATS_PATH = "/stats/prometheus"


def _stats_listener(ports: GatewayPorts) -> str:
    """The stats-only listener (empty without ``stats_port``): any other path answers 404, so the
    admin interface's other endpoints (``/quitquitquit``...) stay out of reach."""
    if ports.stats_port is None:
        return ""
    router = f'"@type": {_TYPE}.router.v3.Router'
    manager = (
        '"@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager'
        ".v3.HttpConnectionManager"
    )
    listener = f"""\
- name: stats
  address:
    socket_address: {{address: {ports.host}, port_value: {ports.stats_port}}}
  ignore_global_conn_limit: true
  filter_chains:
    - filters:
        - name: envoy.filters.network.http_connection_manager
          typed_config:
            {manager}
            stat_prefix: stats
            route_config:
              virtual_hosts:
                - name: stats
                  domains: ["*"]
                  routes:
                    - match: {{path: "{STATS_PATH}"}}
                      route: {{cluster: envoy_admin}}
                    - match: {{prefix: "/"}}
                      direct_response: {{status: 404}}
            http_filters:
              - name: envoy.filters.http.router
                typed_config: {{{router}}}
"""
    return _indent(listener, 4) + "\n"


def _admin_cluster(ports: GatewayPorts) -> str:
    """The cluster of Envoy's own admin interface, for the stats listener."""
    return (
        "- name: envoy_admin\n"
        "  type: STATIC\n"
        "  connect_timeout: 1s\n"
        "  load_assignment:\n"
        "    cluster_name: envoy_admin\n"
        "    endpoints:\n"
        "      - lb_endpoints:\n"
        "          - endpoint: {address: {socket_address:"
        f" {{address: 127.0.0.1, port_value: {ports.admin_port}}}}}}}"
    )


def render(ports: GatewayPorts) -> str:
    """Returns the Envoy YAML for ``ports``."""
    template = Template((GATEWAY_DIR / "envoy.yaml.in").read_text())
    lua = (GATEWAY_DIR / "compreface_errors.lua").read_text()
    limits = ports.limits
    lua = lua.replace("@default_limit_text@", size_text(limits.smallest))
    body_limit = (GATEWAY_DIR / "body_limit.lua").read_text()
    body_limit = body_limit.replace("@default_limit_bytes@", str(limits.smallest))
    if ports.trusted_hops < 0:
        raise ValueError(f"trusted_hops must be >= 0, got {ports.trusted_hops}")
    if ports.max_connections < 1:
        raise ValueError(f"max_connections must be >= 1, got {ports.max_connections}")
    if ports.max_heap_mib < 1:
        raise ValueError(f"max_heap_mib must be >= 1, got {ports.max_heap_mib}")
    return template.substitute(
        listen_port=ports.listen_port,
        admin_port=ports.admin_port,
        host=ports.host,
        descriptor_path=ports.descriptor_path,
        max_request_bytes=max(limits.request_bytes, limits.bulk_bytes),
        smallest_body_bytes=limits.smallest,
        max_request_headers_kib=MAX_REQUEST_HEADERS_KIB,
        trusted_hops=ports.trusted_hops,
        max_connections=ports.max_connections,
        max_heap_bytes=ports.max_heap_mib * _MIB,
        services="\n".join(f"                        - {name}" for name in ports.services),
        lua=_indent(lua, 26),
        body_limit_lua=_indent(body_limit, 26),
        routes=_routes(limits),
        retry_writes=_retry_policy(NEVER_REACHED),
        clusters=_clusters(ports)
        + ("" if ports.stats_port is None else "\n" + _indent(_admin_cluster(ports), 4)),
        stats_listener=_stats_listener(ports),
    )


if __name__ == "__main__":
    sys.stdout.write(render(GatewayPorts()))
