"""Kubernetes protobuf (``application/vnd.kubernetes.protobuf``) for the built-in kinds corral serves.

:mod:`.schema` holds the message layouts, generated from Kubernetes' ``generated.proto`` and
``types.go`` by :mod:`.generate`; :mod:`.codec` converts between those bytes and the JSON
dicts the server stores. Request bodies and responses of every kind in
:data:`.codec.SERVED` can be protobuf; corral's own kinds, like a real cluster's custom
resources, are JSON only.
"""

from corral.apiserver.protobuf.codec import (
    MAGIC,
    NotRepresentableError,
    ProtobufError,
    decode_object,
    encode_object,
    message_name,
    watch_frame,
)

__all__ = ["MAGIC", "NotRepresentableError", "ProtobufError", "decode_object", "encode_object", "message_name", "watch_frame"]
