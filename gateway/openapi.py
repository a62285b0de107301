"""Builds an OpenAPI 3.1 document of the REST surface from the descriptor set's HTTP rules.

``python -m gateway.openapi [descriptor.pb] > openapi.json`` writes it; ``make console`` puts it
beside the console's files, where the console's server answers it at ``/openapi.json``. Every
path, parameter and field comes from the ``google.api.http`` annotations and the comments of
the public services' messages, mapped as Envoy's gRPC-JSON transcoder maps them (proto field
names, int64 as strings, enums by name, well-known types as their JSON forms). A body bound to
``google.api.HttpBody`` is described as what the services accept there: multipart/form-data
with the file parts the field's comment names in backticks, JSON with those parts as base64,
or raw image bytes.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

from gateway.render import GATEWAY_DIR, PUBLIC_SERVICES

FieldProto = descriptor_pb2.FieldDescriptorProto
Schema = dict[str, Any]

_SCALARS: dict[int, Schema] = {
    FieldProto.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldProto.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldProto.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldProto.TYPE_UINT32: {"type": "integer", "format": "int32", "minimum": 0},
    FieldProto.TYPE_FIXED32: {"type": "integer", "format": "int32", "minimum": 0},
    FieldProto.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldProto.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldProto.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldProto.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldProto.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldProto.TYPE_BOOL: {"type": "boolean"},
    FieldProto.TYPE_STRING: {"type": "string"},
    FieldProto.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}

#: Well-known types in their proto3 JSON forms.
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.FieldMask": {"type": "string"},
}

HTTP_BODY = "google.api.HttpBody"

_ERROR_SCHEMA: Schema = {
    "type": "object",
    "description": "CompreFace's error body.",
    "properties": {
        "message": {"type": "string", "description": "What went wrong, naming the field."},
        "code": {"type": "integer", "description": "CompreFace's numeric error code."},
    },
    "required": ["message", "code"],
}

_SECURITY_SCHEMES: Schema = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "The API key of a service (face collection) of the path's type.",
    },
    "Bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from /api/v1/admin/auth/signin or /auth/refresh.",
    },
}

_PATH_VARIABLE = re.compile(r"\{([^}=]+)(=[^}]*)?\}")
_BACKTICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
_CREATED = re.compile(r"REST answers (\d{3})")
_NO_TOKEN = re.compile(r"Needs no (access )?token")


@dataclass(frozen=True, slots=True)
class _Message:
    proto: descriptor_pb2.DescriptorProto
    comments: dict[str, str]
    """Field name -> leading comment."""
    comment: str


@dataclass(slots=True)
class _Catalog:
    """Messages and enums of a descriptor set by full name, with their comments."""

    messages: dict[str, _Message] = field(default_factory=dict)
    enums: dict[str, tuple[descriptor_pb2.EnumDescriptorProto, str]] = field(default_factory=dict)
    schemas: dict[str, Schema] = field(default_factory=dict)

    def add_file(self, file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
        comments = {
            tuple(loc.path): _clean(loc.leading_comments)
            for loc in file.source_code_info.location
            if loc.leading_comments
        }
        prefix = f".{file.package}" if file.package else ""
        for i, message in enumerate(file.message_type):
            self._add_message(message, prefix, (4, i), comments)
        for i, enum in enumerate(file.enum_type):
            self.enums[f"{prefix}.{enum.name}"] = (enum, comments.get((5, i), ""))
        return comments

    def _add_message(
        self,
        message: descriptor_pb2.DescriptorProto,
        prefix: str,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        name = f"{prefix}.{message.name}"
        fields = {f.name: comments.get((*path, 2, i), "") for i, f in enumerate(message.field)}
        self.messages[name] = _Message(message, fields, comments.get(path, ""))
        for i, nested in enumerate(message.nested_type):
            self._add_message(nested, name, (*path, 3, i), comments)
        for i, enum in enumerate(message.enum_type):
            self.enums[f"{name}.{enum.name}"] = (enum, comments.get((*path, 4, i), ""))

    def field_schema(self, proto: descriptor_pb2.FieldDescriptorProto, comment: str) -> Schema:
        """The JSON schema of one field's value (arrays for repeated fields, maps as objects)."""
        if proto.type == FieldProto.TYPE_MESSAGE:
            entry = self.messages.get(proto.type_name)
            if entry is not None and entry.proto.options.map_entry:
                value = next(f for f in entry.proto.field if f.name == "value")
                schema: Schema = {
                    "type": "object",
                    "additionalProperties": self.field_schema(value, ""),
                }
                return _described(schema, comment)
            item = self.type_schema(proto.type_name)
        elif proto.type == FieldProto.TYPE_ENUM:
            item = self.type_schema(proto.type_name)
        else:
            item = dict(_SCALARS[proto.type])
        if proto.label == FieldProto.LABEL_REPEATED:
            return _described({"type": "array", "items": item}, comment)
        if "$ref" in item:
            return {"allOf": [item], **({"description": comment} if comment else {})}
        return _described(item, comment)

    def type_schema(self, type_name: str) -> Schema:
        """A reference to a message or enum's schema (made on first use), or its inline form."""
        full = type_name.lstrip(".")
        if full in _WELL_KNOWN:
            return dict(_WELL_KNOWN[full])
        if full == HTTP_BODY:
            return {"type": "string", "contentMediaType": "application/octet-stream"}
        if full not in self.schemas:
            self.schemas[full] = {}  # placeholder: recursive messages refer to themselves
            if type_name in self.enums:
                enum, comment = self.enums[type_name]
                values = [v.name for v in enum.value]
                self.schemas[full] = _described({"type": "string", "enum": values}, comment)
            else:
                self.schemas[full] = self.message_schema(type_name, exclude=())
        return {"$ref": f"#/components/schemas/{full}"}

    def message_schema(self, type_name: str, exclude: tuple[str, ...]) -> Schema:
        """A message as a JSON object with proto field names, less the ``exclude`` fields."""
        message = self.messages[type_name]
        properties = {
            f.name: self.field_schema(f, message.comments[f.name])
            for f in message.proto.field
            if f.name not in exclude
        }
        return _described({"type": "object", "properties": properties}, message.comment)


