"""nfmp_client.state: the client's persisted resync baseline, one file per client id.

The client keeps it by itself in ``ClientConfig.state_dir``; an application does not need this module to run
one. It is for tools that look at or prepare that state: show what a client id last knew about the server
(the ``nfmp-client`` command line does), check a state directory before a deployment, or remove a client
id's state on purpose.

* :class:`StateStore`: the state files of one directory (load, save atomically, lock).
* :class:`Baseline`: what one file holds; :data:`STATE_FORMAT` is the version of its layout.
* :class:`StateLock`: the exclusive hold of one client id's file while a client uses it.

What goes wrong with a state file is raised as :class:`~nfmp_client.StateError` and its subclasses, importable
from ``nfmp_client`` (:meth:`NfmpClient.start <nfmp_client.NfmpClient.start>` raises them too).
"""

from ._public import claim_public_names as _claim_public_names
from ._state import STATE_FORMAT, Baseline, StateLock, StateStore

__all__ = ["STATE_FORMAT", "Baseline", "StateLock", "StateStore"]

_claim_public_names(globals(), __all__, __name__)
