"""Write an ONNX model to a file one initializer at a time.

``onnx.save_model`` serialises the whole model into one buffer and then into a Python ``bytes`` (two
transient copies of every weight: 650 MB for BERT-base).  Protobuf's wire format is a concatenation of
fields, so the same bytes can be written piecewise: the model's fields before ``graph``, the graph's
own header (the field number and length, computed first), the graph's fields before ``initializer``,
each initializer serialised on its own, then the rest of the graph and of the model.  Each piece is
serialised by protobuf itself and the pieces are written in field-number order, the order protobuf's
serialiser uses, so the file is byte for byte what ``onnx.save_model`` writes
(tests/test_export_memory.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:  # pragma: no cover
    from google.protobuf.message import Message
    from onnx import ModelProto

_LENGTH_DELIMITED = 2


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _key(number: int, length: int) -> bytes:
    """The key and length prefix of a length-delimited field."""
    return _varint(number << 3 | _LENGTH_DELIMITED) + _varint(length)


def _split(message: Message, number: int) -> tuple[bytes, bytes]:
    """The serialisation of ``message``'s fields numbered below ``number``, and of those above it."""
    below, above = type(message)(), type(message)()
    for field, value in message.ListFields():
        if field.number == number:
            continue
        target = below if field.number < number else above
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        if repeated:
            getattr(target, field.name).extend(value)
        elif field.message_type is not None:
            getattr(target, field.name).CopyFrom(value)
        else:
            setattr(target, field.name, value)
    return below.SerializeToString(), above.SerializeToString()


def write_model(model: ModelProto, out: BinaryIO) -> None:
    """Write ``model``'s serialisation to ``out`` holding one initializer's bytes at a time."""
    graph_number = model.DESCRIPTOR.fields_by_name["graph"].number
    init_number = model.graph.DESCRIPTOR.fields_by_name["initializer"].number
    model_below, model_above = _split(model, graph_number)
    graph_below, graph_above = _split(model.graph, init_number)
    sizes = [tensor.ByteSize() for tensor in model.graph.initializer]
    graph_size = len(graph_below) + len(graph_above) + sum(len(_key(init_number, s)) + s for s in sizes)
    out.write(model_below)
    if model.HasField("graph"):
        out.write(_key(graph_number, graph_size))
        out.write(graph_below)
        for tensor, size in zip(model.graph.initializer, sizes, strict=True):
            out.write(_key(init_number, size))
            out.write(tensor.SerializeToString())
        out.write(graph_above)
    out.write(model_above)