def _clean(comment: str) -> str:
    return " ".join(line.strip() for line in comment.strip().splitlines())


def _described(schema: Schema, comment: str) -> Schema:
    if comment:
        schema["description"] = comment
    return schema


def _rule_target(rule: http_pb2.HttpRule) -> tuple[str, str]:
    for method in ("get", "put", "post", "delete", "patch"):
        path = getattr(rule, method)
        if path:
            return method, path
    return rule.custom.kind.lower(), rule.custom.path


def _parameter(catalog: _Catalog, message: _Message, name: str, where: str) -> Schema:
    proto = next(f for f in message.proto.field if f.name == name)
    schema = catalog.field_schema(proto, "")
    parameter: Schema = {"name": name, "in": where, "schema": schema}
    if message.comments[name]:
        parameter["description"] = message.comments[name]
    if where == "path":
        parameter["required"] = True
    elif proto.label == FieldProto.LABEL_REPEATED:
        parameter["explode"] = True
    return parameter


def _file_body(comment: str) -> Schema:
    """Request bodies of an HttpBody field: the parts its comment names (default ``file``)."""
    parts = list(dict.fromkeys(_BACKTICKED.findall(comment))) or ["file"]
    binary = {name: {"type": "string", "contentMediaType": "image/*"} for name in parts}
    base64 = {name: {"type": "string", "contentEncoding": "base64"} for name in parts}
    return {
        "description": comment,
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": binary, "required": parts},
                "encoding": {name: {"contentType": "image/*"} for name in parts},
            },
            "application/json": {
                "schema": {"type": "object", "properties": base64, "required": parts}
            },
            **(
                {"image/*": {"schema": {"type": "string", "contentMediaType": "image/*"}}}
                if parts == ["file"]
                else {}
            ),
        },
    }


