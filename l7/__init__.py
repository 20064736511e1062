"""nodegate's L7 engine: an asyncio reverse proxy on uvloop and h11, fed by NodeConfig."""
