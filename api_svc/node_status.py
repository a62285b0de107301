"""NodeService: what this api_svc node holds (``GetNodeStatus``), on its own status port.

Operators and tests ask a node directly (Envoy never routes it) for its loaded collections: per
collection the faces, bytes, index kind, device and last applied sequence number, and the node's
memory budget.
"""

from __future__ import annotations

import grpc

from api_svc.index_registry import IndexRegistry
from facegrid.recognition.v1 import node_service_pb2 as pb
from facegrid.recognition.v1 import node_service_pb2_grpc

SERVICE_NAME = "facegrid.recognition.v1.NodeService"

_KINDS = {"exact": pb.INDEX_KIND_EXACT, "ivf": pb.INDEX_KIND_IVF}


class NodeStatusServicer(node_service_pb2_grpc.NodeServiceServicer):
    """Answers GetNodeStatus from the registry."""

    def __init__(self, node: str, registry: IndexRegistry) -> None:
        self._node = node
        self._registry = registry

    async def GetNodeStatus(
        self, request: pb.GetNodeStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetNodeStatusResponse:
        """The node's loaded collections and memory."""
        collections = await self._registry.status()
        response = pb.GetNodeStatusResponse(
            node=self._node,
            memory_budget_bytes=self._registry.settings.memory_budget_bytes,
            memory_bytes=sum(c.index.nbytes for c in collections),
            evictions=self._registry.evictions,
        )
        for c in collections:
            response.collections.add(
                service_id=str(c.service_id),
                faces=c.index.faces,
                bytes=c.index.nbytes,
                kind=_KINDS[c.index.kind],
                detail=c.index.detail,
                device=c.index.device,
                seq=c.seq,
                calculator=c.calculator,
                dim=c.dim,
                rebuilding=c.rebuilding,
                idle_seconds=c.idle_s,
            )
        return response
