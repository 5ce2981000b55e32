"""nfmp_client.codec: NFM-P's JMS messages, as the client reads them and as a test publisher writes them.

The client decodes every message itself; an application never needs this module to receive events. It is for
the tools around one: a test that publishes NFM-P-shaped messages to a broker (the simulator in
``nfmp_client.testing`` does), a script that decodes a recorded message, a benchmark of the decoder.

* :func:`decode_message`, :func:`encode_event`: one message with the default limits.
* :class:`EventCodec`: the same with a size limit of its own; :class:`EncodedMessage` is what it writes.
* :data:`NFMP_NAMESPACE`, :data:`SOAP_NAMESPACE`, :data:`DEFAULT_MAX_MESSAGE_BYTES`: the wire's constants.
* :func:`epoch_ms_to_datetime`: NFM-P's epoch-milliseconds timestamps as aware UTC datetimes.
"""

from ._codec import (
    DEFAULT_MAX_MESSAGE_BYTES,
    NFMP_NAMESPACE,
    SOAP_NAMESPACE,
    EncodedMessage,
    EventCodec,
    decode_message,
    encode_event,
)
from ._events import epoch_ms_to_datetime
from ._public import claim_public_names as _claim_public_names

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "NFMP_NAMESPACE",
    "SOAP_NAMESPACE",
    "EncodedMessage",
    "EventCodec",
    "decode_message",
    "encode_event",
    "epoch_ms_to_datetime",
]

_claim_public_names(globals(), __all__, __name__)