def _operation(
    catalog: _Catalog,
    service: str,
    method: descriptor_pb2.MethodDescriptorProto,
    rule: http_pb2.HttpRule,
    comment: str,
) -> tuple[str, str, Schema]:
    verb, template = _rule_target(rule)
    request = catalog.messages[method.input_type]
    path_fields = [m.group(1) for m in _PATH_VARIABLE.finditer(template)]
    path = _PATH_VARIABLE.sub(lambda m: "{" + m.group(1) + "}", template)
    parameters = [_parameter(catalog, request, name, "path") for name in path_fields]
    operation: Schema = {
        "operationId": method.name,
        "tags": [service.rsplit(".", 1)[-1]],
        "summary": comment.split(". ")[0].rstrip("."),
        "description": comment,
    }
    if rule.body == "*":
        schema = catalog.message_schema(method.input_type, exclude=tuple(path_fields))
        schema.pop("description", None)
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    elif rule.body:
        body_field = next(f for f in request.proto.field if f.name == rule.body)
        if body_field.type_name.lstrip(".") == HTTP_BODY:
            operation["requestBody"] = _file_body(request.comments[rule.body])
        else:
            body_schema = catalog.field_schema(body_field, request.comments[rule.body])
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body_schema}},
            }
    bound = {*path_fields, rule.body} if rule.body != "*" else None
    if bound is not None:
        parameters += [
            _parameter(catalog, request, f.name, "query")
            for f in request.proto.field
            if f.name not in bound
        ]
    if parameters:
        operation["parameters"] = parameters
    created = _CREATED.search(comment)
    status = created.group(1) if created else "200"
    if method.output_type.lstrip(".") == HTTP_BODY:
        content: Schema = {"image/*": {"schema": {"type": "string", "contentMediaType": "image/*"}}}
    else:
        content = {"application/json": {"schema": catalog.type_schema(method.output_type)}}
    operation["responses"] = {
        status: {"description": "Success.", "content": content},
        "default": {
            "description": "An error: CompreFace's status code and body.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        },
    }
    if service.endswith("RecognitionService"):
        operation["security"] = [{"ApiKey": []}]
    elif _NO_TOKEN.search(comment):
        operation["security"] = []
    else:
        operation["security"] = [{"Bearer": []}]
    return path, verb, operation


def build_document(
    descriptor_set: descriptor_pb2.FileDescriptorSet,
    services: tuple[str, ...] = PUBLIC_SERVICES,
) -> Schema:
    """The OpenAPI 3.1 document of ``services``' HTTP rules in ``descriptor_set``."""
    catalog = _Catalog()
    paths: dict[str, Schema] = {}
    tags = []
    for file in descriptor_set.file:
        comments = catalog.add_file(file)
        for s_index, service in enumerate(file.service):
            full = f"{file.package}.{service.name}"
            if full not in services:
                continue
            tags.append({"name": service.name, "description": comments.get((6, s_index), "")})
            for m_index, method in enumerate(service.method):
                if not method.options.HasExtension(annotations_pb2.http):
                    continue
                rule = method.options.Extensions[annotations_pb2.http]
                comment = comments.get((6, s_index, 2, m_index), "")
                for one in (rule, *rule.additional_bindings):
                    path, verb, operation = _operation(catalog, full, method, one, comment)
                    paths.setdefault(path, {})[verb] = operation
    schemas = dict(sorted(catalog.schemas.items()))
    schemas["Error"] = _ERROR_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Facegrid REST API",
            "version": "v1",
            "description": (
                "CompreFace's REST API v1 (recognition, detection, verification) and Facegrid's "
                "administration API, generated from the gRPC services' google.api.http rules."
            ),
        },
        "tags": tags,
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas, "securitySchemes": _SECURITY_SCHEMES},
    }


def load_descriptor_set(path: Path) -> descriptor_pb2.FileDescriptorSet:
    """Reads a descriptor set written by ``protoc --descriptor_set_out``."""
    return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())


def main(argv: list[str]) -> int:
    """Prints the document of the descriptor set named by ``argv[0]`` (default: the gateway's)."""
    path = Path(argv[0]) if argv else GATEWAY_DIR / "descriptor.pb"
    document = build_document(load_descriptor_set(path))
    sys.stdout.write(json.dumps(document, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
