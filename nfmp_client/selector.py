"""nfmp_client.selector: the JMS selector of an NFM-P subscription, and the client id it is built for.

The client builds its selector from ``ClientConfig.client_id`` and ``ClientConfig.filter`` by itself. These
helpers show what it subscribes with (to compare with what a broker's console lists, or to try a filter
before deploying it) and check a client id the way the configuration does.

* :func:`build_selector`: own and broadcast events, narrowed by a filter, OR the system events always.
* :data:`SYSTEM_OBJECT_TYPES`: the system events no filter may exclude.
* :func:`validate_client_id`: NFM-P's ``name@ID`` form.
"""

from ._public import claim_public_names as _claim_public_names
from ._selector import SYSTEM_OBJECT_TYPES, build_selector, validate_client_id

__all__ = ["SYSTEM_OBJECT_TYPES", "build_selector", "validate_client_id"]

_claim_public_names(globals(), __all__, __name__)
