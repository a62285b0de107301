"""The generated message modules, under short names: ``pb.recognition`` (requests and replies
of the recognition service), ``pb.admin`` (administration), ``pb.common`` (boxes, attributes,
``ServiceType``). Generated from the repository's proto/ when the wheel was built."""

from facegrid_client._proto.facegrid.admin.v1 import admin_service_pb2 as admin
from facegrid_client._proto.facegrid.admin.v1 import admin_service_pb2_grpc as admin_grpc
from facegrid_client._proto.facegrid.common.v1 import common_pb2 as common
from facegrid_client._proto.facegrid.recognition.v1 import recognition_service_pb2 as recognition
from facegrid_client._proto.facegrid.recognition.v1 import (
    recognition_service_pb2_grpc as recognition_grpc,
)

__all__ = ["admin", "admin_grpc", "common", "recognition", "recognition_grpc"]
