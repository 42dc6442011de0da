# cython: language_level=3
"""gateway._native: the compiled hot path (one extension built from room files).

Rooms are `include`d in dependency order so cross-room calls inline (uvloop/asyncpg pattern).
"""

include "b64.pxi"
include "sink.pxi"
include "scan.pxi"
include "listener.pxi"
include "mix.pxi"
include "shm.pxi"
