"""Our echo backend: the Gateway API conformance echo-basic protocol, re-implemented.

One process stands for one replica of an upstream echo-basic Deployment and
answers exactly as that image does, as described in
/work/shared/conformance/echo-backend.md and l4-protocol.md (v1.6.1):

- HTTP/1.1 and HTTPS (lab.echo.routes, lab.echo.http1): the JSON echo body,
  X-Echo-Set-Header, /status/NNN, /health, delay=, the /retry/ simulator,
  WebSocket echo on /ws, and one `Echoing back request made to ...` log line
  per echoed request (what the mirror tests read).
- TCP, plain and TLS (lab.echo.tcp): banner, PING/PONG, IS_TLS, TEST.
- UDP (lab.echo.udp): one JSON reply per datagram.

Not implemented: the h2c listener (H2C_PORT), HTTP/2 over TLS, and the gRPC
mode (GRPC_ECHO_SERVER); the HTTPS listener offers ALPN http/1.1 only.

Run one with `python -m lab.echo` (flags in lab.echo.cli); name replicas
with lab.echo.podname.
"""

from lab.echo.podname import backend_of, pod_name, pod_names
from lab.echo.settings import Context, Listeners, Settings

__all__ = ["Context", "Listeners", "Settings", "backend_of", "pod_name", "pod_names"]
