"""nfmp_client.xmlapi: the XML API's wire format (SOAP over HTTP), for test servers and tools.

A resync reads the server's current state with :class:`~nfmp_client.XmlApiClient` and the requests
:class:`~nfmp_client.FindFaultsRequest` and :class:`~nfmp_client.FindRequest`, all importable from
``nfmp_client``. This module holds the rest of the wire format, for whoever plays the server's side (the
simulated server in ``nfmp_client.testing`` answers with it) or talks to the endpoint another way:

* :func:`encode_request`, :func:`decode_response`: the client's side, as :class:`~nfmp_client.XmlApiClient`
  sends and reads them.
* :func:`decode_request`, :func:`encode_response`, :func:`encode_fault`: the server's side;
  :class:`ReceivedRequest` is a request as a server received it.
* :class:`PingRequest` and ``XmlApiRequest`` (``FindFaultsRequest | FindRequest | PingRequest``): every
  request, as :meth:`~nfmp_client.XmlApiClient.invoke` takes it.
* :data:`XMLAPI_PATH`, :data:`DEFAULT_XMLAPI_TIMEOUT`, :data:`DEFAULT_MAX_RESPONSE_BYTES`: the endpoint's path
  and the client's defaults.
"""

from ._public import claim_public_names as _claim_public_names
from ._xmlapi import (
    PingRequest,
    ReceivedRequest,
    XmlApiRequest,
    decode_request,
    decode_response,
    encode_fault,
    encode_request,
    encode_response,
)
from ._xmlapi_client import DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_XMLAPI_TIMEOUT, XMLAPI_PATH

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_XMLAPI_TIMEOUT",
    "XMLAPI_PATH",
    "PingRequest",
    "ReceivedRequest",
    "XmlApiRequest",
    "decode_request",
    "decode_response",
    "encode_fault",
    "encode_request",
    "encode_response",
]

_claim_public_names(globals(), __all__, __name__)
