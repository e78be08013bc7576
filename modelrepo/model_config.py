"""Triton's ``config.pbtxt``, read with protobuf's own text-format parser (not regexes).

The message is a subset of Triton's ``inference.ModelConfig`` (``model_config.proto``): the fields
ConvServe honours or checks - name, platform, max_batch_size, input / output (name, data_type,
format, dims, label_filename), version_policy (latest / all / specific), instance_group (count,
kind, gpus) and dynamic_batching (preferred_batch_size, max_queue_delay_microseconds). Field names
and enum values are Triton's, so a config written for Triton parses; fields outside the subset are
skipped (text format matches by name, so the field numbers here are only this module's own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from modelrepo.errors import InputError

F = descriptor_pb2.FieldDescriptorProto
_SCALAR = {"string": F.TYPE_STRING, "int32": F.TYPE_INT32, "int64": F.TYPE_INT64, "uint64": F.TYPE_UINT64,
           "bool": F.TYPE_BOOL}  # fmt: skip
DATA_TYPES = ["TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64", "TYPE_INT8",
              "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING",
              "TYPE_BF16"]  # fmt: skip

# message name -> [(field, number, type or message/enum name, repeated)]
_MESSAGES = {
    "ModelTensor": [("name", 1, "string", False), ("data_type", 2, "DataType", False), ("format", 3, "Format", False),
                    ("dims", 4, "int64", True), ("label_filename", 5, "string", False)],
    "Latest": [("num_versions", 1, "uint64", False)],
    "All": [],
    "Specific": [("versions", 1, "int64", True)],
    "VersionPolicy": [("latest", 1, "Latest", False), ("all", 2, "All", False), ("specific", 3, "Specific", False)],
    "InstanceGroup": [("name", 1, "string", False), ("count", 2, "int32", False), ("kind", 3, "Kind", False),
                      ("gpus", 4, "int32", True)],
    "DynamicBatching": [("preferred_batch_size", 1, "int32", True),
                        ("max_queue_delay_microseconds", 2, "uint64", False)],
    "ModelConfig": [("name", 1, "string", False), ("platform", 2, "string", False), ("backend", 3, "string", False),
                    ("max_batch_size", 4, "int32", False), ("input", 5, "ModelTensor", True),
                    ("output", 6, "ModelTensor", True), ("version_policy", 7, "VersionPolicy", False),
                    ("instance_group", 8, "InstanceGroup", True), ("dynamic_batching", 9, "DynamicBatching", False)],
}  # fmt: skip
_ENUMS = {
    "DataType": DATA_TYPES,
    "Format": ["FORMAT_NONE", "FORMAT_NHWC", "FORMAT_NCHW"],
    "Kind": ["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"],
}


@cache
def _config_class():
    fd = descriptor_pb2.FileDescriptorProto(name="convserve_model_config.proto", package="inference", syntax="proto3")
    for name, values in _ENUMS.items():
        e = fd.enum_type.add(name=name)
        for i, v in enumerate(values):
            e.value.add(name=v, number=i)
    for name, fields in _MESSAGES.items():
        m = fd.message_type.add(name=name)
        for fname, number, kind, repeated in fields:
            f = m.field.add(name=fname, number=number)
            f.label = F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL
            if kind in _SCALAR:
                f.type = _SCALAR[kind]
            else:
                f.type = F.TYPE_ENUM if kind in _ENUMS else F.TYPE_MESSAGE
                f.type_name = f".inference.{kind}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


@dataclass
class Tensor:
    name: str
    data_type: str
    dims: list[int]


@dataclass
class ModelConfig:
    name: str
    platform: str
    max_batch_size: int
    inputs: list[Tensor]
    outputs: list[Tensor]
    versions: str | int | list[int] = 1  # "all", latest N (int), or the specific versions
    max_queue_delay_ms: float | None = None  # dynamic_batching, when it says
    preferred_batch_sizes: list[int] = field(default_factory=list)
    instance_kind: str = "KIND_AUTO"


def parse_model_config(text: str) -> ModelConfig:
    """A ``config.pbtxt``'s settings; InputError (code ``invalid_config``) when it is not valid text format."""
    msg = _config_class()()
    try:
        text_format.Parse(text, msg, allow_unknown_field=True)
    except text_format.ParseError as exc:
        raise InputError("invalid_config", f"config.pbtxt: {exc}") from None
    pool = _config_class().DESCRIPTOR.file.pool
    enum, kind_enum = pool.FindEnumTypeByName("inference.DataType"), pool.FindEnumTypeByName("inference.Kind")

    def tensors(items) -> list[Tensor]:
        return [Tensor(t.name, enum.values_by_number[t.data_type].name, list(t.dims)) for t in items]

    policy = msg.version_policy
    versions: str | int | list[int] = 1
    if policy.HasField("specific"):
        versions = list(policy.specific.versions)
    elif policy.HasField("all"):
        versions = "all"
    elif policy.HasField("latest"):
        versions = max(1, int(policy.latest.num_versions))
    db = msg.dynamic_batching if msg.HasField("dynamic_batching") else None
    kinds = {g.kind for g in msg.instance_group}
    kind_enum = (
        _config_class().DESCRIPTOR.fields_by_name["instance_group"].message_type.fields_by_name["kind"].enum_type
    )
    return ModelConfig(
        name=msg.name,
        platform=msg.platform or msg.backend,
        max_batch_size=msg.max_batch_size,
        inputs=tensors(msg.input),
        outputs=tensors(msg.output),
        versions=versions,
        max_queue_delay_ms=db.max_queue_delay_microseconds / 1000 if db and db.max_queue_delay_microseconds else None,
        preferred_batch_sizes=list(db.preferred_batch_size) if db else [],
        instance_kind=kind_enum.values_by_number[kinds.pop()].name if len(kinds) == 1 else "KIND_AUTO",
    )
