"""nodegate's L7 engine: an asyncio reverse proxy on uvloop and h11, fed by NodeConfig."""

from l7.native import check

# Extension modules built from other sources than these must not run (l7/native.py).
check()
